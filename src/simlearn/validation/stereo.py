"""Suite for kind "stereo": per pair `left.png`, `right.png`, `disparity.npy` (float32 (H, W),
NaN = no ground truth) and one manifest row per pair.

Tables validated:
- `manifest`: the raw manifest has the contract's columns and at least one row.
- `pairs`: manifest rows plus values recomputed from the files: image sizes and channels
  (`file_left_*`, `file_right_*`), disparity shape, dtype, valid fraction and range
  (`file_disp_*`, `file_valid_fraction`), and leakage flags from the left image's pixels.
- `splits`: one row per expected split with its number of pairs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.expectations import Expectation

from simlearn.disparity import valid_ground_truth
from simlearn.validation.common import (
    TableCheck,
    add_leakage_flags,
    expect_at_least,
    expect_between,
    expect_columns,
    expect_equal,
    expect_in_set,
    expect_rows,
    expect_true,
    expected_splits,
    id_and_split_expectations,
    leakage_expectations,
    pixel_stat_expectations,
    read_image,
    resolve,
    sha256_hex,
    split_expectations,
    split_table,
    stats_match,
    with_columns,
)

COLUMNS: tuple[str, ...] = (
    "id", "split", "left_path", "right_path", "disparity_path", "height", "width",
    "left_height", "left_width", "right_height", "right_width", "channels", "max_disp",
    "valid_fraction", "disp_min", "disp_max", "mean", "std",
)  # fmt: skip


def build_tables(
    data_dir: Path,
    meta: Mapping[str, Any],
    manifest: pd.DataFrame,
    *,
    min_rows_per_split: int,
    min_valid_fraction: float,
    splits: Sequence[str] | None = None,
) -> list[TableCheck]:
    """The tables and expectations of the stereo suite for the dataset in `data_dir`."""
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise ValueError(f"min_valid_fraction must lie in [0, 1], got {min_valid_fraction!r}")
    pairs = _pairs_frame(data_dir, with_columns(manifest, COLUMNS))
    splits_frame = split_table(pairs, expected_splits(meta, manifest, splits), meta)
    manifest_checks = [expect_columns(COLUMNS, "manifest"), expect_rows(1, "manifest")]
    split_checks = split_expectations(splits_frame, min_rows_per_split)
    return [
        TableCheck("manifest", manifest, manifest_checks, []),
        TableCheck("pairs", pairs, _pair_expectations(min_valid_fraction), ["id"]),
        TableCheck("splits", splits_frame, split_checks, ["split"]),
    ]


def _image_facts(path: Path | None) -> dict[str, Any]:
    """Size, channels and pixel digest of one image; all None when missing or undecodable."""
    pixels = None if path is None else read_image(path)
    if pixels is None:
        return {"ok": False, "height": None, "width": None, "channels": None, "sha256": None}
    channels = 1 if pixels.ndim == 2 else int(pixels.shape[2])
    digest = sha256_hex(np.ascontiguousarray(pixels).tobytes())
    return {
        "ok": True,
        "height": int(pixels.shape[0]),
        "width": int(pixels.shape[1]),
        "channels": channels,
        "sha256": digest,
    }


def _disparity_facts(path: Path | None) -> dict[str, Any]:
    """Shape, dtype, valid fraction and range over valid (finite) pixels of one disparity map."""
    facts: dict[str, Any] = {
        "ok": False, "height": None, "width": None, "ndim": None, "dtype": None,
        "valid_fraction": np.nan, "min": np.nan, "max": np.nan,
    }  # fmt: skip
    try:
        disparity = np.load(path) if path is not None else None
    except (OSError, ValueError, EOFError):  # missing, truncated, empty or pickled file
        disparity = None
    if not isinstance(disparity, np.ndarray):
        return facts
    facts.update(ok=True, ndim=int(disparity.ndim), dtype=str(disparity.dtype))
    if disparity.ndim == 2:
        facts.update(height=int(disparity.shape[0]), width=int(disparity.shape[1]))
    if disparity.size and np.issubdtype(disparity.dtype, np.number):
        valid = valid_ground_truth(disparity)  # (H, W): the metrics' rule, finite and > 0
        facts["valid_fraction"] = float(valid.mean())
        stored = np.isfinite(disparity)  # the range is checked on every stored value, so that a
        if stored.any():  # negative one (corrupt, not "no ground truth") fails file_disp_min
            facts["min"] = float(disparity[stored].min())
            facts["max"] = float(disparity[stored].max())
    return facts


def _pairs_frame(data_dir: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Adds per-pair values recomputed from the left, right and disparity files."""
    left = [_image_facts(resolve(data_dir, p)) for p in frame["left_path"]]
    right = [_image_facts(resolve(data_dir, p)) for p in frame["right_path"]]
    disp = [_disparity_facts(resolve(data_dir, p)) for p in frame["disparity_path"]]
    for side, facts in (("left", left), ("right", right)):
        frame[f"{side}_file_ok"] = [f["ok"] for f in facts]
        for key in ("height", "width", "channels"):
            frame[f"file_{side}_{key}"] = pd.Series([f[key] for f in facts], dtype="Int64")
    frame["disparity_file_ok"] = [f["ok"] for f in disp]
    frame["file_disp_ndim"] = pd.Series([f["ndim"] for f in disp], dtype="Int64")
    frame["file_disp_height"] = pd.Series([f["height"] for f in disp], dtype="Int64")
    frame["file_disp_width"] = pd.Series([f["width"] for f in disp], dtype="Int64")
    frame["file_disp_dtype"] = pd.Series([f["dtype"] for f in disp], dtype=object)
    frame["file_valid_fraction"] = [f["valid_fraction"] for f in disp]
    frame["file_disp_min"] = [f["min"] for f in disp]
    frame["file_disp_max"] = [f["max"] for f in disp]
    match = (
        stats_match(frame["valid_fraction"], frame["file_valid_fraction"])
        & stats_match(frame["disp_min"], frame["file_disp_min"])
        & stats_match(frame["disp_max"], frame["file_disp_max"])
    )
    frame["disparity_stats_match_file"] = pd.Series(
        [bool(m) if f["ok"] else None for m, f in zip(match, disp, strict=True)], dtype=object
    )
    frame["file_left_sha256"] = pd.Series([f["sha256"] for f in left], dtype=object)
    add_leakage_flags(frame, "file_left_sha256")
    return frame


def _pair_expectations(min_valid_fraction: float) -> list[Expectation]:
    return [
        *id_and_split_expectations(),
        expect_true("left_file_ok", "left image exists and decodes"),
        expect_true("right_file_ok", "right image exists and decodes"),
        expect_true("disparity_file_ok", "disparity.npy exists and loads"),
        expect_equal("file_left_height", "left_height", "manifest left_height equals left.png"),
        expect_equal("file_left_width", "left_width", "manifest left_width equals left.png"),
        expect_equal("file_right_height", "right_height", "manifest right_height equals right.png"),
        expect_equal("file_right_width", "right_width", "manifest right_width equals right.png"),
        expect_equal("file_left_height", "height", "manifest height equals left.png"),
        expect_equal("file_left_width", "width", "manifest width equals left.png"),
        expect_equal("file_left_channels", "channels", "manifest channels equals left.png"),
        expect_equal("file_left_height", "file_right_height", "left and right have equal height"),
        expect_equal("file_left_width", "file_right_width", "left and right have equal width"),
        expect_equal("file_left_channels", "file_right_channels", "left, right: equal channels"),
        expect_in_set("file_disp_ndim", [2], "disparity.npy is 2-D (H, W)"),
        expect_in_set("file_disp_dtype", ["float32"], "disparity.npy is float32"),
        expect_equal("file_disp_height", "file_left_height", "disparity height equals left image"),
        expect_equal("file_disp_width", "file_left_width", "disparity width equals left image"),
        expect_between("max_disp", "max_disp is positive", 0.0, strict_min=True),
        expect_between("file_disp_min", "valid disparities are >= 0", 0.0),
        expect_at_least("max_disp", "file_disp_max", "valid disparities are <= max_disp"),
        expect_between(
            "file_valid_fraction",
            f"at least {min_valid_fraction:g} of the pixels have ground truth",
            min_valid_fraction,
            1.0,
        ),
        expect_true(
            "disparity_stats_match_file",
            "manifest valid_fraction/disp_min/disp_max equal those of disparity.npy",
        ),
        *pixel_stat_expectations(("mean", "std")),
        *leakage_expectations(),
    ]
