"""The classical baseline: OpenCV's semi-global block matching (``cv2.StereoSGBM``), a modified
Hirschmueller 2008 with Birchfield-Tomasi block costs.

OpenCV marks pixels it gives up on (uniqueness test, left-right check, speckles, the left band
where the full disparity range does not fit) with ``minDisparity - 1``; they come back as NaN
(holes). :func:`hole_labels` labels them with the project's left-right check against the right
view's map (:func:`sgbm_right_disparity`), and :func:`simlearn.stereo.matcher.predict` fills them
as it fills the learned matcher's, so that the baseline is not scored on holes that every other
method gets filled.

The parameters of the shipped ``stereo_sgbm`` experiment come from a grid on the training rows
only: ``python benchmarks/tune_sgbm.py`` prints the grid and the winner.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from simlearn.stereo.refine import OK, left_right_check

#: ``sgbm_disparity(mode=...)`` -> OpenCV's ``StereoSGBM`` mode constant: 5 paths (OpenCV's
#: default), the same with a 3-way parallel pass, the full 8 paths of Hirschmueller 2008, and
#: 4 paths in HH's memory layout
MODES = {
    "sgbm": "STEREO_SGBM_MODE_SGBM",
    "3way": "STEREO_SGBM_MODE_SGBM_3WAY",
    "hh": "STEREO_SGBM_MODE_HH",
    "hh4": "STEREO_SGBM_MODE_HH4",
}


def opencv_disparities(max_disp: float) -> int:
    """``numDisparities``: 0 .. floor(max_disp) rounded up to OpenCV's multiple of 16."""
    return 16 * math.ceil((math.floor(max_disp) + 1) / 16)


def sgbm_disparity(
    left: np.ndarray,
    right: np.ndarray,
    max_disp: float,
    *,
    block_size: int = 5,
    p1_scale: int = 8,
    p2_scale: int = 32,
    uniqueness: int = 10,
    disp12_max_diff: int = 1,
    speckle_window: int = 100,
    speckle_range: int = 2,
    mode: str = "sgbm",
    pad: bool = False,
    colour: bool = True,
) -> np.ndarray:
    """Disparity of the left view, float32 (H, W), NaN where OpenCV gives none.

    Args:
        left, right: uint8 (H, W, C) or (H, W).
        max_disp: the largest disparity searched (rounded up to OpenCV's multiple of 16).
        block_size: odd matching block size.
        p1_scale, p2_scale: ``P1 = p1_scale * C * block_size**2``, ``P2`` likewise, as OpenCV's
            documentation recommends (8 and 32).
        uniqueness, disp12_max_diff, speckle_window, speckle_range: OpenCV's filters
            (``disp12_max_diff < 0`` turns the left-right check off, ``speckle_window`` 0 the
            speckle filter).
        mode: a key of :data:`MODES`.
        pad: pad both views on the left with ``numDisparities`` replicated columns, then crop
            them off: OpenCV leaves the first ``numDisparities`` columns empty (their full range
            does not fit); padded, it computes them, aggregated along with their neighbours.
        colour: false: a colour pair is matched as grey (``cv2.COLOR_RGB2GRAY``).
    """
    import cv2  # imported here: only this baseline needs OpenCV

    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: allowed {', '.join(MODES)}")
    if not colour and left.ndim == 3 and left.shape[2] == 3:
        left, right = (
            cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_RGB2GRAY) for im in (left, right)
        )
    num = opencv_disparities(max_disp)
    channels = 1 if left.ndim == 2 else left.shape[2]
    margin = num if pad else 0
    if left.shape[1] + margin - num <= block_size // 2:
        raise ValueError(
            f"sgbm: the image is {left.shape[1]} px wide, too narrow for {num} disparities "
            f"(max_disp {max_disp} rounded up to a multiple of 16) and block_size {block_size}; "
            "model.sgbm_pad: true computes any width"
        )
    if margin:
        left, right = (
            cv2.copyMakeBorder(np.ascontiguousarray(im), 0, 0, margin, 0, cv2.BORDER_REPLICATE)
            for im in (left, right)
        )
    matcher = cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=num,
        blockSize=block_size,
        P1=p1_scale * channels * block_size**2,
        P2=p2_scale * channels * block_size**2,
        disp12MaxDiff=disp12_max_diff,
        uniquenessRatio=uniqueness,
        speckleWindowSize=speckle_window,
        speckleRange=speckle_range,
        mode=getattr(cv2, MODES[mode]),
    )
    raw = matcher.compute(np.ascontiguousarray(left), np.ascontiguousarray(right))  # int16, x16
    raw = raw[:, margin:]
    disp = raw.astype(np.float32) / 16.0
    disp[raw < 0] = np.nan
    return disp


def sgbm_right_disparity(
    left: np.ndarray, right: np.ndarray, max_disp: float, **options: Any
) -> np.ndarray:
    """Disparity of the right view, float32 (H, W), NaN at holes: :func:`sgbm_disparity` on the
    mirrored pair (the right view flipped as the left one; ``pad`` then pads the right view's
    own border band, on its right side), flipped back. ``options``: :func:`sgbm_disparity`'s."""
    flipped = sgbm_disparity(right[:, ::-1], left[:, ::-1], max_disp, **options)
    return np.ascontiguousarray(flipped[:, ::-1])


def _integer(disparity: torch.Tensor) -> torch.Tensor:
    """Rounded disparities for ``left_right_check``; a hole becomes ``W + 1``, which lands outside
    the other view: a left hole is never OK, a right hole never makes a left pixel consistent."""
    w = disparity.shape[1]
    return torch.where(torch.isfinite(disparity), disparity.round(), w + 1).long()


def hole_labels(disparity: torch.Tensor, right_disparity: torch.Tensor) -> torch.Tensor:
    """Left-right labels of an SGBM map for :func:`~simlearn.stereo.matcher.fill`: OK where
    OpenCV gave a disparity (its own left-right check passed it), and at its holes the project's
    :func:`~simlearn.stereo.refine.left_right_check` against the right view's map
    (:func:`sgbm_right_disparity`): MISMATCH where some disparity would be consistent, else
    OCCLUSION, as the learned matcher's holes are labelled.

    Why the second SGBM run: OpenCV does not say which of its holes are occlusions. On the
    training rows of the motorcycle pair, with the tuned parameters, labelling every hole an
    occlusion scored 0.0008 lower at 3 px after post-processing, every hole a mismatch 0.005
    lower (``python benchmarks/tune_sgbm.py`` prints the three).

    Args:
        disparity, right_disparity: (H, W) float, NaN at holes.

    Returns:
        (H, W) int64.
    """
    labels = left_right_check(_integer(disparity), _integer(right_disparity))
    labels[torch.isfinite(disparity)] = OK
    return labels
