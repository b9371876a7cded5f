"""What a disparity map's pixel means: the one ground-truth rule, shared by every room.

A leaf: the readers and canonical writers (``simlearn.data``), the validation suite, the stereo
metrics (``simlearn.evaluation.stereo``) and the disparity figure all decide "this pixel has
ground truth" with :func:`valid_ground_truth`, so none of them has to import another room for
it.
"""

from __future__ import annotations

import numpy as np


def valid_ground_truth(disparity_gt: np.ndarray) -> np.ndarray:
    """(H, W) bool: ground truth is known. Known means finite and > 0: the canonical form stores
    NaN where there is none, KITTI's raw PNGs store 0 and Middlebury's PFMs inf, so this one rule
    holds for the raw files and the canonical ones alike."""
    gt = np.asarray(disparity_gt, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return np.isfinite(gt) & (gt > 0)
