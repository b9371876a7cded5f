"""Disparity metrics, defined once. "This pixel has ground truth" is
:func:`simlearn.disparity.valid_ground_truth`, the rule the data, validation and figures share.

On the evaluated pixels ``P`` (valid ground truth, inside the evaluated region, optionally
non-occluded), with error ``e = |d_pred - d_gt|``:

- ``accuracy_3px = |{p in P: e <= 3}| / |P|`` (Zbontar & LeCun 2016 report its complement, the
  error rate at 3 px), ``accuracy_1px`` the same at 1 px;
- ``d1 = |{p in P: e > 3 and e > 0.05 d_gt}| / |P|``, the KITTI 2015 outlier rate (Menze &
  Geiger 2015, "Object Scene Flow for Autonomous Vehicles");
- ``epe = mean_{p in P, predicted} e``, the mean end-point error;
- ``density = |{p in P: d_pred finite}| / |P|``;
- the accuracy curve: ``accuracy(t) = |{p in P: e <= t}| / |P|`` for thresholds ``t`` from 0 to
  10 px (:data:`CURVE_THRESHOLDS`), so that ``accuracy(1)`` and ``accuracy(3)`` are the two
  accuracies above (Middlebury's tables give its complement, the "bad t" rates).

A pixel that post-processing left without a prediction (NaN) counts as wrong in the accuracies
and as an outlier in ``d1``; ``epe`` averages over the predicted pixels only, and ``density``
says how many those are. Metrics over several pairs pool the pixels (sum the counts).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from simlearn.disparity import valid_ground_truth


@dataclass
class DisparityCounts:
    """Pixel counts from which every metric follows; ``+`` pools pairs."""

    pixels: int = 0  # |P|
    within_3px: int = 0
    within_1px: int = 0
    d1_outliers: int = 0
    predicted: int = 0
    error_sum: float = 0.0  # sum of e over predicted pixels

    def __add__(self, other: DisparityCounts) -> DisparityCounts:
        return DisparityCounts(
            *(getattr(self, f.name) + getattr(other, f.name) for f in fields(self))
        )

    def metrics(self, prefix: str = "") -> dict[str, float]:
        n = self.pixels
        nan = float("nan")
        return {
            f"{prefix}accuracy_3px": self.within_3px / n if n else nan,
            f"{prefix}accuracy_1px": self.within_1px / n if n else nan,
            f"{prefix}d1": self.d1_outliers / n if n else nan,
            f"{prefix}epe": self.error_sum / self.predicted if self.predicted else nan,
            f"{prefix}density": self.predicted / n if n else nan,
        }


def _evaluated(
    disparity_pred: np.ndarray, disparity_gt: np.ndarray, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, ground truth), float64 (P,), on the evaluated pixels: valid ground truth
    and ``mask``; the one selection of :func:`disparity_counts` and :func:`within_counts`."""
    pred = np.asarray(disparity_pred, dtype=np.float64)
    gt = np.asarray(disparity_gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    sel = valid_ground_truth(gt)
    if mask is not None:
        if mask.shape != gt.shape:
            raise ValueError(f"mask {mask.shape} and ground truth {gt.shape} differ in shape")
        sel &= np.asarray(mask, dtype=bool)
    return pred[sel], gt[sel]


def disparity_counts(
    disparity_pred: np.ndarray, disparity_gt: np.ndarray, mask: np.ndarray | None = None
) -> DisparityCounts:
    """Counts on the pixels with valid ground truth (and ``mask``, when given).

    Args:
        disparity_pred: (H, W) prediction in pixels; NaN or inf = no prediction.
        disparity_gt: (H, W) ground truth; see :func:`valid_ground_truth`.
        mask: (H, W) bool, the pixels to evaluate (a held-out region, non-occluded pixels).
    """
    p, g = _evaluated(disparity_pred, disparity_gt, mask)
    has = np.isfinite(p)
    err = np.abs(np.where(has, p, 0.0) - g)
    ok3 = has & (err <= 3.0)
    return DisparityCounts(
        pixels=len(g),
        within_3px=int(ok3.sum()),
        within_1px=int((has & (err <= 1.0)).sum()),
        d1_outliers=int((~has | ((err > 3.0) & (err > 0.05 * g))).sum()),
        predicted=int(has.sum()),
        error_sum=float(err[has].sum()),
    )


#: thresholds (px) of the accuracy curve: 0 to 10 in steps of 0.25
CURVE_THRESHOLDS = np.arange(41) / 4.0


def within_counts(
    disparity_pred: np.ndarray,
    disparity_gt: np.ndarray,
    mask: np.ndarray | None = None,
    thresholds: np.ndarray = CURVE_THRESHOLDS,
) -> tuple[np.ndarray, int]:
    """``(|{p in P: e <= t}| for each t, |P|)``: the accuracy curve's counts for one map, on the
    same pixels as :func:`disparity_counts` (no prediction counts as wrong). Sum the counts of
    several pairs, then divide, to pool them."""
    p, g = _evaluated(disparity_pred, disparity_gt, mask)
    err = np.sort(np.abs(p[np.isfinite(p)] - g[np.isfinite(p)]))  # (predicted,)
    within = np.searchsorted(err, np.asarray(thresholds, dtype=np.float64), side="right")
    return within.astype(np.int64), len(g)


def disparity_metrics(
    disparity_pred: np.ndarray,
    disparity_gt: np.ndarray,
    mask: np.ndarray | None = None,
    prefix: str = "",
) -> dict[str, float]:
    """``accuracy_3px``, ``accuracy_1px``, ``d1``, ``epe``, ``density`` of one map (see the
    module docstring), keys prefixed by ``prefix``."""
    return disparity_counts(disparity_pred, disparity_gt, mask).metrics(prefix)


def occlusion_from_disparity(disparity_gt: np.ndarray, tolerance: float = 1.0) -> np.ndarray:
    """(H, W) bool: left pixels hidden in the right view, from the left ground truth alone.

    Left pixel ``x`` lands on right column ``x - d(x)``. It is occluded when some pixel to its
    right in the same row lands at least ``tolerance`` further left in the right view: that pixel
    is nearer (larger ``d``) and hides it, ``min_{x' > x} (x' - d(x')) <= x - d(x) - tolerance``.
    A running minimum from the right makes it one vectorised pass per row. Pixels that land
    outside the right image (``x - d < 0``) count as occluded too; pixels without ground truth
    are never marked.
    """
    gt = np.asarray(disparity_gt, dtype=np.float64)
    h, w = gt.shape
    valid = valid_ground_truth(gt)
    xr = np.where(valid, np.arange(w)[None, :] - np.nan_to_num(gt, nan=0.0), np.inf)  # (H, W)
    # running minimum of xr over the pixels strictly to the right
    suffix_min = np.minimum.accumulate(xr[:, ::-1], axis=1)[:, ::-1]
    right_min = np.concatenate([suffix_min[:, 1:], np.full((h, 1), np.inf)], axis=1)
    return valid & ((right_min <= xr - tolerance) | (xr < 0))
