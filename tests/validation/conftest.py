"""Builders of tiny canonical datasets (the download stage's contract), one per data kind.

Each builder writes a valid dataset; the session-scoped pristine copies are copied per test
(`images_dir`, `stereo_dir`, `sketch_dir`) so a test can corrupt its own copy. `ds` bundles the
helpers tests use to edit a copy consistently (manifest, meta, image statistics, PNG writing).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

IMAGE_CLASSES = ["zero", "one", "two"]
IMAGE_SPLIT_SIZES = {"train": 6, "val": 2, "test": 2}  # per class: 3 x 10 = 30 images
IMAGE_SHAPE = (8, 8, 1)
STEREO_SIZE = (32, 48)  # (H, W)
STEREO_MAX_DISP = 16.0
SKETCH_CLASSES = ["cat", "dog", "owl"]
SKETCH_PHOTOS_PER_CLASS = 3  # photo 0 and 1 in train, photo 2 in test
SKETCHES_PER_PHOTO = 2
SKETCH_SIZE = (16, 16)


# ----------------------------------------------------------------------------- helpers


def read_manifest(data_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(data_dir / "manifest.parquet")


def write_manifest(data_dir: Path, manifest: pd.DataFrame) -> None:
    manifest.to_parquet(data_dir / "manifest.parquet", index=False)


def read_meta(data_dir: Path) -> dict[str, Any]:
    return json.loads((data_dir / "meta.json").read_text())


def write_meta(data_dir: Path, meta: dict[str, Any]) -> None:
    (data_dir / "meta.json").write_text(json.dumps(meta, indent=2))


def pixel_stats(pixels: np.ndarray) -> dict[str, float]:
    """The manifest's per-sample statistics of an image array."""
    values = pixels.astype(np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def disparity_stats(disparity: np.ndarray) -> dict[str, float]:
    from simlearn.disparity import valid_ground_truth

    valid = np.isfinite(disparity)  # the range covers every stored value
    return {
        "valid_fraction": float(valid_ground_truth(disparity).mean()),
        "disp_min": float(disparity[valid].min()),
        "disp_max": float(disparity[valid].max()),
    }


# ----------------------------------------------------------------------------- builders


def make_images_dataset(root: Path, seed: int = 0) -> Path:
    """30 random 8x8x1 uint8 images, 3 classes, 18 train / 6 val / 6 test."""
    rng = np.random.default_rng(seed)
    data_dir = root / "tiny-images"
    data_dir.mkdir(parents=True)
    labels, splits = [], []
    for label in range(len(IMAGE_CLASSES)):
        for split, count in IMAGE_SPLIT_SIZES.items():
            labels += [label] * count
            splits += [split] * count
    images = rng.integers(0, 256, size=(len(labels), *IMAGE_SHAPE), dtype=np.uint8)
    np.save(data_dir / "images.npy", images)
    rows = []
    for i, (label, split) in enumerate(zip(labels, splits, strict=True)):
        rows.append(
            {
                "id": f"img-{i:04d}",
                "index": i,
                "split": split,
                "label": label,
                "class_name": IMAGE_CLASSES[label],
                "path": "images.npy",
                "height": IMAGE_SHAPE[0],
                "width": IMAGE_SHAPE[1],
                "channels": IMAGE_SHAPE[2],
                "dtype": "uint8",
                **pixel_stats(images[i]),
                "sha256": sha256_hex(images[i].tobytes()),
            }
        )
    manifest = pd.DataFrame(rows).astype({"index": "int64", "label": "int64"})
    write_manifest(data_dir, manifest)
    write_meta(
        data_dir,
        {
            "kind": "images",
            "source": "test",
            "name": "tiny-images",
            "num_classes": len(IMAGE_CLASSES),
            "class_names": IMAGE_CLASSES,
            "shape": list(IMAGE_SHAPE),
            "split_counts": {s: n * len(IMAGE_CLASSES) for s, n in IMAGE_SPLIT_SIZES.items()},
            "dropped_duplicates": 0,
        },
    )
    return data_dir


def make_stereo_dataset(root: Path, seed: int = 0) -> Path:
    """2 stereo pairs of 32x48 RGB images (train, test); disparity in [1, 12], 10 % NaN."""
    rng = np.random.default_rng(seed)
    data_dir = root / "tiny-stereo"
    data_dir.mkdir(parents=True)
    height, width = STEREO_SIZE
    rows = []
    for k, split in enumerate(["train", "test"]):
        pair = f"pair-{k}"
        left = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        right = np.roll(left, -4, axis=1)  # a constant 4 px shift, as a rectified pair would
        disparity = rng.uniform(1.0, 12.0, size=(height, width)).astype(np.float32)
        disparity[rng.random((height, width)) < 0.1] = np.nan  # no ground truth there
        folder = data_dir / "pairs" / pair
        write_png(folder / "left.png", left)
        write_png(folder / "right.png", right)
        np.save(folder / "disparity.npy", disparity)
        stats = pixel_stats(left)
        rows.append(
            {
                "id": pair,
                "split": split,
                "left_path": f"pairs/{pair}/left.png",
                "right_path": f"pairs/{pair}/right.png",
                "disparity_path": f"pairs/{pair}/disparity.npy",
                "height": height,
                "width": width,
                "left_height": height,
                "left_width": width,
                "right_height": height,
                "right_width": width,
                "channels": 3,
                "max_disp": STEREO_MAX_DISP,
                **disparity_stats(disparity),
                "mean": stats["mean"],
                "std": stats["std"],
            }
        )
    write_manifest(data_dir, pd.DataFrame(rows))
    write_meta(
        data_dir,
        {
            "kind": "stereo",
            "source": "test",
            "name": "tiny-stereo",
            "split_counts": {"train": 1, "test": 1},
        },
    )
    return data_dir


def make_sketch_dataset(root: Path, seed: int = 0) -> Path:
    """3 classes x 3 photos (16x16 RGB) x 2 sketches (16x16 gray) in the Sketchy layout."""
    rng = np.random.default_rng(seed)
    data_dir = root / "tiny-sketch"
    data_dir.mkdir(parents=True)
    height, width = SKETCH_SIZE
    rows = []

    def add_row(domain: str, label: int, photo_id: str, rel: str, split: str, pixels: np.ndarray):
        write_png(data_dir / rel, pixels)
        stats = pixel_stats(pixels)
        rows.append(
            {
                "id": rel.removesuffix(".png"),
                "domain": domain,
                "class_name": SKETCH_CLASSES[label],
                "label": label,
                "photo_id": photo_id,
                "path": rel,
                "split": split,
                "height": height,
                "width": width,
                "channels": 1 if pixels.ndim == 2 else pixels.shape[2],
                "mean": stats["mean"],
                "std": stats["std"],
                "sha256": sha256_hex((data_dir / rel).read_bytes()),
            }
        )

    for label, name in enumerate(SKETCH_CLASSES):
        for j in range(SKETCH_PHOTOS_PER_CLASS):
            photo_id = f"{name}_{j}"
            split = "test" if j == SKETCH_PHOTOS_PER_CLASS - 1 else "train"
            photo = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            add_row("photo", label, photo_id, f"photo/{name}/{photo_id}.png", split, photo)
            for k in range(1, SKETCHES_PER_PHOTO + 1):
                strokes = np.where(rng.random((height, width)) < 0.2, 0, 255).astype(np.uint8)
                rel = f"sketch/{name}/{photo_id}-{k}.png"
                add_row("sketch", label, photo_id, rel, split, strokes)
    manifest = pd.DataFrame(rows).astype({"label": "int64"})
    write_manifest(data_dir, manifest)
    per_split = manifest["split"].value_counts()
    write_meta(
        data_dir,
        {
            "kind": "sketch",
            "source": "test",
            "name": "tiny-sketch",
            "num_classes": len(SKETCH_CLASSES),
            "class_names": SKETCH_CLASSES,
            "split_counts": {s: int(per_split[s]) for s in ("train", "test")},
        },
    )
    return data_dir


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One valid dataset of each kind, built once; tests corrupt copies, never these."""
    root = tmp_path_factory.mktemp("pristine")
    return {
        "images": make_images_dataset(root),
        "stereo": make_stereo_dataset(root),
        "sketch": make_sketch_dataset(root),
    }


def _copy(source: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(source, tmp_path / source.name))


@pytest.fixture
def images_dir(pristine: dict[str, Path], tmp_path: Path) -> Path:
    return _copy(pristine["images"], tmp_path)


@pytest.fixture
def stereo_dir(pristine: dict[str, Path], tmp_path: Path) -> Path:
    return _copy(pristine["stereo"], tmp_path)


@pytest.fixture
def sketch_dir(pristine: dict[str, Path], tmp_path: Path) -> Path:
    return _copy(pristine["sketch"], tmp_path)


@pytest.fixture
def ds() -> SimpleNamespace:
    """Helpers to edit a dataset copy consistently."""
    return SimpleNamespace(
        read_manifest=read_manifest,
        write_manifest=write_manifest,
        read_meta=read_meta,
        write_meta=write_meta,
        pixel_stats=pixel_stats,
        sha256_hex=sha256_hex,
        write_png=write_png,
        disparity_stats=disparity_stats,
    )


@pytest.fixture
def failed() -> Callable[[Any], set[tuple[str, str]]]:
    """(expectation_type, target) of every failed expectation of a report."""

    def failed_checks(report: Any) -> set[tuple[str, str]]:
        return {(r.expectation_type, r.target) for r in report.results if not r.success}

    return failed_checks


# ----------------------------------------------------------------------------- kind "files"

FILES_CLASSES = ["ant", "bee", "cat", "dog"]  # split_by class: ant, bee train; cat, dog test
FILES_TRAIN_CLASSES = [0, 1]
FILES_TEST_CLASSES = [2, 3]
FILES_PER_CLASS = 4  # train classes: 3 train + 1 val; test classes: 4 test
FILES_SOURCE = "image_folder"
FILES_COLUMNS_DTYPES = {
    "id": "str", "split": "str", "label": "int64", "class_name": "str", "path": "str",
    "source_path": "str", "height": "int64", "width": "int64", "mode": "str", "format": "str",
    "bytes": "int64", "sha256": "str", "is_query": "bool", "is_gallery": "bool",
}  # fmt: skip


def image_file_facts(path: Path) -> dict[str, Any]:
    """What the download stage records of one file: header values (-1 / "" when the header is
    unreadable), size and sha256 of the bytes."""
    data = path.read_bytes()
    facts: dict[str, Any] = {"bytes": len(data), "sha256": sha256_hex(data)}
    try:
        with Image.open(path) as img:
            facts.update(height=img.height, width=img.width, mode=img.mode, format=img.format)
    except OSError:
        facts.update(height=-1, width=-1, mode="", format="")
    return facts


def _source_image(rng: np.random.Generator, k: int) -> tuple[Image.Image, str]:
    """A small random image; k picks the mode, size and format: mostly RGB JPEG and PNG, one
    greyscale PNG, one CMYK JPEG and one RGBA PNG (converted at load time, valid here)."""
    height, width = 12 + (k % 5) * 4, 16 + (k % 3) * 4
    pixels = rng.integers(0, 256, size=(height, width, 4), dtype=np.uint8)
    if k == 1:
        return Image.fromarray(pixels[..., 0], mode="L"), ".png"
    if k == 2:
        return Image.fromarray(pixels, mode="CMYK"), ".jpg"
    if k == 3:
        return Image.fromarray(pixels, mode="RGBA"), ".png"
    return Image.fromarray(pixels[..., :3], mode="RGB"), (".jpg" if k % 2 == 0 else ".png")


def make_files_dataset(root: Path, seed: int = 0) -> Path:
    """A valid dataset of kind "files" written as the download stage writes one: the user's
    folder `root/source/<class>/<k>.<ext>` copied to `images/<label:04d>/<id><ext>`, 4 classes
    x 4 images, split_by class (ant, bee: 3 train + 1 val each; cat, dog: 4 test each)."""
    rng = np.random.default_rng(seed)
    source = root / "files-source"
    data_dir = root / "tiny-files"
    rows = []
    for label, name in enumerate(FILES_CLASSES):
        for j in range(FILES_PER_CLASS):
            k = label * FILES_PER_CLASS + j
            image, ext = _source_image(rng, k)
            original = source / name / f"{j}{ext.upper() if k == 4 else ext}"  # one .JPG
            original.parent.mkdir(parents=True, exist_ok=True)
            image.save(original, format="JPEG" if ext == ".jpg" else "PNG")
            sample_id = f"{FILES_SOURCE}-{k:05d}"
            rel = f"images/{label:04d}/{sample_id}{ext}"
            (data_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(original, data_dir / rel)
            if label in FILES_TEST_CLASSES:
                split = "test"
            else:
                split = "val" if j == FILES_PER_CLASS - 1 else "train"
            rows.append(
                {
                    "id": sample_id,
                    "split": split,
                    "label": label,
                    "class_name": name,
                    "path": rel,
                    "source_path": str(original),
                    **image_file_facts(data_dir / rel),
                    "is_query": True,
                    "is_gallery": True,
                }
            )
    manifest = pd.DataFrame(rows, columns=list(FILES_COLUMNS_DTYPES)).astype(FILES_COLUMNS_DTYPES)
    write_manifest(data_dir, manifest)
    counts = manifest["split"].value_counts()
    modes = manifest["mode"].value_counts()
    write_meta(
        data_dir,
        {
            "kind": "files",
            "source": FILES_SOURCE,
            "name": "tiny-files",
            "num_classes": len(FILES_CLASSES),
            "class_names": FILES_CLASSES,
            "empty_classes": [],
            "image_size": 16,
            "resize": "crop",
            "channels": 3,
            "split_by": "class",
            "train_classes": FILES_TRAIN_CLASSES,
            "test_classes": FILES_TEST_CLASSES,
            "split_counts": {s: int(counts[s]) for s in ("train", "val", "test")},
            "conversions": {m: int(n) for m, n in modes.items() if m != "RGB"},
            "shape": [16, 16, 3],
            "unreadable": 0,
        },
    )
    return data_dir


@pytest.fixture(scope="session")
def pristine_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The valid "files" dataset (and its source folder), built once."""
    return make_files_dataset(tmp_path_factory.mktemp("pristine-files"))


@pytest.fixture
def files_dir(pristine_files: Path, tmp_path: Path) -> Path:
    """A copy of the "files" dataset whose source_path values point at a copy of the source
    folder, so a test may corrupt both."""
    shutil.copytree(pristine_files.parent / "files-source", tmp_path / "files-source")
    data_dir = _copy(pristine_files, tmp_path)
    manifest = read_manifest(data_dir)
    old, new = str(pristine_files.parent), str(tmp_path)
    manifest["source_path"] = [new + p[len(old) :] for p in manifest["source_path"]]
    write_manifest(data_dir, manifest)
    return data_dir


@pytest.fixture
def file_facts() -> Callable[[Path], dict[str, Any]]:
    """:func:`image_file_facts`: what the download stage records of one file."""
    return image_file_facts
