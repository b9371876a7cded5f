"""Pair verification against scikit-learn on a brute-force pair list, and the pair sampler."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from simlearn.evaluation import pair_distances, pair_verification, sample_pairs


def brute_pairs(x: np.ndarray, y: np.ndarray, distance: str) -> tuple[np.ndarray, np.ndarray]:
    """All pairs i < j, row-major, by two plain loops."""
    d, same = [], []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if distance == "euclidean":
                d.append(float(np.sqrt(np.sum((x[i] - x[j]) ** 2))))
            else:
                cos = x[i] @ x[j] / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
                d.append(1.0 - float(cos))
            same.append(bool(y[i] == y[j]))
    return np.array(d), np.array(same)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_all_pairs_match_the_brute_force_list(distance: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    y = rng.integers(0, 4, 40)
    d, same = pair_distances(x, y, distance=distance)
    d_ref, same_ref = brute_pairs(x, y, distance)
    np.testing.assert_allclose(d, d_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(same, same_ref)
    assert len(d) == 40 * 39 // 2


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "manhattan", "chebyshev", "dot"])
def test_distances_do_not_depend_on_the_block_size(
    distance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache-sized blocks change speed only: every pair's distance is the same bits."""
    import simlearn.evaluation.pairs as pairs

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 97))
    y = rng.integers(0, 5, 300)
    d_ref, same_ref = pair_distances(x, y, distance=distance, max_pairs=30_000, seed=3)
    for block_bytes in (8, 8 * 97 * 1000, 1 << 30):  # 64 pairs (the floor), 1,000, everything
        monkeypatch.setattr(pairs, "_PAIR_BLOCK_BYTES", block_bytes)
        d, same = pair_distances(x, y, distance=distance, max_pairs=30_000, seed=3)
        np.testing.assert_array_equal(d, d_ref)
        np.testing.assert_array_equal(same, same_ref)


@pytest.mark.parametrize(
    ("distance", "formula"),
    [
        ("euclidean", lambda d: np.sqrt(np.sum(d * d))),
        ("squared_euclidean", lambda d: np.sum(d * d)),
        ("manhattan", lambda d: np.sum(np.abs(d))),
        ("chebyshev", lambda d: np.max(np.abs(d))),
    ],
)
def test_every_pair_by_pdist_equals_the_blocked_loop_and_a_brute_force_loop(
    distance: str, formula
) -> None:
    """All pairs of a Minkowski distance come from scipy's pdist (one call); sampled pairs from
    the blocked loop. Both agree with each other and with a plain double loop, pair by pair."""
    from simlearn import distances
    from simlearn.evaluation.pairs import blocked_pair_distances

    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(60, 300)).astype(np.float64) / 255  # quantised, like pixels
    y = rng.integers(0, 4, 60)
    d, same = pair_distances(x, y, distance=distance)
    i, j = np.triu_indices(60, k=1)
    blocked = blocked_pair_distances(x, i, j, distances.get(distance))
    brute = np.array([formula(x[a] - x[b]) for a, b in zip(i, j, strict=True)])
    np.testing.assert_allclose(d, blocked, rtol=1e-13, atol=0)
    np.testing.assert_allclose(d, brute, rtol=1e-13, atol=0)
    np.testing.assert_array_equal(same, y[i] == y[j])


def test_verification_equals_sklearn_on_the_pair_list() -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, size=(60, 2)).astype(float)  # integer grid: many tied distances
    y = rng.integers(0, 3, 60)
    d_ref, same_ref = brute_pairs(x, y, "euclidean")
    out = pair_verification(*pair_distances(x, y))
    assert out["roc_auc"] == pytest.approx(roc_auc_score(same_ref, -d_ref), abs=1e-12)
    assert out["pr_auc"] == pytest.approx(average_precision_score(same_ref, -d_ref), abs=1e-12)
    assert out["positive_rate"] == pytest.approx(same_ref.mean())
    assert out["n_pairs"] == len(d_ref) and out["n_positive"] == same_ref.sum()
    # ROC AUC from its definition: P(d_same < d_diff) + 1/2 P(tie)
    ds, dd = d_ref[same_ref][:, None], d_ref[~same_ref][None, :]
    assert out["roc_auc"] == pytest.approx(np.mean(ds < dd) + 0.5 * np.mean(ds == dd), abs=1e-12)
    # curves: end points and the step areas give back the two AUCs
    fpr, tpr = out["fpr"], out["tpr"]
    assert fpr[0] == 0 and tpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert np.trapezoid(tpr, fpr) == pytest.approx(out["roc_auc"], abs=1e-12)
    rec, prec = out["recall"], out["precision"]  # by decreasing recall
    assert -np.sum(np.diff(rec) * prec[:-1]) == pytest.approx(out["pr_auc"], abs=1e-12)
    # thresholds are distances: the first ROC point past the origin calls the nearest pairs same
    assert out["roc_thresholds"][1] == pytest.approx(d_ref.min())


def test_worked_example() -> None:
    # same pairs at distances 1, 3; different pairs at 2, 4 -> ranking [s, d, s, d]
    out = pair_verification(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 0, 1, 0]))
    assert out["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["roc_auc"] == pytest.approx(3 / 4)  # 3 of the 4 (same, different) pairs ordered


def test_sampling_is_uniform_distinct_and_valid() -> None:
    n, m = 300, 5000  # 44,850 pairs > 5000: sampled
    i, j = sample_pairs(n, m, seed=3)
    assert len(i) == m
    assert np.all(i < j) and np.all(i >= 0) and np.all(j < n)  # no i == j, i < j
    assert len(np.unique(i * n + j)) == m  # no pair twice
    # every pair equally likely: the row index i has P(i) = (n - 1 - i) / (n (n - 1) / 2)
    counts = np.bincount(i, minlength=n - 1)[: n - 1]
    expected = m * (n - 1 - np.arange(n - 1)) / (n * (n - 1) / 2)
    chi2 = np.sum((counts - expected) ** 2 / expected)
    assert chi2 < (n - 2) + 5 * np.sqrt(2 * (n - 2))  # mean + 5 sd of chi2(n - 2)
    # and the same for j: P(j) = j / (n (n - 1) / 2)
    counts_j = np.bincount(j, minlength=n)[1:]
    expected_j = m * np.arange(1, n) / (n * (n - 1) / 2)
    chi2_j = np.sum((counts_j - expected_j) ** 2 / expected_j)
    assert chi2_j < (n - 2) + 5 * np.sqrt(2 * (n - 2))
    # deterministic for a seed, different across seeds
    i2, j2 = sample_pairs(n, m, seed=3)
    np.testing.assert_array_equal(i, i2)
    np.testing.assert_array_equal(j, j2)
    assert not np.array_equal(sample_pairs(n, m, seed=4)[0], i)


def test_unranking_is_exact_for_every_pair_and_large_n() -> None:
    # all pairs of n = 50 requested exactly -> the sampler's unranking must give the triu list
    from simlearn.evaluation.pairs import _unrank_pairs

    n = 50
    t = np.arange(n * (n - 1) // 2, dtype=np.int64)
    i, j = _unrank_pairs(t, n)
    ti, tj = np.triu_indices(n, 1)
    np.testing.assert_array_equal(i, ti)
    np.testing.assert_array_equal(j, tj)
    # n = 3,000,000: last, first and row-boundary indices, where float sqrt is least exact
    n = 3_000_000
    total = n * (n - 1) // 2
    rows = np.array([0, 1, 2, n // 2, n - 3, n - 2], dtype=np.int64)
    starts = rows * (2 * n - rows - 1) // 2
    t = np.concatenate([starts, starts - 1, [total - 1]])[1:]  # drop index -1
    i, j = _unrank_pairs(t, n)
    # the rank of (i, j) is i (2n - i - 1) / 2 + (j - i - 1)
    np.testing.assert_array_equal(i * (2 * n - i - 1) // 2 + (j - i - 1), t)
    assert np.all(i < j) and np.all(j < n)


def test_sampled_pairs_have_the_right_distances() -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(120, 3))
    y = rng.integers(0, 3, 120)
    d, same = pair_distances(x, y, max_pairs=500, seed=7)
    i, j = sample_pairs(120, 500, seed=7)
    np.testing.assert_allclose(d, np.linalg.norm(x[i] - x[j], axis=1), rtol=1e-12)
    np.testing.assert_array_equal(same, y[i] == y[j])


def test_bad_arguments_fail_early() -> None:
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="distance='hamming'"):
        pair_distances(x, [0, 0, 1, 1], distance="hamming")
    with pytest.raises(ValueError, match="labels must have shape"):
        pair_distances(x, [0, 0, 1])
    with pytest.raises(ValueError, match="max_pairs must be a positive"):
        pair_distances(x, [0, 0, 1, 1], max_pairs=0)
    with pytest.raises(ValueError, match="zero vector"):
        pair_distances(x, [0, 0, 1, 1], distance="cosine")
    with pytest.raises(ValueError, match="n must be an integer >= 2"):
        sample_pairs(1, 10)
    with pytest.raises(ValueError, match="both same and different"):
        pair_verification(np.array([1.0, 2.0]), np.array([True, True]))
    with pytest.raises(ValueError, match="same must have the shape"):
        pair_verification(np.array([1.0, 2.0]), np.array([True]))
    with pytest.raises(ValueError, match="NaN or infinite"):
        pair_verification(np.array([np.nan, 2.0]), np.array([True, False]))
