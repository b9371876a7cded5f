"""Source ``stereo_folder``: a user's own rectified stereo pairs, as a canonical ``stereo`` dataset.

The folder (``datasets.<name>.path``)::

    <path>/left/<stem>.png|.jpg|...        the left views (any of IMAGE_EXTENSIONS, any case)
    <path>/right/<stem>.<ext>              the right view of each, same stem, same size
    <path>/disparity/<stem>.pfm | .png     ground truth of the left view, same stem and size

Disparity maps are PFM (float, as Middlebury writes them; inf, NaN or 0 = unknown) or KITTI's
16-bit PNG (value = disparity x 256, 0 = unknown; it cannot hold 256 px or more, PFM can).
Files and folders whose name starts with "." are skipped, files of other types are ignored
and counted in the log.

Ground truth is what the stereo task learns from (triplets are drawn at known disparities) and
what every metric counts, so a pair without a disparity map can neither train nor be scored:
such pairs are left out, named in the log and in ``meta.json`` (``without_ground_truth``), and a
folder where no pair has one is refused. Pairs with ground truth are split like KITTI's
(:func:`~simlearn.data.splits.split_pairs`: seeded, ``val_fraction`` to val); a single pair is a
``test`` pair, evaluated on the held-out bottom rows like the motorcycle pair.

``max_disparity`` is the search range of training, the cost volume and SGM, so every
ground-truth value must lie within it. The whole folder is checked before anything is written
(names, sizes, readable headers, the disparity range): each problem is one error naming the
files and what to do, and nothing is left under the output folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from simlearn.config import ConfigError, DatasetConfig
from simlearn.data.canonical import StereoPair, write_stereo_dataset
from simlearn.data.errors import CorruptFileError, LayoutError
from simlearn.data.image_files import IMAGE_EXTENSIONS
from simlearn.data.readers import read_image, read_kitti_disparity, read_pfm
from simlearn.data.splits import split_pairs

__all__ = ["DISPARITY_EXTENSIONS", "PairFiles", "build_stereo_folder", "list_stereo_folder"]

#: ground-truth formats, by extension: float PFM, or KITTI's 16-bit PNG (value / 256)
DISPARITY_EXTENSIONS = (".pfm", ".png")
#: PIL modes of more than 8 bits per channel: read_image would clip them to 8 bits unasked
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
#: how many offending files a message lists before "and N more"
_SHOWN = 5


@dataclass(frozen=True)
class PairFiles:
    """The files of one pair; ``disparity`` is None when the pair has no ground truth."""

    stem: str
    left: Path
    right: Path
    disparity: Path | None


@dataclass(frozen=True)
class _Scanned:
    """What the up-front scan learned of a pair with ground truth."""

    files: PairFiles
    size: tuple[int, int]  # (H, W) of the left view
    grey: bool  # both views are single-channel
    gt_max: float  # the largest known disparity, NaN when none is known


def _shown(items: Sequence[Any]) -> str:
    """The first few items, then how many more."""
    head = ", ".join(str(i) for i in items[:_SHOWN])
    return head + (f" and {len(items) - _SHOWN:,} more" if len(items) > _SHOWN else "")


def _files_by_stem(folder: Path, extensions: Sequence[str]) -> tuple[dict[str, Path], list[Path]]:
    """``stem -> file`` for the files of ``folder`` (not below it) with one of ``extensions``,
    and the other files (ignored). Two files with one stem are an error: which is meant?"""
    found: dict[str, list[Path]] = {}
    ignored = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() in extensions:
            found.setdefault(path.stem, []).append(path)
        else:
            ignored.append(path)
    twice = [f"{' and '.join(p.name for p in paths)}" for paths in found.values() if len(paths) > 1]
    if twice:
        raise LayoutError(
            f"{folder}: {len(twice)} name(s) stand for more than one file ({_shown(twice)}); a "
            "pair is matched by file name without extension, so keep one file per name"
        )
    return {stem: paths[0] for stem, paths in found.items()}, ignored


def list_stereo_folder(root: Path) -> tuple[list[PairFiles], list[Path]]:
    """The pairs of a stereo folder, sorted by stem, and the files ignored (other types).

    Raises:
        LayoutError: ``left/`` or ``right/`` is missing or holds no image, an image has no
            partner in the other view, a disparity map has no left image, or no pair has a
            disparity map; the message names the folder and the files.
    """
    missing = [d for d in ("left", "right") if not (root / d).is_dir()]
    if missing:
        found = sorted(p.name + "/" for p in root.iterdir() if p.is_dir())
        raise LayoutError(
            f"{root}: no {' or '.join(d + '/' for d in missing)} folder (found: "
            f"{', '.join(found) or 'no folder'}); a stereo folder holds left/<name>.png, "
            "right/<name>.png and disparity/<name>.pfm (or 16-bit KITTI .png), with the same "
            "names in each"
        )
    left, ignored = _files_by_stem(root / "left", IMAGE_EXTENSIONS)
    right, other = _files_by_stem(root / "right", IMAGE_EXTENSIONS)
    ignored += other
    if not left:
        raise LayoutError(
            f"{root / 'left'}: no image ({', '.join(IMAGE_EXTENSIONS)}); put the left views of "
            "your rectified pairs there, and their right views under the same names in "
            f"{root / 'right'}"
        )
    disparity: dict[str, Path] = {}
    if (root / "disparity").is_dir():
        disparity, other = _files_by_stem(root / "disparity", DISPARITY_EXTENSIONS)
        ignored += other
    for what, names, there, partner in (
        ("left images", sorted(set(left) - set(right)), left, root / "right"),
        ("right images", sorted(set(right) - set(left)), right, root / "left"),
        ("disparity maps", sorted(set(disparity) - set(left)), disparity, root / "left"),
    ):
        if names:
            files = [there[n].relative_to(root) for n in names]
            raise LayoutError(
                f"{root}: {len(names):,} {what} have no partner of the same name in {partner} "
                f"({_shown(files)}); every pair is left/<name>, right/<name> (any image "
                "extension) and optionally disparity/<name>: rename or remove these files"
            )
    if not disparity:
        raise LayoutError(
            f"{root}: no ground truth: {root / 'disparity'} "
            f"{'holds no .pfm or .png file' if (root / 'disparity').is_dir() else 'does not exist'}"
            ". The stereo task learns from known disparities and scores against them; put the "
            "disparity of each left view there as <name>.pfm (float) or <name>.png (KITTI's "
            "16-bit format, value = disparity x 256, 0 = unknown)"
        )
    pairs = [PairFiles(s, left[s], right[s], disparity.get(s)) for s in sorted(left)]
    return pairs, ignored


# ----------------------------------------------------------------------------- reading


def _view_header(path: Path) -> tuple[tuple[int, int], str]:
    """((H, W), PIL mode) of an image file, without decoding its pixels."""
    try:
        with Image.open(path) as img:
            size, mode = (img.height, img.width), img.mode
    except Exception as e:  # whatever PIL raises, say which file
        raise CorruptFileError(
            f"{path}: cannot read the image ({type(e).__name__}: {e}); replace or remove the "
            "file (and its partners of the same name)"
        ) from e
    if mode in _WIDE_MODES:
        raise CorruptFileError(
            f"{path}: a {mode} image (more than 8 bits per channel); save the views as 8-bit "
            "greyscale or colour images"
        )
    return size, mode


def read_view(path: Path, grey: bool) -> np.ndarray:
    """An 8-bit view, (H, W) when ``grey`` else (H, W, 3) (greyscale replicated to RGB, so that
    every pair of a set has the channels of the first)."""
    try:
        array = read_image(path)
    except Exception as e:  # truncated or corrupt pixel data: name the file
        raise CorruptFileError(
            f"{path}: cannot decode the image ({type(e).__name__}: {e}); replace or remove the "
            "file (and its partners of the same name)"
        ) from e
    if grey:
        return array if array.ndim == 2 else array[..., 0]
    return np.repeat(array[..., None], 3, axis=2) if array.ndim == 2 else array


def read_disparity(path: Path) -> np.ndarray:
    """float32 (H, W) disparity of a .pfm or a KITTI 16-bit .png, NaN where unknown.

    Raises:
        CorruptFileError: unreadable, truncated, not one channel, not 16-bit (a .png), or holding
            negative disparities; the message names the file and what to do.
    """
    try:
        disparity = read_pfm(path) if path.suffix.lower() == ".pfm" else read_kitti_disparity(path)
    except Exception as e:
        fix = (
            "write it as PFM (float32, one channel)"
            if path.suffix.lower() == ".pfm"
            else "a .png disparity is read as KITTI's 16-bit format (value = disparity x 256, "
            "0 = unknown): save it as 16-bit greyscale, or as PFM (float)"
        )
        raise CorruptFileError(
            f"{path}: cannot read the disparity map ({type(e).__name__}: {e}); {fix}"
        ) from e
    if disparity.ndim != 2:
        raise CorruptFileError(
            f"{path}: {disparity.shape[2]} channels; a disparity map has one (PFM header Pf, not "
            "PF)"
        )
    disparity = disparity.astype(np.float32)
    disparity[~np.isfinite(disparity)] = np.nan
    with np.errstate(invalid="ignore"):
        negative = disparity < 0
    if negative.any():
        raise CorruptFileError(
            f"{path}: {int(negative.sum()):,} negative disparities (down to "
            f"{float(disparity[negative].min()):g} px); the left view's disparity is "
            "x_left - x_right >= 0 (are left/ and right/ swapped?); mark unknown pixels with "
            "inf, NaN or 0"
        )
    return disparity


def _scan(pair: PairFiles) -> tuple[_Scanned, str | None]:
    """Sizes of the three files and the ground truth's range; the second item describes a size
    mismatch (None when the sizes agree)."""
    assert pair.disparity is not None
    (lh, lw), lmode = _view_header(pair.left)
    (rh, rw), rmode = _view_header(pair.right)
    gt = read_disparity(pair.disparity)
    known = np.isfinite(gt) & (gt > 0)
    gt_max = float(gt[known].max()) if known.any() else math.nan
    sizes = {"left": (lh, lw), "right": (rh, rw), "disparity": gt.shape}
    mismatch = None
    if len(set(sizes.values())) > 1:
        mismatch = f"{pair.stem}: " + ", ".join(f"{k} {w}x{h}" for k, (h, w) in sizes.items())
    grey = lmode == "L" and rmode == "L"
    return _Scanned(pair, (lh, lw), grey, gt_max), mismatch


def within_max_disparity(pair: StereoPair, disparity_file: Path, key: str) -> StereoPair:
    """``pair`` unchanged when its ground truth lies within ``pair.max_disp``; else the error
    that names ``key`` (the params key that set the bound), the file and the value needed (a
    KITTI set read with a ``max_disparity`` below 256 px, say)."""
    gt = np.asarray(pair.disparity, dtype=np.float64)
    known = np.isfinite(gt) & (gt > 0)
    top = float(gt[known].max()) if known.any() else 0.0
    if top > pair.max_disp:
        raise ConfigError(
            f"{key}={pair.max_disp:g}: {disparity_file} holds ground truth up to {top:.4g} px; "
            f"the search range must cover every disparity: set it to at least {math.ceil(top)}"
        )
    return pair


# ----------------------------------------------------------------------------- builder


def _splits(cfg: DatasetConfig, name: str, stems: list[str]) -> dict[str, str]:
    """One pair: ``test`` (the held-out rows protocol). More: seeded train/val, both non-empty."""
    if len(stems) == 1:
        return {stems[0]: "test"}
    splits = split_pairs(
        stems, val_fraction=cfg.val_fraction, seed=cfg.seed, max_per_split=cfg.max_per_split
    )
    n = len(stems)
    counts = {s: sum(v == s for v in splits.values()) for s in ("train", "val")}
    if 0 in counts.values():
        raise ConfigError(
            f"datasets.{name}.val_fraction={cfg.val_fraction}: of {n} pairs with ground "
            f"truth it puts {counts['val']} in val and {counts['train']} in train; both need one "
            f"(the model trains on train and is scored on val): set val_fraction in "
            f"[{0.5 / n:.3g}, {1 - 0.5 / n:.3g}) (val takes round(pairs x val_fraction); e.g. "
            f"{1 / n:.3g} holds out one pair), or add pairs"
        )
    return splits


def _load(scanned: _Scanned, grey: bool, max_disp: float) -> StereoPair:
    """One pair, decoded; the scan checked sizes and range, so a failure here is a file whose
    pixel data is corrupt after a good header."""
    f = scanned.files
    assert f.disparity is not None
    left, right = read_view(f.left, grey), read_view(f.right, grey)
    disparity = read_disparity(f.disparity)
    if left.shape[:2] != scanned.size or right.shape[:2] != scanned.size:
        raise CorruptFileError(
            f"{f.left}, {f.right}: decoded to {left.shape[:2]} and {right.shape[:2]}, their "
            f"headers say {scanned.size}; replace the files"
        )
    return StereoPair(left, right, disparity, max_disp)


def build_stereo_folder(
    cfg: DatasetConfig,
    out: Path,
    downloads: Path,
    name: str,
    check_raw: Callable[[str, Path], None] | None = None,
    *,
    meta: Callable[[DatasetConfig], Mapping[str, Any]],
) -> pd.DataFrame:
    """The pairs of ``cfg.path`` as a canonical ``stereo`` dataset in ``out`` (see the module
    docstring). ``meta(cfg)``: meta.json's ``config`` record (the sources module's rule).

    Raises:
        ConfigError: ``path`` is no folder, ``max_disparity`` is below the ground truth, or
            ``val_fraction`` leaves train or val empty.
        LayoutError: see :func:`list_stereo_folder`.
        CorruptFileError: a file cannot be read, or the sizes of a pair disagree.
    """
    root = Path(str(cfg.path)).expanduser().absolute()
    if not root.is_dir():
        raise ConfigError(
            f"datasets.{name}.path={cfg.path!r}: no such folder ({root}); a stereo_folder path "
            "is a folder with sub-folders left/, right/ and disparity/, relative to the repo root"
        )
    pairs, ignored = list_stereo_folder(root)
    with_gt = [p for p in pairs if p.disparity is not None]
    without_gt = [p.stem for p in pairs if p.disparity is None]
    scanned, mismatched = [], []
    for p in with_gt:
        s, mismatch = _scan(p)
        scanned.append(s)
        if mismatch:
            mismatched.append(mismatch)
    if mismatched:
        raise CorruptFileError(
            f"{root}: {len(mismatched):,} pair(s) whose left, right and disparity sizes disagree "
            f"({_shown(mismatched)}; width x height); the views of a rectified pair and the "
            "disparity of its left view have one size: resize or remove them"
        )
    assert cfg.max_disparity is not None  # DatasetConfig requires it for this source
    max_disp = float(cfg.max_disparity)
    above = sorted((s for s in scanned if s.gt_max > max_disp), key=lambda s: -s.gt_max)
    if above:
        files = [
            f"{Path(str(s.files.disparity)).relative_to(root)} ({s.gt_max:.4g} px)" for s in above
        ]
        raise ConfigError(
            f"datasets.{name}.max_disparity={cfg.max_disparity:g}: the ground truth of "
            f"{len(above):,} pair(s) exceeds it ({_shown(files)}); the search range must cover "
            f"every disparity: set max_disparity to at least {math.ceil(above[0].gt_max)}, or fix "
            "those maps"
        )
    grey = all(s.grey for s in scanned)  # one channel count for the set: RGB unless all grey
    splits = _splits(cfg, name, [s.files.stem for s in scanned])
    print(
        f"[{name}] {root}: {len(scanned):,} pairs with ground truth "
        f"({'greyscale' if grey else 'colour'})"
        + (
            f"; {len(without_gt):,} without, left out (no disparity/<name>: they can neither "
            f"train nor be scored): {_shown(without_gt)}"
            if without_gt
            else ""
        )
        + (
            f"; {len(ignored):,} other file(s) ignored (e.g. {ignored[0].relative_to(root)})"
            if ignored
            else ""
        )
    )
    loaders = {s.files.stem: partial(_load, s, grey, max_disp) for s in scanned}
    extra = {**meta(cfg), "without_ground_truth": without_gt}
    return write_stereo_dataset(
        out, loaders, splits, source=cfg.source, name=name, extra_meta=extra
    )
