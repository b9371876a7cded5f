"""Read the canonical ``stereo`` dataset written by
:func:`simlearn.data.canonical.write_stereo_dataset`:

    <data_dir>/manifest.parquet, meta.json
    <data_dir>/pairs/<pair_id>/left.png, right.png, disparity.npy  (NaN = no ground truth)

Pairs are read on demand and kept in memory once read (a KITTI pair is about 3 MB), so opening a
large set costs only its manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class StereoSample:
    """One rectified pair as stored: views uint8 (H, W, C) (grey is stored as (H, W, 1)),
    disparity float32 (H, W), NaN where there is no ground truth."""

    id: str
    split: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    max_disp: float

    @property
    def channels(self) -> int:
        return int(self.left.shape[2])


class StereoDataset:
    """The pairs of one canonical stereo dataset, in manifest order."""

    def __init__(self, data_dir: str | Path) -> None:
        self.root = Path(data_dir)
        meta_path = self.root / "meta.json"
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{meta_path} missing: build the dataset first (download stage)"
            )
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("kind") != "stereo":
            raise ValueError(
                f"{self.root} holds a {self.meta.get('kind')!r} dataset; the stereo task needs a "
                "stereo one (motorcycle, kitti2012, kitti2015, middlebury2014, stereo_folder)"
            )
        import pandas as pd  # here: reading params imports this module, and needs no pandas

        self.manifest = pd.read_parquet(self.root / "manifest.parquet")
        if self.manifest.empty:
            raise ValueError(f"{self.root}: the manifest lists no pair")
        self._cache: dict[int, StereoSample] = {}

    def __len__(self) -> int:
        return len(self.manifest)

    @property
    def ids(self) -> list[str]:
        return self.manifest["id"].astype(str).tolist()

    @property
    def splits(self) -> list[str]:
        return self.manifest["split"].astype(str).tolist()

    @property
    def channels(self) -> int:
        return int(self.manifest["channels"].iloc[0])

    def indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]

    def __getitem__(self, i: int) -> StereoSample:
        if i not in self._cache:
            # imports pandas and PIL: only here
            from simlearn.data.readers import read_image, read_npy

            row = self.manifest.iloc[i]
            left = _hwc(read_image(self.root / row["left_path"]))
            right = _hwc(read_image(self.root / row["right_path"]))
            disparity = read_npy(
                self.root / row["disparity_path"],
                remedy="`dvc repro` rebuilds it (DVC sees the changed output of download@).",
            ).astype(np.float32)
            if disparity.shape != left.shape[:2] or right.shape[0] != left.shape[0]:
                raise ValueError(
                    f"pair {row['id']}: left {left.shape}, right {right.shape} and disparity "
                    f"{disparity.shape} disagree"
                )
            self._cache[i] = StereoSample(
                str(row["id"]), str(row["split"]), left, right, disparity, float(row["max_disp"])
            )
        return self._cache[i]


def _hwc(image: np.ndarray) -> np.ndarray:
    return image[:, :, None] if image.ndim == 2 else image


def load_stereo_dataset(data_dir: str | Path) -> StereoDataset:
    return StereoDataset(data_dir)
