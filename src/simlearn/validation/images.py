"""Suite for kind "images": `images.npy` uint8 (N, H, W, C) plus one manifest row per sample.

Tables validated:
- `manifest`: the raw manifest has the contract's columns and at least one row.
- `files`: images.npy loads as a 4-D numpy array. When it does not (truncated, corrupt, not a
  .npy file), this expectation fails naming the file and the reason, and the tables below, which
  all need the pixels, are skipped.
- `samples`: manifest rows plus values recomputed from images.npy (`file_*` shape, dtype,
  sha256 and pixel statistics of row `index`), label/class agreement and leakage flags.
- `dataset`: one row comparing images.npy with meta.json and the manifest as a whole.
- `splits`: one row per expected split with its row count.
- `classes`: one row per class 0..C-1 with its number of train rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.expectations import Expectation

from simlearn.validation.common import (
    TableCheck,
    add_leakage_flags,
    class_table,
    expect_between,
    expect_columns,
    expect_equal,
    expect_in_set,
    expect_rows,
    expect_true,
    expect_type,
    expect_unique,
    expected_splits,
    id_and_split_expectations,
    label_matches_class_name,
    leakage_expectations,
    pixel_stat_expectations,
    sha256_hex,
    split_expectations,
    split_table,
    stats_match,
    with_columns,
)

ARRAY_FILE = "images.npy"
COLUMNS: tuple[str, ...] = (
    "id", "index", "split", "label", "class_name", "path", "height", "width", "channels",
    "dtype", "mean", "std", "min", "max", "sha256",
)  # fmt: skip
META_KEYS: tuple[str, ...] = ("num_classes", "class_names", "shape")
CHUNK = 4096  # rows of images.npy read at once when recomputing hashes and statistics


def build_tables(
    data_dir: Path,
    meta: Mapping[str, Any],
    manifest: pd.DataFrame,
    *,
    min_rows_per_split: int,
    splits: Sequence[str] | None = None,
) -> list[TableCheck]:
    """The tables and expectations of the images suite for the dataset in `data_dir`."""
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(
            f"{data_dir / 'meta.json'} lacks {missing} needed for kind 'images' "
            f"(required keys: {', '.join(META_KEYS)})"
        )
    shape = [int(v) for v in meta["shape"]]
    if len(shape) != 3:
        raise ValueError(f"meta.json shape must be [H, W, C], got {meta['shape']!r}")
    array_path = data_dir / ARRAY_FILE
    if not array_path.is_file():
        raise FileNotFoundError(f"{array_path} is missing: the images dataset has no pixel array")
    array, error = _open_array(array_path)  # (N, H, W, C) uint8, read in chunks
    files = pd.DataFrame(
        {
            "file": [ARRAY_FILE],
            "loads": [array is not None],
            "error": [error],
            "ndim": pd.Series([None if array is None else array.ndim], dtype="Int64"),
        }
    )
    file_checks = [
        expect_true("loads", f"{ARRAY_FILE} loads as a numpy array (not truncated or corrupt)"),
        expect_in_set("ndim", [4], f"{ARRAY_FILE} is 4-D (N, H, W, C)"),
    ]
    manifest_checks = [expect_columns(COLUMNS, "manifest"), expect_rows(1, "manifest")]
    if array is None or array.ndim == 0:  # nothing below can be computed without the pixels
        return [
            TableCheck("manifest", manifest, manifest_checks, []),
            TableCheck("files", files, file_checks, ["file", "error"]),
        ]
    class_names = [str(c) for c in meta["class_names"]]
    num_classes = int(meta["num_classes"])

    samples = _samples_frame(with_columns(manifest, COLUMNS), array, class_names)
    expected = expected_splits(meta, manifest, splits)
    splits_frame = split_table(samples, expected, meta)
    classes = class_table(
        samples,
        [class_names[k] if k < len(class_names) else "" for k in range(num_classes)],
        {"train_rows": pd.Series(True, index=samples.index)},
    )
    dataset = pd.DataFrame(
        {
            "name": [str(meta.get("name", data_dir.name))],
            "array_rows": [int(array.shape[0])],
            "manifest_rows": [len(manifest)],
            "array_shape": ["x".join(str(d) for d in array.shape[1:])],
            "meta_shape": ["x".join(str(d) for d in shape)],
            "num_classes": [num_classes],
            "class_name_count": [len(class_names)],
        }
    )
    sample_checks = _sample_expectations(shape, num_classes, int(array.shape[0]))
    split_checks = split_expectations(splits_frame, min_rows_per_split)
    class_checks = [expect_between("train_rows", "every class 0..C-1 has train rows", 1)]
    return [
        TableCheck("manifest", manifest, manifest_checks, []),
        TableCheck("files", files, file_checks, ["file", "error"]),
        TableCheck("samples", samples, sample_checks, ["id"]),
        TableCheck("dataset", dataset, _dataset_expectations(), ["name"]),
        TableCheck("splits", splits_frame, split_checks, ["split"]),
        TableCheck("classes", classes, class_checks, ["label", "class_name"]),
    ]


def _open_array(path: Path) -> tuple[np.ndarray | None, str | None]:
    """The memory-mapped array at ``path``, or None and why it cannot be read.

    numpy raises ValueError for a truncated file ("mmap length is greater than file size"), a
    corrupt header or a pickle (allow_pickle is off), EOFError for an empty file and OSError when
    the file cannot be read at all.
    """
    try:
        return np.load(path, mmap_mode="r"), None
    except (OSError, ValueError, EOFError) as err:
        if "pickled" in str(err):  # numpy's own message suggests loading it unsafely: never
            return None, "ValueError: not a .npy array file (numpy would have to unpickle it)"
        if "mmap length" in str(err):
            return None, f"ValueError: truncated: the header promises more bytes ({err})"
        return None, f"{type(err).__name__}: {err}"


def _samples_frame(frame: pd.DataFrame, array: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """Adds per-row values recomputed from images.npy row `index` (None where `index` is not a
    valid row), label/class agreement and leakage flags."""
    n = len(frame)
    index = pd.to_numeric(frame["index"], errors="coerce").to_numpy(dtype=np.float64)  # (n,)
    ok = np.isfinite(index) & (index >= 0) & (index < array.shape[0]) & (index == np.round(index))
    positions = np.flatnonzero(ok)  # manifest rows that point at a real array row
    rows = index[positions].astype(np.int64)

    digests: list[str | None] = [None] * n
    mean, low, high = (np.full(n, np.nan) for _ in range(3))  # (n,) each
    for start in range(0, len(rows), CHUNK):
        block = np.asarray(array[rows[start : start + CHUNK]])  # (b, H, W, C)
        flat = block.reshape(len(block), -1)  # (b, H*W*C)
        at = positions[start : start + CHUNK]
        mean[at] = flat.mean(axis=1, dtype=np.float64)
        low[at] = flat.min(axis=1)
        high[at] = flat.max(axis=1)
        for pos, sample in zip(at, block, strict=True):
            digests[pos] = sha256_hex(np.ascontiguousarray(sample).tobytes())

    dims = list(array.shape[1:]) if array.ndim == 4 else [None, None, None]
    frame["file_height"] = pd.Series([dims[0] if k else None for k in ok], dtype="Int64")
    frame["file_width"] = pd.Series([dims[1] if k else None for k in ok], dtype="Int64")
    frame["file_channels"] = pd.Series([dims[2] if k else None for k in ok], dtype="Int64")
    frame["file_dtype"] = pd.Series([str(array.dtype) if k else None for k in ok], dtype=object)
    frame["file_sha256"] = pd.Series(digests, dtype=object)
    frame["file_mean"], frame["file_min"], frame["file_max"] = mean, low, high
    match = (
        stats_match(frame["mean"], frame["file_mean"])
        & stats_match(frame["min"], frame["file_min"])
        & stats_match(frame["max"], frame["file_max"])
    )
    # Rows without an array row are reported by the index checks, not here.
    frame["stats_match_file"] = pd.Series(
        [bool(m) if k else None for m, k in zip(match, ok, strict=True)], dtype=object
    )
    frame["class_name_matches_label"] = label_matches_class_name(
        frame["label"], frame["class_name"], class_names
    )
    add_leakage_flags(frame, "file_sha256")
    return frame


def _sample_expectations(shape: list[int], num_classes: int, array_rows: int) -> list[Expectation]:
    height, width, channels = shape
    last = array_rows - 1
    return [
        *id_and_split_expectations(),
        expect_type("label", "int64", "label is int64"),
        expect_between("label", f"label lies in 0..{num_classes - 1}", 0, num_classes - 1),
        expect_true("class_name_matches_label", "class_name equals meta class_names[label]"),
        expect_type("index", "int64", "index is int64"),
        expect_between("index", f"index is a row of images.npy (0..{last})", 0, last),
        expect_unique("index", "each images.npy row belongs to one sample"),
        expect_in_set("path", [ARRAY_FILE], f"path is {ARRAY_FILE}"),
        expect_in_set("dtype", ["uint8"], "manifest dtype is uint8"),
        expect_in_set("file_dtype", ["uint8"], "images.npy dtype is uint8"),
        expect_in_set("height", [height], f"height equals meta.json shape ({height})"),
        expect_in_set("width", [width], f"width equals meta.json shape ({width})"),
        expect_in_set("channels", [channels], f"channels equals meta.json shape ({channels})"),
        expect_equal("file_height", "height", "manifest height equals images.npy"),
        expect_equal("file_width", "width", "manifest width equals images.npy"),
        expect_equal("file_channels", "channels", "manifest channels equals images.npy"),
        *pixel_stat_expectations(("mean", "std", "min", "max")),
        expect_true("stats_match_file", "manifest mean/min/max equal those of the images.npy row"),
        expect_equal("file_sha256", "sha256", "manifest sha256 equals that of the images.npy row"),
        *leakage_expectations(),
    ]


def _dataset_expectations() -> list[Expectation]:
    return [
        expect_equal("array_rows", "manifest_rows", "images.npy has one row per manifest row"),
        expect_equal("array_shape", "meta_shape", "images.npy sample shape equals meta.json shape"),
        expect_equal("num_classes", "class_name_count", "num_classes equals len(class_names)"),
    ]
