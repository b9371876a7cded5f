"""Load a canonical labelled-image dataset written by ``download``: kind ``images`` (one uint8
array, ``images.npy``) or kind ``files`` (image files decoded when read, see
:mod:`simlearn.data.image_files`). Either way ``ImageDataset.images`` indexes like an array
``(N, H, W, C)`` uint8."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simlearn.data.errors import CorruptFileError
from simlearn.data.image_files import DeviceImages, FileImages

#: what rebuilds a damaged canonical file: DVC sees that an output of download@ changed
_REBUILD = "`dvc repro` rebuilds it (DVC sees that an output of download@ changed)."

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DeviceImages", "ImageDataset", "check_holdout", "load_image_dataset"]

#: the dataset kinds this loader reads
IMAGE_KINDS = ("images", "files")


@dataclass
class ImageDataset:
    # (N, H, W, C) uint8, rows in manifest order: an array (kind images) or files decoded when
    # indexed (kind files)
    images: np.ndarray | FileImages
    labels: np.ndarray  # (N,) int64
    splits: np.ndarray  # (N,) str: train | val | test
    ids: np.ndarray  # (N,) str
    class_names: list[str]
    manifest: pd.DataFrame

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def indices(
        self, split: str, classes: np.ndarray | None = None, exclude: np.ndarray | None = None
    ) -> np.ndarray:
        """Rows of ``split``, optionally restricted to ``classes`` or excluding ``exclude``."""
        mask = self.splits == split
        if classes is not None:
            mask &= np.isin(self.labels, classes)
        if exclude is not None and len(exclude):
            mask &= ~np.isin(self.labels, exclude)
        return np.flatnonzero(mask)


def load_image_dataset(data_dir: str | Path) -> ImageDataset:
    """The labelled-image dataset in ``data_dir``: kind ``images`` loads its array into memory;
    kind ``files`` keeps its images on disk (:class:`FileImages`, read at meta.json's
    image_size, resize and channels, with its ``workers`` threads, or min(8, CPUs))."""
    data_dir = Path(data_dir)
    meta_path = data_dir / "meta.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"{meta_path} is missing: run `dvc repro download@{data_dir.name}`")
    meta = json.loads(meta_path.read_text())
    if meta.get("kind") not in IMAGE_KINDS:
        raise ValueError(
            f"{data_dir}: dataset kind is {meta.get('kind')!r}; this task needs a labelled-image "
            "dataset (kind 'images': digits, mnist5k, mnist, fashion_mnist, cifar10, stl10; or "
            "kind 'files': image_folder, manifest, cub200, cars196, sop)"
        )
    import pandas as pd  # lazy: loading params (check_params, report) need not import it

    manifest = pd.read_parquet(data_dir / "manifest.parquet")
    images: np.ndarray | FileImages
    if meta["kind"] == "files":
        images = FileImages(
            data_dir.absolute(),  # still found if the process changes folder
            manifest["path"].tolist(),
            image_size=int(meta["image_size"]),
            resize=str(meta["resize"]),
            channels=int(meta["channels"]),
            workers=meta.get("workers"),
        )
    else:
        from simlearn.data.readers import read_npy

        images = read_npy(data_dir / "images.npy", mmap_mode="r", remedy=_REBUILD)
        if len(manifest) and int(manifest["index"].max()) >= len(images):
            raise CorruptFileError(
                f"{data_dir / 'images.npy'}: holds {len(images):,} images but the manifest "
                f"indexes up to {int(manifest['index'].max()):,}. {_REBUILD}"
            )
        images = np.asarray(images[manifest["index"].to_numpy()])
    return ImageDataset(
        images=images,
        labels=manifest["label"].to_numpy(np.int64),
        splits=manifest["split"].to_numpy(str),
        ids=manifest["id"].to_numpy(str),
        class_names=[str(c) for c in meta.get("class_names", [])],
        manifest=manifest,
    )


def check_holdout(holdout_classes: Sequence[int], ds: ImageDataset) -> np.ndarray:
    """``holdout_classes`` as an array, after checking them against the dataset's classes."""
    from simlearn.config import ConfigError

    holdout = np.asarray(holdout_classes, dtype=np.int64)
    bad = [int(c) for c in holdout if c < 0 or c >= ds.num_classes]
    if bad:
        raise ConfigError(
            f"holdout_classes={list(holdout_classes)}: {bad} out of range; the dataset has "
            f"classes 0..{ds.num_classes - 1}"
        )
    if ds.num_classes - len(holdout) < 2:
        raise ConfigError(
            f"holdout_classes={list(holdout_classes)} leaves fewer than 2 classes to train on"
        )
    return holdout
