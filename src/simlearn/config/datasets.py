"""The ``datasets:`` sections: which source each data set is built from, and its validation."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from simlearn.config.schema import (
    ConfigError,
    at_least,
    from_dict,
    greater,
    in_range,
    one_of,
    section,
)

__all__ = [
    "FILES_SOURCES",
    "LOCAL_SOURCES",
    "MAX_DISPARITY_SOURCES",
    "MIDDLEBURY_SCENES",
    "OFFICIAL_SPLIT_SOURCES",
    "SOURCE_NAMES",
    "DatasetConfig",
    "ValidationConfig",
    "dataset_config",
    "default_workers",
]

#: every dataset source; simlearn.data.sources.SOURCES holds a builder for each (a test checks
#: that the two agree)
SOURCE_NAMES = (
    "digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "stl10", "motorcycle", "kitti2012",
    "kitti2015", "middlebury2014", "sketchy", "sketch_synthetic", "image_folder", "manifest",
    "cub200", "cars196", "sop", "stereo_folder",
)  # fmt: skip

#: a user's own images, stored as files (kind "files"): ``path`` names the folder or the table
FILES_SOURCES = ("image_folder", "manifest")
#: every source that reads the user's own disk at ``path``: kind "files", and ``stereo_folder``
#: (rectified pairs in left/, right/, disparity/)
LOCAL_SOURCES = (*FILES_SOURCES, "stereo_folder")
#: the sources whose disparity search range ``max_disparity`` sets: required for stereo_folder,
#: replacing the 256 px of KITTI's 16-bit format for kitti2012 and kitti2015
MAX_DISPARITY_SOURCES = ("stereo_folder", "kitti2012", "kitti2015")
#: the field's benchmarks (kind "files"), split by their official protocol: split_by is refused
OFFICIAL_SPLIT_SOURCES = ("cub200", "cars196", "sop")
#: image_size when unset: the benchmarks are read at the ImageNet size of pretrained backbones
_DEFAULT_IMAGE_SIZE = {"cub200": 224, "cars196": 224, "sop": 224}

_SHA256 = re.compile(r"[0-9a-fA-F]{64}")

#: The 23 Middlebury 2014 scenes published with ground truth.
MIDDLEBURY_SCENES = (
    "Adirondack", "Backpack", "Bicycle1", "Cable", "Classroom1", "Couch", "Flowers", "Jadeplant",
    "Mask", "Motorcycle", "Piano", "Pipes", "Playroom", "Playtable", "Recycle", "Shelves",
    "Shopvac", "Sticks", "Storage", "Sword1", "Sword2", "Umbrella", "Vintage",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of ``datasets:`` in params.yaml."""

    source: str  # one of SOURCE_NAMES (simlearn.data.sources.SOURCES builds each)
    seed: int = 0  # seeds every split and subsample
    val_fraction: float = 0.2  # share of the training pool held out for validation
    test_fraction: float = 0.2  # share held out for test; only where no official test exists
    max_per_split: int | None = None  # cap per split (stratified), for quick runs on big sets
    url: str | None = None  # base URL or mirror (file:// allowed) replacing BASE_URLS[source]
    # remote sources: {<file name>: <sha256>}, replacing the built-in SHA-256 of that file (a
    # mirror that re-packs the files, or a source that publishes none). Keys are checked against
    # the source's files when the dataset is built; there is no way to skip verification
    checksums: dict[str, str] | None = None
    disparity: str = "noc"  # kitti: "noc" (non-occluded) or "occ" (all pixels) ground truth
    # stereo_folder (required), kitti2012/2015 (default 256, the most KITTI's PNGs can hold): the
    # largest disparity searched, in px of the stored images. Training, the cost volume and SGM
    # search 0 .. floor(max_disparity); every ground-truth value must lie within it
    max_disparity: float | None = None
    scenes: tuple[str, ...] = ()  # middlebury2014: scenes to use; empty = all 23 with GT
    # sketch_synthetic: size of the generated set (the defaults: 16 x 16 photos x 5 sketches,
    # 64x64 px, built in a few seconds)
    photos_per_class: int = 16
    sketches_per_photo: int = 5
    # sketch_synthetic: the generated images' side; kind "files": the side images are read at.
    # null: 224 for cub200, cars196, sop (the size pretrained backbones expect), else 64
    image_size: int | None = None
    # --- kind "files" (image_folder, manifest, cub200, cars196, sop)
    # image_folder: the folder with one sub-folder per class; manifest: the .csv or .parquet
    # table (columns path,label[,split][,is_query,is_gallery]). Relative to the current folder
    # (the repo root when DVC runs the stage); ~ is expanded
    path: str | None = None
    # image_folder, manifest: "class" (disjoint classes in train and test, the metric-learning
    # protocol) or "image" (stratified by class, test_fraction of each). null: "class", or the
    # manifest's own split column when it has one. Refused for sources with an official split
    split_by: str | None = None
    # split_by class: the test classes, a fraction of all classes (seeded draw) or a list of
    # class names. null: 0.5, half the classes
    test_classes: tuple[str, ...] | float | None = None
    resize: str = "crop"  # "crop": shorter side to image_size, then centre crop; "stretch"
    channels: int = 3  # 3: RGB; 1: greyscale (every image is converted to it when read)
    workers: int | None = None  # decoding threads; null: min(8, CPUs), resolved when read

    def __post_init__(self) -> None:
        one_of("source", self.source, SOURCE_NAMES, what="source")
        for key in ("val_fraction", "test_fraction"):
            in_range(key, getattr(self, key), 0, 1, open_high=True)
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction = {self.val_fraction} + {self.test_fraction}: "
                "must be < 1 so that training data remains"
            )
        if self.max_per_split is not None and self.max_per_split < 1:
            raise ConfigError(f"max_per_split={self.max_per_split!r}: must be >= 1 or null")
        if self.disparity not in ("noc", "occ"):
            raise ConfigError(f"disparity={self.disparity!r}: allowed: noc, occ")
        object.__setattr__(self, "scenes", tuple(self.scenes))
        unknown = sorted(set(self.scenes) - set(MIDDLEBURY_SCENES))
        if unknown:
            raise ConfigError(
                f"scenes={list(self.scenes)!r}: unknown {unknown}; allowed: "
                f"{', '.join(MIDDLEBURY_SCENES)}"
            )
        if self.scenes and self.source != "middlebury2014":
            raise ConfigError(
                f"scenes={list(self.scenes)!r}: only used by source middlebury2014, "
                f"not {self.source!r}; remove it"
            )
        for key, low in (("photos_per_class", 2), ("sketches_per_photo", 1)):
            at_least(key, getattr(self, key), low)
        if self.image_size is None:
            object.__setattr__(self, "image_size", _DEFAULT_IMAGE_SIZE.get(self.source, 64))
        # the generator draws shapes that need 32 px; a decoded file can be as small as 8 px
        at_least("image_size", self.image_size, 32 if self.source == "sketch_synthetic" else 8)
        self._check_files_keys()
        self._check_checksums()
        self._check_max_disparity()

    def _check_max_disparity(self) -> None:
        """``max_disparity``: a number of pixels > 0, stated for stereo_folder, optional for KITTI,
        refused elsewhere (motorcycle and Middlebury take theirs from the calibration)."""
        if self.max_disparity is None:
            if self.source == "stereo_folder":
                raise ConfigError(
                    "max_disparity=None: source 'stereo_folder' needs the largest disparity of "
                    "your pairs, in pixels (e.g. max_disparity: 192); it sets the search range "
                    "of training, the cost volume and SGM, and no ground-truth value may exceed it"
                )
            return
        if self.source not in MAX_DISPARITY_SOURCES:
            raise ConfigError(
                f"max_disparity={self.max_disparity!r}: only used by sources "
                f"{', '.join(MAX_DISPARITY_SOURCES)}, not {self.source!r} (which takes its range "
                "from its own calibration or has no disparities); remove it"
            )
        greater("max_disparity", self.max_disparity, 0)

    def _check_checksums(self) -> None:
        """``checksums``: a mapping of file names to 64 hex digits (lower-cased here)."""
        if self.checksums is None:
            return
        if not isinstance(self.checksums, Mapping) or not self.checksums:
            raise ConfigError(
                f"checksums={self.checksums!r}: a mapping of file names to SHA-256 values, e.g. "
                "checksums: {train-images-idx3-ubyte.gz: <64 hex digits>}; remove it to use the "
                "built-in values"
            )
        clean = {}
        for file, digest in self.checksums.items():
            if not isinstance(file, str) or not file or "/" in file or "\\" in file:
                raise ConfigError(
                    f"checksums: key {file!r} must be a file's own name (no folder), e.g. "
                    "data_scene_flow.zip"
                )
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest.strip()):
                raise ConfigError(
                    f"checksums.{file}={digest!r}: a SHA-256 is 64 hex digits (sha256sum "
                    f"{file} prints it); quote it in params.yaml"
                )
            clean[file] = digest.strip().lower()
        object.__setattr__(self, "checksums", clean)

    def _check_files_keys(self) -> None:
        """The keys of kind "files": each bad value is one error naming key, value, what is
        allowed. What needs the data (the path exists, test_classes names real classes) is
        checked when the dataset is built."""
        one_of("resize", self.resize, ("crop", "stretch"), what="resize policy")
        one_of("channels", self.channels, (1, 3), what="channel count")
        if self.workers is not None:
            at_least("workers", self.workers, 1)
        if self.source in LOCAL_SOURCES:
            if not self.path:
                what = {
                    "image_folder": "folder with one sub-folder per class",
                    "manifest": ".csv or .parquet file with columns path,label",
                    "stereo_folder": "folder with sub-folders left/, right/ and disparity/",
                }[self.source]
                raise ConfigError(
                    f"path={self.path!r}: source {self.source!r} needs the {what} (relative to the "
                    "repo root, or absolute)"
                )
            if self.source == "manifest" and Path(self.path).suffix.lower() not in (
                ".csv",
                ".parquet",
            ):
                raise ConfigError(
                    f"path={self.path!r}: a manifest is a .csv or .parquet file (read by its "
                    "extension)"
                )
        elif self.path is not None:
            raise ConfigError(
                f"path={self.path!r}: only used by sources {', '.join(LOCAL_SOURCES)}, not "
                f"{self.source!r}; remove it"
            )
        if self.split_by is not None:
            if self.source in OFFICIAL_SPLIT_SOURCES:
                raise ConfigError(
                    f"split_by={self.split_by!r}: source {self.source!r} has an official split "
                    "(the first half of its classes to train, the second half to test), which "
                    "keeps results comparable with published ones; remove split_by"
                )
            if self.source not in FILES_SOURCES:
                raise ConfigError(
                    f"split_by={self.split_by!r}: only used by sources "
                    f"{', '.join(FILES_SOURCES)}, not {self.source!r}; remove it"
                )
            one_of("split_by", self.split_by, ("class", "image"), what="split")
        if self.test_classes is not None:
            self._check_test_classes()

    def _check_test_classes(self) -> None:
        value = (
            list(self.test_classes) if isinstance(self.test_classes, tuple) else self.test_classes
        )
        if self.source not in FILES_SOURCES:
            why = (
                "split officially"
                if self.source in OFFICIAL_SPLIT_SOURCES
                else "not split by class"
            )
            raise ConfigError(
                f"test_classes={value!r}: source {self.source!r} is {why}; only sources "
                f"{', '.join(FILES_SOURCES)} with split_by: class use it; remove it"
            )
        if self.split_by == "image":
            raise ConfigError(
                f"test_classes={value!r}: split_by is 'image', which holds out test_fraction of "
                "every class's images; test_classes is for split_by: class"
            )
        if isinstance(value, list | tuple):
            names = tuple(value)
            if not names or not all(isinstance(n, str) for n in names):
                raise ConfigError(
                    f"test_classes={value!r}: a list of class names (folder names or "
                    "manifest labels, as strings) or a fraction in (0, 1)"
                )
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if names.count(n) > 1})
                raise ConfigError(f"test_classes={value!r}: {dup} listed twice")
            object.__setattr__(self, "test_classes", names)
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(
                f"test_classes={value!r}: a fraction in (0, 1) or a list of class names"
            )
        else:
            in_range("test_classes", value, 0, 1, open_low=True, open_high=True)
            object.__setattr__(self, "test_classes", float(value))


@dataclass(frozen=True)
class ValidationConfig:
    min_rows_per_split: int = 1  # every expected split must hold at least this many rows
    min_valid_fraction: float = 0.3  # stereo: floor on the fraction of pixels with ground truth
    splits: tuple[str, ...] = ()  # splits that must be present; default: those meta.json lists

    def __post_init__(self) -> None:
        at_least("min_rows_per_split", self.min_rows_per_split, 1)
        for s in self.splits:
            one_of("splits[]", s, ("train", "val", "test"))
        in_range("min_valid_fraction", self.min_valid_fraction, 0, 1)


def dataset_config(params: Mapping[str, Any], name: str) -> tuple[DatasetConfig, ValidationConfig]:
    """``datasets.<name>`` -> (the source's DatasetConfig, its ValidationConfig).

    The section holds the source's keys plus an optional ``validation:`` mapping. ``source``
    defaults to the dataset's own name.
    """
    data = dict(section(params, "datasets", name))
    validation = from_dict(
        ValidationConfig, data.pop("validation", None), f"datasets.{name}.validation"
    )
    data.setdefault("source", name)
    # test_classes is a list of names or a number: from_dict checks the list form (each item a
    # string); a number is handed to DatasetConfig's own check, which names the key
    number = data.get("test_classes")
    if isinstance(number, int | float) and not isinstance(number, bool):
        del data["test_classes"]
    else:
        number = None
    try:
        cfg = from_dict(DatasetConfig, data, f"datasets.{name}")
        if number is not None:
            cfg = replace(cfg, test_classes=number)
    except ConfigError as e:
        if number is not None and not str(e).startswith(f"datasets.{name}"):
            raise ConfigError(f"datasets.{name}.{e}") from None
        raise
    except ValueError as e:  # the source's own range checks
        raise ConfigError(f"datasets.{name}: {e}") from None
    return cfg, validation


def default_workers() -> int:
    """Decoding threads when ``workers`` is null: one per CPU, at most 8 (past that, reading
    files rather than decoding them is the limit on common disks)."""
    return max(1, min(8, os.cpu_count() or 1))
