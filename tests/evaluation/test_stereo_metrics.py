"""Disparity metrics against a brute-force loop over pixels, with exact ties at the thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from simlearn.disparity import valid_ground_truth
from simlearn.evaluation.stereo import (
    CURVE_THRESHOLDS,
    DisparityCounts,
    disparity_counts,
    disparity_metrics,
    occlusion_from_disparity,
    within_counts,
)


def _brute(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    n = ok3 = ok1 = d1 = npred = 0
    err_sum = 0.0
    for y in range(gt.shape[0]):
        for x in range(gt.shape[1]):
            g, p = gt[y, x], pred[y, x]
            if not (np.isfinite(g) and g > 0 and mask[y, x]):
                continue
            n += 1
            if not np.isfinite(p):
                d1 += 1
                continue
            npred += 1
            e = abs(p - g)
            err_sum += e
            ok3 += e <= 3
            ok1 += e <= 1
            d1 += e > 3 and e > 0.05 * g
    return {
        "accuracy_3px": ok3 / n,
        "accuracy_1px": ok1 / n,
        "d1": d1 / n,
        "epe": err_sum / npred,
        "density": npred / n,
    }


def test_metrics_equal_a_loop_with_ties_holes_and_unknown_ground_truth():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 120, (9, 11)).astype(np.float64)  # 0 = unknown, as in KITTI's files
    gt[0, :4] = np.nan
    gt[1, :2] = np.inf  # Middlebury's unknown
    # errors of exactly 0, 1, 3, 3.5 and up to 10 px: ties on both thresholds
    pred = gt + rng.choice([0.0, 1.0, -1.0, 3.0, -3.0, 3.5, 7.0, -10.0], gt.shape)
    pred[2, 3:6] = np.nan  # holes left by post-processing
    mask = rng.random(gt.shape) < 0.8
    got = disparity_metrics(pred, gt, mask)
    want = _brute(pred, gt, mask)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k


def test_accuracy_curve_counts_equal_a_loop_with_ties_and_holes():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 60, (8, 9)).astype(np.float64)
    gt[0, :3] = np.nan
    pred = gt + rng.choice([0.0, 0.25, -1.0, 3.0, -2.75, 9.5, 10.0, -12.0], gt.shape)
    pred[4, 2:5] = np.nan
    mask = rng.random(gt.shape) < 0.7
    within, n = within_counts(pred, gt, mask)
    pixels = [
        (pred[y, x], gt[y, x])
        for y in range(gt.shape[0])
        for x in range(gt.shape[1])
        if np.isfinite(gt[y, x]) and gt[y, x] > 0 and mask[y, x]
    ]
    assert n == len(pixels)
    for t, w in zip(CURVE_THRESHOLDS, within, strict=True):
        assert w == sum(np.isfinite(p) and abs(p - g) <= t for p, g in pixels), t
    m = disparity_metrics(pred, gt, mask)  # the curve passes through both accuracies
    assert within[CURVE_THRESHOLDS == 1.0][0] / n == m["accuracy_1px"]
    assert within[CURVE_THRESHOLDS == 3.0][0] / n == m["accuracy_3px"]


def test_d1_needs_both_three_pixels_and_five_percent():
    gt = np.array([[10.0, 100.0, 100.0]])
    pred = np.array([[13.5, 103.5, 106.0]])  # 3.5 px: > 5% of 10, < 5% of 100; 6 px: > both
    m = disparity_metrics(pred, gt)
    assert m["d1"] == pytest.approx(2 / 3)
    assert m["accuracy_3px"] == 0.0


def test_counts_pool_pairs():
    rng = np.random.default_rng(1)
    a_gt, b_gt = rng.uniform(1, 50, (4, 5)), rng.uniform(1, 50, (3, 6))
    a_pr, b_pr = a_gt + rng.normal(0, 3, a_gt.shape), b_gt + rng.normal(0, 3, b_gt.shape)
    pooled = (disparity_counts(a_pr, a_gt) + disparity_counts(b_pr, b_gt)).metrics("x_")
    flat = disparity_metrics(
        np.concatenate([a_pr.ravel(), b_pr.ravel()])[None],
        np.concatenate([a_gt.ravel(), b_gt.ravel()])[None],
    )
    for k, v in flat.items():
        assert pooled["x_" + k] == pytest.approx(v)
    assert np.isnan(DisparityCounts().metrics()["accuracy_3px"])


def test_valid_ground_truth_rule():
    gt = np.array([[np.nan, np.inf, 0.0, -1.0, 0.5, 60.0]])
    assert valid_ground_truth(gt).tolist() == [[False, False, False, False, True, True]]


def test_occlusion_from_ground_truth_brute_force():
    rng = np.random.default_rng(2)
    gt = rng.integers(1, 6, (4, 12)).astype(np.float64)
    gt[0, 3] = np.nan
    got = occlusion_from_disparity(gt)
    for y in range(4):
        for x in range(12):
            if not np.isfinite(gt[y, x]):
                assert not got[y, x]
                continue
            xr = x - gt[y, x]
            hidden = any(np.isfinite(gt[y, k]) and k - gt[y, k] <= xr - 1 for k in range(x + 1, 12))
            assert got[y, x] == (hidden or xr < 0), (y, x)
