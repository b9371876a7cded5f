"""Kind ``files``: a labelled image set kept as image files on disk, one manifest row per image.

A user's folder of photos, a manifest, or a benchmark archive (CUB-200, Cars196, SOP) becomes::

    data/<name>/images/<label:04d>/<id><ext>   byte-for-byte copies of the source files
    data/<name>/manifest.parquet               FILES_COLUMNS, one row per image
    data/<name>/meta.json                      kind "files", classes, split, how images are read

Nothing is decoded when the set is written: :func:`write_files_dataset` reads each file's header
(size, mode, format) and hashes its bytes. Pixels are decoded when they are read, by
:class:`FileImages`, an array-like ``(N, S, S, C)`` uint8 whose rows are decoded on demand in a
pool of threads, so memory holds a batch, never the set. :func:`device_images` turns a dataset's
images (a numpy array or a :class:`FileImages`) into the ``(rows, device) -> (B, C, S, S)``
callable the trainers draw batches from.

Decoding (:func:`decode_file`) matches torchvision's ``Resize(S)`` + ``CenterCrop(S)`` on the
image PIL decodes (same output size rule, same crop offsets, PIL's bilinear filter, which
antialiases when it shrinks), with two shortcuts that change pixels slightly and save most of
the time on large photos: a JPEG is decoded at a reduced scale (``Image.draft``: 1/2, 1/4 or 1/8,
never below ``REDUCING_GAP`` times the size needed), and PIL's ``reducing_gap`` shrinks by an
integer factor first when the image is at least ``2 * REDUCING_GAP`` times the resized size.
Where neither applies (any image less than 4x the output), the pixels of an L or RGB image
equal torchvision's exactly (torchvision drops an alpha channel; we composite it on white).
"""

from __future__ import annotations

import hashlib
import math
import operator
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from simlearn.config import ConfigError, DatasetConfig
from simlearn.config.datasets import default_workers
from simlearn.data.errors import CorruptFileError

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = [
    "FILES_COLUMNS",
    "IMAGE_EXTENSIONS",
    "REDUCING_GAP",
    "DeviceImages",
    "FileImages",
    "ImageFileError",
    "decode_file",
    "device_images",
    "read_header",
    "write_files_dataset",
]

FILES_COLUMNS = {
    "id": "str",  # <source>-<position in the source listing, zero padded>
    "split": "str",  # train | val | test
    "label": "int64",  # 0..C-1, in meta.json's class_names order
    "class_name": "str",
    "path": "str",  # the copy, relative to data/<name>
    "source_path": "str",  # the original file, for messages
    "height": "int64",  # from the header; -1 when it cannot be read
    "width": "int64",
    "mode": "str",  # PIL mode (L, RGB, RGBA, CMYK, P, I;16, ...); "" when unreadable
    "format": "str",  # PIL format (JPEG, PNG, WEBP, BMP); "" when unreadable
    "bytes": "int64",  # file size
    "sha256": "str",  # of the file's bytes
    "is_query": "bool",  # test split: ranked against the gallery
    "is_gallery": "bool",  # test split: what queries are ranked against
}

#: what an image folder's files may end with (compared lower-cased)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")

#: JPEG draft and PIL's reducing_gap: shrink cheaply down to this many times the output size,
#: then filter properly (PIL's thumbnail uses 2.0 too)
REDUCING_GAP = 2.0

_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class ImageFileError(CorruptFileError):
    """An image file cannot be decoded, or a table of images (a manifest) is malformed; the
    message names the file (and the rows)."""


# ----------------------------------------------------------------------------- headers


def read_header(path: str | Path) -> dict[str, Any]:
    """A file's header fields and hash, without decoding its pixels.

    Returns:
        ``height``, ``width`` (-1 when PIL cannot read the header), ``mode``, ``format`` (""
        then), ``bytes`` and ``sha256`` (of the file's bytes). A file that cannot be *read* at
        all (missing, no permission) raises OSError.
    """
    path = Path(path)
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    header: dict[str, Any] = {"height": -1, "width": -1, "mode": "", "format": ""}
    try:
        with Image.open(path) as img:
            header = {
                "height": img.height,
                "width": img.width,
                "mode": img.mode,
                "format": img.format or "",
            }
    except Exception:  # any header PIL cannot read is recorded, not raised
        pass
    return {**header, "bytes": path.stat().st_size, "sha256": digest}


# ----------------------------------------------------------------------------- writer


def write_files_dataset(
    out_dir: Path,
    table: pd.DataFrame,
    cfg: DatasetConfig,
    *,
    source: str,
    name: str,
    class_names: Sequence[str] | None = None,
    log: Callable[[str], None] = print,
    extra_meta: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Write the canonical ``files`` form of ``table``'s images into ``out_dir``; return the
    manifest (:data:`FILES_COLUMNS`).

    Args:
        table: one row per source image, in the source's order: ``path`` (absolute), ``class_name``,
            optional ``split`` (train | val | test; with only train and test, val is carved from
            train by ``cfg.val_fraction``, stratified), optional ``is_query``, ``is_gallery``
            (bool, default True).
        cfg: the dataset's config: seed, val/test fractions, ``split_by`` and ``test_classes``
            (used when ``table`` has no split), ``max_per_split``, and the reading keys
            ``image_size``, ``resize``, ``channels``, ``workers`` (recorded in meta.json).
        class_names: the label order (default: the sorted class names of ``table``); a class
            listed without rows is an empty class (kept, and named in meta.json).
        log: receives the one line about converted images and the one about unreadable headers.
        extra_meta: more meta.json keys (provenance, ...).

    Without a ``split`` column the split follows ``cfg.split_by`` (null: "class"): "class" puts
    ``cfg.test_classes`` (null: 0.5; a fraction of all classes drawn with ``cfg.seed``, or a
    list of names) in test and carves val from the other classes' images; "image" draws test
    and val from every class (``assign_splits``). Either way identical files (same SHA-256) are
    kept together when val (and test) are drawn from a pool. Nothing is dropped: an unreadable
    header, an empty class or the same bytes in two splits are recorded for the validate stage,
    which fails on each, naming the files.
    """
    # imported here, as the writer runs: the stages that only read a dataset (train, embed,
    # evaluate) import this module for FileImages, and their code digest need not cover the
    # writers (nor loading params pay for pandas)
    import pandas as pd

    from simlearn.data.canonical import _split_counts, _typed, _write_manifest_and_meta
    from simlearn.data.splits import SPLITS, stratified_subsample

    out_dir = Path(out_dir)
    table = _checked_table(table, class_names, name)
    if class_names is None:
        class_names = sorted(table["class_name"].unique())
    names = [str(c) for c in class_names]
    label_of = {c: i for i, c in enumerate(names)}
    labels = table["class_name"].map(label_of).to_numpy(np.int64)  # (N,)
    n = len(table)
    workers = cfg.workers or default_workers()
    with ThreadPoolExecutor(workers, thread_name_prefix="files-header") as pool:
        headers = pd.DataFrame(list(pool.map(read_header, table["path"])), index=table.index)
    hashes = headers["sha256"].to_numpy(object)  # (N,)
    split, split_by, class_sides = _assign(table, labels, hashes, names, cfg, name)
    keep = np.ones(n, dtype=bool)
    if cfg.max_per_split is not None:
        rng = np.random.default_rng([cfg.seed, 1])  # a stream apart from the split's
        keep[:] = False
        for s in SPLITS:
            rows = np.flatnonzero(split == s)
            keep[rows[stratified_subsample(labels[rows], cfg.max_per_split, rng)]] = True
    rows = np.flatnonzero(keep)  # positions in the source, ascending
    digits = max(5, len(str(max(n - 1, 0))))
    ids = [f"{source}-{i:0{digits}d}" for i in rows]
    sources = table["path"].to_numpy(str)[rows]
    rel = [
        f"images/{labels[i]:04d}/{sample_id}{Path(src).suffix.lower()}"
        for i, sample_id, src in zip(rows, ids, sources, strict=True)
    ]
    for folder in sorted({Path(r).parent for r in rel}):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(workers, thread_name_prefix="files-copy") as pool:
        # copies, never links: DVC makes its cache read-only, and a hard link would be the
        # user's own file
        list(pool.map(shutil.copyfile, sources, [out_dir / r for r in rel]))
    head = headers.iloc[rows]
    manifest = pd.DataFrame(
        {
            "id": ids,
            "split": split[rows],
            "label": labels[rows],
            "class_name": [names[c] for c in labels[rows]],
            "path": rel,
            "source_path": sources,
            "height": head["height"].to_numpy(),
            "width": head["width"].to_numpy(),
            "mode": head["mode"].to_numpy(),
            "format": head["format"].to_numpy(),
            "bytes": head["bytes"].to_numpy(),
            "sha256": head["sha256"].to_numpy(),
            "is_query": table["is_query"].to_numpy(bool)[rows],
            "is_gallery": table["is_gallery"].to_numpy(bool)[rows],
        }
    )
    manifest = _typed(manifest, FILES_COLUMNS)
    target = "RGB" if cfg.channels == 3 else "L"
    modes = manifest["mode"][(manifest["mode"] != "") & (manifest["mode"] != target)]
    conversions = dict(Counter(modes.tolist()))  # in order of first occurrence
    if conversions:
        log(
            f"[{name}] {len(modes):,} of {len(manifest):,} images are converted to {target} at "
            f"load time: {', '.join(f'{k:,} {m}' for m, k in conversions.items())}"
        )
    unreadable = manifest.loc[manifest["height"] < 0, "source_path"].tolist()
    if unreadable:
        shown = ", ".join(unreadable[:3]) + (", ..." if len(unreadable) > 3 else "")
        log(
            f"[{name}] {len(unreadable):,} of {len(manifest):,} files have no readable image "
            f"header ({shown}): the validate stage will name each"
        )
    counts = np.bincount(labels, minlength=len(names))  # before max_per_split: the source's
    meta: dict[str, Any] = {
        **(extra_meta or {}),
        "kind": "files",
        "source": source,
        "name": name,
        "num_classes": len(names),
        "class_names": names,
        "empty_classes": [c for c, k in zip(names, counts, strict=True) if k == 0],
        "image_size": cfg.image_size,
        "resize": cfg.resize,
        "channels": cfg.channels,
        "workers": cfg.workers,  # null: min(8, CPUs) of the machine that reads
        "split_by": split_by,
        **class_sides,
        "split_counts": _split_counts(manifest["split"]),
        "conversions": conversions,
        "shape": [cfg.image_size, cfg.image_size, cfg.channels],
        "unreadable": len(unreadable),
    }
    _write_manifest_and_meta(out_dir, manifest, meta)
    return manifest


def _checked_table(
    table: pd.DataFrame, class_names: Sequence[str] | None, name: str
) -> pd.DataFrame:
    """``table`` with its columns checked and is_query/is_gallery filled in (default True)."""
    import pandas as pd

    from simlearn.data.splits import SPLITS

    missing = [c for c in ("path", "class_name") if c not in table.columns]
    if missing:
        raise ValueError(f"[{name}] the image table lacks columns {missing}")
    table = table.reset_index(drop=True).copy()
    table["path"] = table["path"].astype(str)
    table["class_name"] = table["class_name"].astype(str)
    for col in ("is_query", "is_gallery"):
        if col not in table.columns:
            table[col] = True
        elif not pd.api.types.is_bool_dtype(table[col]):
            raise ValueError(
                f"[{name}] column {col} is {table[col].dtype}, not bool: parse it first "
                "(a string 'False' would read as True)"
            )
    if class_names is not None:
        unknown = sorted(set(table["class_name"]) - {str(c) for c in class_names})
        if unknown:
            raise ValueError(f"[{name}] rows name classes not in class_names: {unknown[:5]}")
        if len(set(map(str, class_names))) != len(class_names):
            raise ValueError(f"[{name}] class_names has duplicates")
    if "split" in table.columns:
        bad = np.flatnonzero(~table["split"].isin(SPLITS).to_numpy())
        if len(bad):
            raise ValueError(
                f"[{name}] split values {sorted(set(table['split'].iloc[bad].astype(str)))[:5]} "
                f"in rows {bad[:5].tolist()}: allowed: {', '.join(SPLITS)}"
            )
    return table


def _assign(
    table: pd.DataFrame,
    labels: np.ndarray,
    hashes: np.ndarray,
    names: list[str],
    cfg: DatasetConfig,
    name: str,
) -> tuple[np.ndarray, str, dict[str, list[int]]]:
    """(split per row, meta's split_by, meta's train_classes/test_classes)."""
    from simlearn.data.splits import assign_splits, carve_stratified

    if "split" in table.columns:
        given = table["split"].to_numpy(object)
        if (given == "val").any():
            split = given.copy()
        else:  # train and test given: carve val from train, as for official splits
            split = assign_splits(
                labels, hashes, val_fraction=cfg.val_fraction, test_fraction=0.0,
                seed=cfg.seed, official=given,
            )  # fmt: skip
        test = np.unique(labels[split == "test"])
        train = np.unique(labels[split != "test"])
        # disjoint classes: a benchmark's (or a user's) class protocol; shared classes: the
        # user's own image-level split, which the class-disjointness checks must not judge
        split_by = "official" if not np.intersect1d(train, test).size else "given"
        return split, split_by, {"train_classes": train.tolist(), "test_classes": test.tolist()}
    split_by = cfg.split_by or "class"
    if split_by == "image":
        split = assign_splits(
            labels, hashes, val_fraction=cfg.val_fraction, test_fraction=cfg.test_fraction,
            seed=cfg.seed,
        )  # fmt: skip
        return split, "image", {}
    rng = np.random.default_rng(cfg.seed)
    test = _test_classes(cfg, names, rng, name)  # sorted label ids
    is_test = np.isin(labels, test)
    split = np.full(len(labels), "train", dtype=object)
    split[is_test] = "test"
    pool = np.flatnonzero(~is_test)
    split[pool[carve_stratified(labels[pool], hashes[pool], cfg.val_fraction, rng)]] = "val"
    train = np.setdiff1d(np.arange(len(names)), test)
    return split, "class", {"train_classes": train.tolist(), "test_classes": test.tolist()}


def _test_classes(
    cfg: DatasetConfig, names: list[str], rng: np.random.Generator, name: str
) -> np.ndarray:
    """The label ids of the test classes under split_by class, checked against the classes."""
    chosen = cfg.test_classes if cfg.test_classes is not None else 0.5
    c = len(names)
    key = f"datasets.{name}.test_classes"
    if isinstance(chosen, tuple):
        index = {n: i for i, n in enumerate(names)}
        unknown = [n for n in chosen if n not in index]
        if unknown:
            listed = ", ".join(names[:10]) + (", ..." if c > 10 else "")
            raise ConfigError(
                f"{key}={list(chosen)!r}: {unknown[:5]} are not classes of the data; its {c} "
                f"classes: {listed}"
            )
        test = np.sort(np.array([index[n] for n in chosen], dtype=np.int64))
        shown: object = list(chosen)
    else:
        k = int(math.floor(c * chosen + 0.5))  # round half up
        test = np.sort(rng.permutation(c)[:k]).astype(np.int64)
        shown = chosen
    if not 0 < len(test) < c:
        raise ConfigError(
            f"{key}={shown!r}: puts {len(test)} of the {c} classes in test; split_by: class "
            "needs at least one class on each side (at least 2 classes in all)"
        )
    return test


# ----------------------------------------------------------------------------- decoding


def decode_file(
    path: str | Path, image_size: int, resize: str = "crop", channels: int = 3
) -> np.ndarray:
    """One image file -> uint8 ``(image_size, image_size, channels)``.

    ``resize="crop"``: the shorter side becomes ``image_size`` (the longer one
    ``int(image_size * long / short)``, torchvision's ``Resize`` rule), then the centre square is
    kept (offsets rounded as torchvision's ``CenterCrop``). ``"stretch"``: the whole image is
    resized to the square. Filter: PIL's bilinear, antialiased when shrinking. (Resampling only
    the kept square through PIL's ``box`` was tried: it saves a little on oblong images, but the
    float box moves about 1 pixel in 100 by one grey level, and equality with torchvision is
    worth more.)

    Modes: L and RGB are read as they are (a greyscale image is resized, then replicated to RGB);
    an image with transparency (RGBA, LA, PA, P or L with a transparent colour) is composited on
    white, so transparent backgrounds read white rather than whatever colour the transparent
    pixels hold; 16-bit greyscale (I;16, I) is scaled to 8 bits (v / 257, rounded); CMYK, P,
    YCbCr, 1 and the rest go through PIL's ``convert`` (CMYK without colour management).

    Raises:
        ImageFileError: the file is missing, not an image, or truncated; the message names it.
    """
    target = "RGB" if channels == 3 else "L"
    try:
        with Image.open(path) as img:
            w, h = img.size
            size, crop = _geometry(w, h, image_size, resize)
            box = None  # the region of the decoded image that is the whole original
            if img.format == "JPEG" and size[0] * REDUCING_GAP < w and size[1] * REDUCING_GAP < h:
                # decode at 1/2, 1/4 or 1/8 scale while that leaves >= REDUCING_GAP x the size
                need = (math.ceil(size[0] * REDUCING_GAP), math.ceil(size[1] * REDUCING_GAP))
                drafted = img.draft(target, need)
                if drafted is not None and drafted[1][2] < w:
                    box = drafted[1]  # (0, 0, w / scale, h / scale)
            img = _read_mode(img, target)
            img = img.resize(size, Image.Resampling.BILINEAR, box, reducing_gap=REDUCING_GAP)
            if crop is not None:
                img = img.crop(crop)
            if img.mode != target:  # L read for an RGB set: replicate after resizing
                img = img.convert(target)
            array = np.asarray(img, dtype=np.uint8)
    except Exception as e:  # whatever PIL raises, say which file
        raise ImageFileError(
            f"{path}: cannot decode the image ({type(e).__name__}: {e}); the validate stage "
            "checks every file of a dataset before training"
        ) from e
    return array.reshape(image_size, image_size, channels)


def _geometry(
    w: int, h: int, size: int, resize: str
) -> tuple[tuple[int, int], tuple[int, int, int, int] | None]:
    """(the size a (w, h) image is resized to, the crop box of the output square, or None)."""
    if resize == "stretch":
        return (size, size), None
    if w <= h:  # torchvision Resize(size): shorter side -> size, the longer truncated
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    left = int(round((new_w - size) / 2.0))  # torchvision CenterCrop's offsets
    top = int(round((new_h - size) / 2.0))
    crop = (left, top, left + size, top + size)
    return (new_w, new_h), None if (new_w, new_h) == (size, size) else crop


def _read_mode(img: Image.Image, target: str) -> Image.Image:
    """``img`` in ``target`` mode, or in L when that is cheaper to resize first (L -> RGB)."""
    mode = img.mode
    transparent = mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info)
    if transparent:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert(target)
    if mode == target or (mode == "L" and target == "RGB"):
        return img
    if mode == "I" or mode.startswith("I;16"):
        values = np.asarray(img).astype(np.uint32)  # (H, W) 0..65535
        grey = Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8))  # v/257
        return grey if target == "L" else grey.convert("RGB")
    if target == "L" and mode not in ("RGB", "L"):
        return img.convert("RGB").convert("L")
    return img.convert(target)


class FileImages:
    """A read-only uint8 array ``(N, S, S, C)`` over image files, decoded when indexed.

    ``images[i]`` is ``(S, S, C)``; ``images[rows]`` (a slice, an int array, a bool mask of
    length N) is ``(B, S, S, C)``, decoded by :func:`decode_file` in a pool of ``workers``
    threads (PIL releases the GIL while it decodes and resizes). Nothing is cached: memory holds
    the rows asked for. ``np.asarray(images)`` decodes every row (avoid it on a large set).
    """

    dtype = np.dtype(np.uint8)
    ndim = 4

    def __init__(
        self,
        root: str | Path,
        paths: Iterable[str],
        image_size: int,
        resize: str = "crop",
        channels: int = 3,
        workers: int | None = None,
    ) -> None:
        if resize not in ("crop", "stretch"):
            raise ValueError(f"resize={resize!r}: allowed: crop, stretch")
        if channels not in (1, 3):
            raise ValueError(f"channels={channels!r}: allowed: 1, 3")
        self.root = Path(root)
        self.paths = [str(p) for p in paths]
        self.image_size = int(image_size)
        self.resize = resize
        self.channels = int(channels)
        self.workers = workers or default_workers()
        self.shape = (len(self.paths), self.image_size, self.image_size, self.channels)
        self._pool: ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"FileImages({len(self)} files under {self.root}, {self.image_size} px, "
            f"{self.resize}, {self.channels} channel(s), {self.workers} workers)"
        )

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, tuple):  # images[rows, ...]: rows first, the rest on the result
            first, rest = (key[0], key[1:]) if key else (slice(None), ())
            out = self[first]
            return out[rest] if _is_int(first) else out[(slice(None), *rest)]
        if key is Ellipsis:
            key = slice(None)
        if _is_int(key):
            i = operator.index(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"index {i} is out of bounds for {len(self)} images")
            return self._decode(i % len(self))
        if isinstance(key, slice):
            return self.read(np.arange(len(self))[key])
        rows = np.asarray(key.cpu() if hasattr(key, "cpu") else key)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise IndexError(f"a boolean mask of shape {rows.shape} for {len(self)} images")
            return self.read(np.flatnonzero(rows))
        if rows.size == 0:
            rows = rows.astype(np.int64)
        if not np.issubdtype(rows.dtype, np.integer):
            raise IndexError(f"images are indexed by ints, slices or masks, not {rows.dtype}")
        flat = rows.reshape(-1)
        if flat.size and (flat.min() < -len(self) or flat.max() >= len(self)):
            raise IndexError(f"indices out of bounds for {len(self)} images")
        return self.read(flat % max(len(self), 1)).reshape(*rows.shape, *self.shape[1:])

    def read(self, rows: np.ndarray) -> np.ndarray:
        """uint8 ``(B, S, S, C)`` of ``rows`` (non-negative ints), decoded in the pool."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows), *self.shape[1:]), dtype=np.uint8)  # (B, S, S, C)
        if len(rows) <= 1 or self.workers == 1:
            for i, r in enumerate(rows.tolist()):
                out[i] = self._decode(r)
            return out

        def fill(i: int) -> None:
            out[i] = self._decode(int(rows[i]))

        list(self.pool.map(fill, range(len(rows))))  # re-raises a worker's error
        return out

    def _decode(self, row: int) -> np.ndarray:
        return decode_file(self.root / self.paths[row], self.image_size, self.resize, self.channels)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        out = self.read(np.arange(len(self)))
        return out if dtype is None else out.astype(dtype)

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="files-decode")
        return self._pool

    def close(self) -> None:
        """Stop the decoding threads (a later read starts them again)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:  # picklable: the pool stays behind
        return {**self.__dict__, "_pool": None}


def _is_int(key: Any) -> bool:
    return isinstance(key, int | np.integer) and not isinstance(key, bool)


# ----------------------------------------------------------------------------- device batches


class DeviceImages:
    """A dataset's uint8 images (N, H, W, C), copied once to each device they are asked on;
    dataset rows -> float images (B, C, H, W) in [0, 1] there."""

    def __init__(self, images: np.ndarray) -> None:
        import torch

        self._cpu = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self._on_device: dict[str, Any] = {}

    def __call__(self, rows: np.ndarray, device: Any) -> torch.Tensor:
        import torch

        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = self._cpu.to(device)
        return self._on_device[key][torch.as_tensor(rows, device=device)].float().div_(255.0)


class _DeviceFiles:
    """Rows of a :class:`FileImages` decoded in its pool, sent to the device as uint8, and made
    float (B, C, S, S) in [0, 1] there: only the batch is ever in memory."""

    def __init__(self, images: FileImages) -> None:
        self.images = images

    def __call__(self, rows: np.ndarray, device: Any) -> torch.Tensor:
        import torch

        batch = torch.from_numpy(self.images[rows])  # (B, S, S, C) uint8
        return batch.to(device).permute(0, 3, 1, 2).float().div_(255.0)


def device_images(
    images: np.ndarray | FileImages,
) -> Callable[[np.ndarray, Any], torch.Tensor]:
    """``(rows, device) -> float (B, C, H, W) in [0, 1]`` over a dataset's images: a numpy array
    is copied to the device once (:class:`DeviceImages`); a :class:`FileImages` is decoded batch
    by batch, never copied whole."""
    if isinstance(images, FileImages):
        return _DeviceFiles(images)
    return DeviceImages(np.asarray(images))
