"""Canonical writers: what every dataset becomes on disk, whatever its source.

Three kinds, one contract each with the validation and training code (see DESIGN.md):

- ``images``: ``images.npy`` uint8 (N, H, W, C) + one manifest row per sample.
- ``stereo``: ``pairs/<pair_id>/{left.png,right.png,disparity.npy}`` + one row per pair.
- ``sketch``: ``photo/<class>/<photo_id>.png``, ``sketch/<class>/<photo_id>-<k>.png`` + one row
  per file.

Every kind also writes ``manifest.parquet`` and ``meta.json`` (``kind``, ``source``, ``name`` and
kind-specific keys). Splits are seeded and stratified by class, and never leak: identical images
(same SHA-256 of their pixel bytes) are grouped so that all copies land in one split, and
official test samples whose pixels also occur in the training pool are dropped and counted.

Writers build into whatever folder they are given; :func:`staging_dir` makes the final folder
appear at once (build in a sibling, rename at the end). :func:`write_content_digest` adds
``digest.json``, one MD5 over every file's bytes: the stages that read a dataset depend on that
small file instead of the folder (see dvc.yaml), and ``validate`` checks it still matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from simlearn.data.readers import read_image
from simlearn.data.splits import (
    SPLITS,
    assign_splits,
    carve_stratified,
    drop_cross_split_duplicates,
    split_pairs,
    stratified_subsample,
)
from simlearn.disparity import valid_ground_truth  # the one rule: finite and > 0

__all__ = [
    "IMAGE_COLUMNS",
    "SKETCH_COLUMNS",
    "SPLITS",
    "STEREO_COLUMNS",
    "StereoPair",
    "assign_splits",
    "carve_stratified",
    "DIGEST_FILE",
    "content_digest",
    "digest_mismatch",
    "drop_cross_split_duplicates",
    "pixel_stats",
    "sample_sha256",
    "split_pairs",
    "staging_dir",
    "stratified_subsample",
    "write_content_digest",
    "write_image_dataset",
    "write_sketch_dataset",
    "write_stereo_dataset",
]


IMAGE_COLUMNS = {
    "id": "str",
    "index": "int64",
    "split": "str",
    "label": "int64",
    "class_name": "str",
    "path": "str",
    "height": "int64",
    "width": "int64",
    "channels": "int64",
    "dtype": "str",
    "mean": "float64",
    "std": "float64",
    "min": "float64",
    "max": "float64",
    "sha256": "str",
}
STEREO_COLUMNS = {
    "id": "str",
    "split": "str",
    "left_path": "str",
    "right_path": "str",
    "disparity_path": "str",
    "height": "int64",
    "width": "int64",
    "left_height": "int64",
    "left_width": "int64",
    "right_height": "int64",
    "right_width": "int64",
    "channels": "int64",
    "max_disp": "float64",
    "valid_fraction": "float64",
    "disp_min": "float64",
    "disp_max": "float64",
    "mean": "float64",
    "std": "float64",
}
SKETCH_COLUMNS = {
    "id": "str",
    "domain": "str",
    "class_name": "str",
    "label": "int64",
    "photo_id": "str",
    "path": "str",
    "split": "str",
    "height": "int64",
    "width": "int64",
    "channels": "int64",
    "mean": "float64",
    "std": "float64",
    "sha256": "str",
}


# ----------------------------------------------------------------------------- small helpers


def sample_sha256(array: np.ndarray) -> str:
    """Hex SHA-256 of a sample's raw pixel bytes (C order), the identity used for de-duplication."""
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def pixel_stats(images: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Per-sample mean, std (population), min and max of the pixel values.

    Args:
        images: (N, ...) any numeric dtype.
    Returns:
        float64 (N, 4): columns mean, std, min, max. Computed in chunks so that float64 copies of
        a large set never exist at once.
    """
    n = len(images)
    out = np.empty((n, 4), dtype=np.float64)
    for start in range(0, n, chunk):
        block = np.asarray(images[start : start + chunk]).reshape(min(chunk, n - start), -1)
        block = block.astype(np.float64)  # (b, P)
        out[start : start + len(block)] = np.stack(
            [block.mean(1), block.std(1), block.min(1), block.max(1)], axis=1
        )
    return out


def _typed(frame: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    frame = frame[list(columns)].copy()
    for col, dtype in columns.items():
        frame[col] = frame[col].astype(dtype)
    return frame.reset_index(drop=True)


def _split_counts(split: pd.Series) -> dict[str, int]:
    return {s: int((split == s).sum()) for s in SPLITS if (split == s).any()}


def _write_manifest_and_meta(out_dir: Path, manifest: pd.DataFrame, meta: dict[str, Any]) -> None:
    manifest.to_parquet(out_dir / "manifest.parquet", index=False)
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def sweep_stale(out_dir: Path) -> list[Path]:
    """Remove what a killed build of ``out_dir`` left beside it: ``.<name>.partial-<pid>`` and
    ``.<name>.old-<pid>`` (and anything named after them, such as a generator's scratch folder
    ``.<name>.partial-<pid>.raw``) whose process no longer runs. Returns what was removed."""
    pattern = re.compile(rf"^\.{re.escape(out_dir.name)}\.(?:partial|old)-(\d+)(?:\..*)?$")
    removed = []
    for entry in sorted(out_dir.parent.iterdir()) if out_dir.parent.is_dir() else []:
        match = pattern.match(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (signal 0 probes without sending anything)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


#: the file :func:`write_content_digest` adds to a dataset folder
DIGEST_FILE = "digest.json"


def content_digest(folder: str | Path) -> dict[str, Any]:
    """One MD5 over every file of ``folder`` but ``digest.json``: of the lines ``<md5 of the
    file's bytes>  <path relative to folder, POSIX>``, sorted by path, as ``md5sum`` prints them;
    for a Parquet file, the MD5 of the table it holds (:func:`parquet_content`). Also the number
    of files and the bytes hashed.

    Why Parquet files by their table: a Parquet file records the version of the library that
    wrote it (its footer's ``created_by``; pandas adds its own and pyarrow's versions to the
    schema), so the same manifest written after a pyarrow release had other bytes: a fresh
    clone whose pyarrow was 26.0.1, not the committed dvc.lock's 25.0.1, retrained all 30
    experiments to the same metrics (every ``manifest.parquet`` differed, no other file).

    Why a digest of our own: ``train@``, ``embed@`` and ``evaluate@`` of every experiment read
    their dataset, and DVC walks and stats a folder dependency file by file each time it checks a
    stage. sketch_synthetic's 7,682 files, walked by its 4 experiments' 12 stages, made ``dvc
    status`` of the default project take 5.36 s against 3.09 s with the stages depending on this
    one file (``benchmarks/bench_pipeline.py`` prints both, side by side; Sketchy's 87,000 files
    would cost 10x more per walk). The digest changes exactly when a file's bytes, name or
    presence do.
    """
    root = Path(folder)
    lines, n, size = [], 0, 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel == DIGEST_FILE:
            continue
        if path.suffix == ".parquet":
            content = parquet_content(path)
            lines.append(f"{hashlib.md5(content).hexdigest()}  {rel}\n")
            size += len(content)
        else:
            with path.open("rb") as f:
                lines.append(f"{hashlib.file_digest(f, 'md5').hexdigest()}  {rel}\n")
            size += path.stat().st_size
        n += 1
    md5 = hashlib.md5("".join(lines).encode()).hexdigest()
    return {"md5": md5, "files": n, "bytes": size}


def parquet_content(path: str | Path) -> bytes:
    """The table of a Parquet file as bytes that depend on its columns and values alone: the
    Arrow IPC stream of the table without any schema or field metadata (no writer or pandas
    version), in one record batch whatever the file's compression, row groups or pages: the
    same for the four default datasets' manifests written by pyarrow 25.0.1 and by 26.0.1,
    whose files differ. A file that is not
    Parquet fails with pyarrow's error, as reading it for training would."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    schema = pa.schema([f.remove_metadata() for f in table.schema])  # and none of the schema's
    table = table.cast(schema).combine_chunks()  # one batch, however many row groups
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_content_digest(folder: str | Path) -> dict[str, Any]:
    """Write ``folder/digest.json`` (:func:`content_digest`) and return it."""
    digest = content_digest(folder)
    (Path(folder) / DIGEST_FILE).write_text(json.dumps(digest, indent=2) + "\n")
    return digest


def digest_mismatch(folder: str | Path) -> str | None:
    """Why ``folder``'s files no longer match its ``digest.json`` (a file edited, added or
    removed after the download wrote them), or None when they match."""
    folder = Path(folder)
    path = folder / DIGEST_FILE
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        return f"{path} cannot be read ({e.__class__.__name__}); the download writes it last"
    now = content_digest(folder)
    if now == recorded:
        return None
    return (
        f"{folder} changed after its download wrote it: {now['files']} files, {now['bytes']} "
        f"bytes, md5 {now['md5']}; {path} records {recorded.get('files')} files, "
        f"{recorded.get('bytes')} bytes, md5 {recorded.get('md5')}"
    )


@contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """Build into a hidden sibling of ``out_dir`` and rename it into place on success.

    On an exception the partial folder is removed and ``out_dir`` is left as it was, so a failed
    build never leaves half a dataset behind.
    """
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------- images


def write_image_dataset(
    out_dir: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    *,
    source: str,
    name: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    official_split: np.ndarray | None = None,
    max_per_split: int | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the canonical ``images`` form and return its manifest.

    Args:
        images: uint8 (N, H, W, C), in the source's order (official train first, then test).
        labels: int (N,) in 0..len(class_names)-1.
        official_split: "train" | "test" per sample where the source has official splits; val
            is then carved from train. None: a stratified train/val/test split is drawn.
        max_per_split: keep at most this many samples per split (stratified, seeded).

    Ids are ``<source>-<position in the source>`` (zero-padded), so they do not change when
    ``max_per_split`` keeps fewer rows. ``index`` is the row in ``images.npy``.
    """
    out_dir = Path(out_dir)
    images = np.asarray(images)
    labels = np.asarray(labels, dtype=np.int64)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images: expected uint8 (N, H, W, C), got {images.dtype} {images.shape}")
    if len(labels) != len(images):
        raise ValueError(f"labels ({len(labels)}) and images ({len(images)}) differ in length")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(f"labels must lie in 0..{len(class_names) - 1}")
    n, height, width, channels = images.shape
    hashes = np.array([sample_sha256(img) for img in images], dtype=object)  # (N,)
    split = assign_splits(
        labels,
        hashes,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
        official=official_split,
    )
    keep = drop_cross_split_duplicates(split, hashes)
    dropped = int((~keep).sum())
    if max_per_split is not None:
        rng = np.random.default_rng([seed, 1])  # a stream apart from the split's
        capped = np.zeros(n, dtype=bool)
        for s in SPLITS:
            rows = np.flatnonzero(keep & (split == s))
            capped[rows[stratified_subsample(labels[rows], max_per_split, rng)]] = True
        keep = capped
    rows = np.flatnonzero(keep)  # positions in the source, ascending
    kept = images[rows]  # (M, H, W, C)
    np.save(out_dir / "images.npy", kept)
    stats = pixel_stats(kept)  # (M, 4)
    digits = max(5, len(str(max(n - 1, 0))))
    manifest = pd.DataFrame(
        {
            "id": [f"{source}-{i:0{digits}d}" for i in rows],
            "index": np.arange(len(rows), dtype=np.int64),
            "split": split[rows],
            "label": labels[rows],
            "class_name": [class_names[c] for c in labels[rows]],
            "path": "images.npy",
            "height": height,
            "width": width,
            "channels": channels,
            "dtype": "uint8",
            "mean": stats[:, 0],
            "std": stats[:, 1],
            "min": stats[:, 2],
            "max": stats[:, 3],
            "sha256": hashes[rows],
        }
    )
    manifest = _typed(manifest, IMAGE_COLUMNS)
    meta = {
        **(extra_meta or {}),
        "kind": "images",
        "source": source,
        "name": name,
        "num_classes": len(class_names),
        "class_names": list(class_names),
        "shape": [height, width, channels],
        "split_counts": _split_counts(manifest["split"]),
        "dropped_duplicates": dropped,
    }
    _write_manifest_and_meta(out_dir, manifest, meta)
    return manifest


# ----------------------------------------------------------------------------- stereo


@dataclass(frozen=True)
class StereoPair:
    """One rectified pair with ground truth, as loaded from a source."""

    left: np.ndarray  # uint8 (H, W, 3) or (H, W)
    right: np.ndarray  # uint8 (H, W', 3) or (H, W'); same height as left
    disparity: np.ndarray  # float (H, W) for the left view; NaN or inf = no ground truth
    max_disp: float  # an upper bound of the disparity search range for this pair, in pixels


def write_stereo_dataset(
    out_dir: str | Path,
    loaders: Mapping[str, Callable[[], StereoPair]],
    splits: Mapping[str, str],
    *,
    source: str,
    name: str,
    extra_meta: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the canonical ``stereo`` form and return its manifest.

    Args:
        loaders: pair_id -> function loading that pair; only the pairs in ``splits`` are loaded,
            one at a time, so a large set never sits in memory.
        splits: pair_id -> "train" | "val" | "test".

    Non-finite disparities are stored as NaN. Fails when a pair's ground truth exceeds its
    ``max_disp`` or its views and disparity disagree in size.
    """
    out_dir = Path(out_dir)
    unknown = sorted(set(splits) - set(loaders))
    if unknown:
        raise ValueError(f"splits name pairs with no loader: {unknown[:5]}")
    bad = sorted({s for s in splits.values() if s not in SPLITS})
    if bad:
        raise ValueError(f"split values {bad}: allowed are {', '.join(SPLITS)}")
    records = []
    for pair_id in sorted(splits):
        pair = loaders[pair_id]()
        left, right = np.asarray(pair.left), np.asarray(pair.right)
        disparity = np.asarray(pair.disparity, dtype=np.float32).copy()  # (H, W)
        disparity[~np.isfinite(disparity)] = np.nan
        if left.dtype != np.uint8 or right.dtype != np.uint8:
            raise ValueError(f"{pair_id}: views must be uint8, got {left.dtype}, {right.dtype}")
        if disparity.shape != left.shape[:2] or right.shape[0] != left.shape[0]:
            raise ValueError(
                f"{pair_id}: sizes disagree: left {left.shape}, right {right.shape}, "
                f"disparity {disparity.shape}"
            )
        valid = np.isfinite(disparity)
        disp_min = float(disparity[valid].min()) if valid.any() else float("nan")
        disp_max = float(disparity[valid].max()) if valid.any() else float("nan")
        if valid.any() and disp_max > pair.max_disp:
            raise ValueError(
                f"{pair_id}: ground truth reaches {disp_max} > max_disp {pair.max_disp}"
            )
        folder = out_dir / "pairs" / pair_id
        folder.mkdir(parents=True)
        Image.fromarray(left).save(folder / "left.png")
        Image.fromarray(right).save(folder / "right.png")
        np.save(folder / "disparity.npy", disparity)
        rel = Path("pairs") / pair_id
        left_f = left.astype(np.float64)
        records.append(
            {
                "id": pair_id,
                "split": splits[pair_id],
                "left_path": (rel / "left.png").as_posix(),
                "right_path": (rel / "right.png").as_posix(),
                "disparity_path": (rel / "disparity.npy").as_posix(),
                "height": disparity.shape[0],
                "width": disparity.shape[1],
                "left_height": left.shape[0],
                "left_width": left.shape[1],
                "right_height": right.shape[0],
                "right_width": right.shape[1],
                "channels": left.shape[2] if left.ndim == 3 else 1,
                "max_disp": float(pair.max_disp),
                "valid_fraction": float(valid_ground_truth(disparity).mean()),
                "disp_min": disp_min,
                "disp_max": disp_max,
                "mean": float(left_f.mean()),
                "std": float(left_f.std()),
            }
        )
    manifest = _typed(pd.DataFrame(records, columns=list(STEREO_COLUMNS)), STEREO_COLUMNS)
    meta = {
        **(extra_meta or {}),
        "kind": "stereo",
        "source": source,
        "name": name,
        "num_pairs": len(manifest),
        "split_counts": _split_counts(manifest["split"]),
    }
    _write_manifest_and_meta(out_dir, manifest, meta)
    return manifest


# ----------------------------------------------------------------------------- sketch


def _plain_png(path: Path) -> bool:
    """A PNG that decodes to 8-bit L or RGB with no transparency: copying its bytes stores the
    same pixels as decoding and re-encoding it (PNG is lossless), without the encoding. Writing
    the 7,680 files of ``sketch_synthetic``: 3.1-6.4 s with copies, 5.1-9.4 s re-encoding (3
    alternating runs on a busy 2-core machine); the files are byte-identical either way, as the
    generator saves with PIL's defaults."""
    with Image.open(path) as img:
        return img.format == "PNG" and img.mode in ("L", "RGB") and "transparency" not in img.info


def write_sketch_dataset(
    out_dir: str | Path,
    listing: pd.DataFrame,
    *,
    source: str,
    name: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    max_per_split: int | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the canonical ``sketch`` form from a :func:`~simlearn.data.readers.list_sketchy`
    listing and return its manifest.

    Splits are drawn per photo (stratified by class, seeded): a photo and all its sketches share
    one split. ``max_per_split`` caps the number of photos per split (stratified); their sketches
    follow them. Images are stored as PNG, 8-bit greyscale or RGB as decoded; ``sha256`` hashes
    the decoded pixel bytes.
    """
    out_dir = Path(out_dir)
    photos = listing[listing["domain"] == "photo"].reset_index(drop=True)
    if photos.duplicated(["class_name", "photo_id"]).any():
        raise ValueError("the listing has the same photo twice")
    if photos["photo_id"].duplicated().any():
        dup = photos.loc[photos["photo_id"].duplicated(), "photo_id"].iloc[0]
        raise ValueError(f"photo id {dup!r} occurs in two classes; photo ids must be unique")
    class_names = sorted(photos["class_name"].unique())
    label_of = {c: i for i, c in enumerate(class_names)}
    photo_labels = photos["class_name"].map(label_of).to_numpy(np.int64)
    photo_split = assign_splits(
        photo_labels,
        photos["photo_id"].to_numpy(object),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    keep = np.ones(len(photos), dtype=bool)
    if max_per_split is not None:
        rng = np.random.default_rng([seed, 1])
        keep[:] = False
        for s in SPLITS:
            rows = np.flatnonzero(photo_split == s)
            keep[rows[stratified_subsample(photo_labels[rows], max_per_split, rng)]] = True
    split_of = dict(zip(photos["photo_id"][keep], photo_split[keep], strict=True))
    rows = listing[listing["photo_id"].isin(list(split_of))].sort_values(
        ["domain", "class_name", "photo_id", "sketch_index"]
    )
    records = []
    for row in rows.itertuples(index=False):
        src = Path(row.source_path)
        if row.domain == "photo":
            rel = Path("photo") / row.class_name / f"{row.photo_id}.png"
            sample_id = f"photo-{row.photo_id}"
        else:
            rel = Path("sketch") / row.class_name / f"{row.photo_id}-{row.sketch_index}.png"
            sample_id = f"sketch-{row.photo_id}-{row.sketch_index}"
        array = read_image(src)  # (H, W) or (H, W, 3) uint8
        dest = out_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if _plain_png(src):  # already what this form stores: the file, not a re-encoding
            shutil.copyfile(src, dest)
        else:
            Image.fromarray(array).save(dest)
        values = array.astype(np.float64)
        records.append(
            {
                "id": sample_id,
                "domain": row.domain,
                "class_name": row.class_name,
                "label": label_of[row.class_name],
                "photo_id": row.photo_id,
                "path": rel.as_posix(),
                "split": split_of[row.photo_id],
                "height": array.shape[0],
                "width": array.shape[1],
                "channels": array.shape[2] if array.ndim == 3 else 1,
                "mean": float(values.mean()),
                "std": float(values.std()),
                "sha256": sample_sha256(array),
            }
        )
    manifest = _typed(pd.DataFrame(records, columns=list(SKETCH_COLUMNS)), SKETCH_COLUMNS)
    if manifest["id"].duplicated().any():
        raise ValueError(f"duplicate ids: {manifest.loc[manifest['id'].duplicated(), 'id'][:5]}")
    meta = {
        **(extra_meta or {}),
        "kind": "sketch",
        "source": source,
        "name": name,
        "num_classes": len(class_names),
        "class_names": class_names,
        "split_counts": _split_counts(manifest["split"]),
        "domain_counts": {d: int((manifest["domain"] == d).sum()) for d in ("photo", "sketch")},
    }
    _write_manifest_and_meta(out_dir, manifest, meta)
    return manifest
