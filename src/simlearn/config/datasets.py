"""The ``datasets:`` sections: which source each data set is built from, and its validation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from simlearn.config.schema import ConfigError, at_least, from_dict, in_range, one_of, section

__all__ = [
    "MIDDLEBURY_SCENES",
    "SOURCE_NAMES",
    "DatasetConfig",
    "ValidationConfig",
    "dataset_config",
]

#: every dataset source; simlearn.data.sources.SOURCES holds a builder for each (a test checks
#: that the two agree)
SOURCE_NAMES = (
    "digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "stl10", "motorcycle", "kitti2012",
    "kitti2015", "middlebury2014", "sketchy", "sketch_synthetic",
)  # fmt: skip

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
    disparity: str = "noc"  # kitti: "noc" (non-occluded) or "occ" (all pixels) ground truth
    scenes: tuple[str, ...] = ()  # middlebury2014: scenes to use; empty = all 23 with GT
    # sketch_synthetic: size of the generated set (the defaults: 16 x 16 photos x 5 sketches,
    # 64x64 px, built in a few seconds)
    photos_per_class: int = 16
    sketches_per_photo: int = 5
    image_size: int = 64

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
        for key, low in (("photos_per_class", 2), ("sketches_per_photo", 1), ("image_size", 32)):
            at_least(key, getattr(self, key), low)


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
    try:
        cfg = from_dict(DatasetConfig, data, f"datasets.{name}")
    except ConfigError:
        raise
    except ValueError as e:  # the source's own range checks
        raise ConfigError(f"datasets.{name}: {e}") from None
    return cfg, validation
