"""The classical baseline: OpenCV's semi-global block matching (``cv2.StereoSGBM``), a modified
Hirschmueller 2008 with Birchfield-Tomasi block costs.

OpenCV marks pixels it gives up on (uniqueness test, left-right check, speckles, the left band
where the full disparity range does not fit) with ``minDisparity - 1``; they come back as NaN
(holes), which the metrics count as wrong and report in ``density``.
"""

from __future__ import annotations

import math

import numpy as np


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
    full_dp: bool = False,
) -> np.ndarray:
    """Disparity of the left view, float32 (H, W), NaN where OpenCV gives none.

    Args:
        left, right: uint8 (H, W, C) or (H, W).
        max_disp: the largest disparity searched (rounded up to OpenCV's multiple of 16).
        block_size: odd matching block size.
        p1_scale, p2_scale: ``P1 = p1_scale * C * block_size**2``, ``P2`` likewise, as OpenCV's
            documentation recommends (8 and 32).
        uniqueness, disp12_max_diff, speckle_window, speckle_range: OpenCV's filters
            (``disp12_max_diff < 0`` turns the left-right check off).
        full_dp: the full 8-path variant (``MODE_HH``) instead of 5 paths.
    """
    import cv2  # imported here: only this baseline needs OpenCV

    num = 16 * math.ceil((math.floor(max_disp) + 1) / 16)
    channels = 1 if left.ndim == 2 else left.shape[2]
    if left.shape[1] - num <= block_size // 2:
        raise ValueError(
            f"sgbm: the image is {left.shape[1]} px wide, too narrow for {num} disparities "
            f"(max_disp {max_disp} rounded up to a multiple of 16) and block_size {block_size}"
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
        mode=cv2.STEREO_SGBM_MODE_HH if full_dp else cv2.STEREO_SGBM_MODE_SGBM,
    )
    raw = matcher.compute(np.ascontiguousarray(left), np.ascontiguousarray(right))  # int16, x16
    disp = raw.astype(np.float32) / 16.0
    disp[raw < 0] = np.nan
    return disp
