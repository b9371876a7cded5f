"""Distances and normalisations: each distance against scipy's ``cdist``, the normalisations
against worked examples, and the rankings they must share."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from simlearn.config import ConfigError, EvalConfig, from_dict
from simlearn.evaluation import nearest_neighbors, retrieval_metrics
from simlearn.evaluation.distances import (
    DISTANCE_ALIASES,
    DISTANCES,
    NORMALIZATIONS,
    canonical_distance,
    normalize_embeddings,
    pairwise_distances,
)
from simlearn.evaluation.retrieval import _augment, _distance_block

# our name -> scipy's metric (dot: the negated inner product, as a callable)
SCIPY = {
    "euclidean": "euclidean",
    "manhattan": "cityblock",
    "chebyshev": "chebyshev",
    "cosine": "cosine",
    "dot": lambda u, v: -float(np.dot(u, v)),
}


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("distance", DISTANCES)
def test_pairwise_distances_equal_scipy_cdist(distance: str) -> None:
    q, g = gaussian(17, 9, 0), gaussian(31, 9, 1)
    ours = pairwise_distances(q, g, distance).numpy()  # float64 in, float64 out
    np.testing.assert_allclose(ours, cdist(q, g, SCIPY[distance]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("distance", DISTANCES)
def test_ranking_distances_of_the_metrics_equal_scipy_cdist(distance: str) -> None:
    """The (Q, N) block the exact metrics rank (squared for Euclidean), in float32."""
    q, g = gaussian(23, 12, 2), gaussian(40, 12, 3)
    qa, ga = _augment(torch.from_numpy(q).float(), torch.from_numpy(g).float(), distance)
    block = _distance_block(qa, ga, distance=distance).double().numpy()
    expected = cdist(q, g, SCIPY[distance])
    if distance == "euclidean":
        expected = expected**2
    np.testing.assert_allclose(block, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("distance", DISTANCES)
def test_nearest_neighbors_distances_equal_scipy_cdist(distance: str) -> None:
    q, g = gaussian(11, 6, 4), gaussian(50, 6, 5)
    idx, dist = nearest_neighbors(q, g, k=5, distance=distance)
    full = cdist(q, g, SCIPY[distance])
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), rtol=1e-5, atol=1e-5)


def test_aliases_and_unknown_names() -> None:
    assert canonical_distance("l1") == "manhattan"
    assert canonical_distance("l2") == "euclidean"
    assert canonical_distance("linf") == "chebyshev"
    assert set(DISTANCE_ALIASES.values()) <= set(DISTANCES)
    with pytest.raises(ValueError, match="distance='minkowski' is not supported; allowed: "):
        canonical_distance("minkowski")
    with pytest.raises(ValueError, match="normalize='l1'"):
        normalize_embeddings(np.ones((2, 2)), "l1")


def test_normalisations_worked_examples() -> None:
    x = np.array([[4.0, -9.0, 0.0], [0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    assert normalize_embeddings(x, "none") is x
    np.testing.assert_allclose(
        normalize_embeddings(x, "l2"), [[4 / 97**0.5, -9 / 97**0.5, 0], [0, 0, 0], [0.6, 0.8, 0]]
    )
    # sign(x) sqrt|x| = (2, -3, 0), then unit length: / sqrt(13); (3, 4) -> (sqrt3, 2) / sqrt7
    s13, s7 = 13**0.5, 7**0.5
    np.testing.assert_allclose(
        normalize_embeddings(x, "sqrt"),
        [[2 / s13, -3 / s13, 0], [0, 0, 0], [3**0.5 / s7, 2 / s7, 0]],
    )
    for how in NORMALIZATIONS:  # torch and numpy agree, dtype kept
        t = normalize_embeddings(torch.from_numpy(x).float(), how)
        a = normalize_embeddings(x.astype(np.float32), how)
        assert t.dtype == torch.float32 and a.dtype == np.float32
        np.testing.assert_allclose(t.numpy(), a, rtol=1e-6, atol=1e-7)


def test_sqrt_normalisation_damps_a_bursty_component() -> None:
    # one component 100x the others: after l2 the others nearly vanish, after sqrt they remain
    x = np.array([[100.0, 1.0, 1.0, 1.0]])
    rest_l2 = normalize_embeddings(x, "l2")[0, 1:].sum()
    rest_sqrt = normalize_embeddings(x, "sqrt")[0, 1:].sum()
    assert rest_l2 == pytest.approx(3 / (10003**0.5))
    assert rest_sqrt == pytest.approx(3 / (103**0.5))
    assert rest_sqrt / rest_l2 == pytest.approx((10003 / 103) ** 0.5)  # about 9.9x more weight


def test_l2_and_cosine_rank_alike_on_unit_vectors() -> None:
    rng = np.random.default_rng(6)
    x = normalize_embeddings(rng.normal(size=(300, 16)), "l2")
    y = rng.integers(0, 6, 300)
    a = retrieval_metrics(x, y, distance="euclidean", precision="float64")
    b = retrieval_metrics(x, y, distance="cosine", precision="float64")
    for name in ("average_precision", "map_at_r", "r_precision", "reciprocal_rank"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-12)
    a_idx = nearest_neighbors(x, k=10, distance="euclidean")[0]
    np.testing.assert_array_equal(a_idx, nearest_neighbors(x, k=10, distance="cosine")[0])


def test_l2_cosine_and_dot_rank_alike_on_exact_unit_vectors_with_ties() -> None:
    """Four entries +-1/2 per row: unit norms, and every dot product, squared distance and cosine
    is exact in float32, so the three rankings agree tie for tie."""
    rng = np.random.default_rng(7)
    x = np.zeros((300, 16), dtype=np.float32)
    for row in x:
        row[rng.choice(16, 4, replace=False)] = rng.choice([-0.5, 0.5], 4)
    y = rng.integers(0, 6, 300)
    res = {d: retrieval_metrics(x, y, distance=d) for d in ("euclidean", "cosine", "dot")}
    idx = {d: nearest_neighbors(x, k=10, distance=d)[0] for d in res}
    for d in ("cosine", "dot"):
        for name in ("average_precision", "map_at_r", "r_precision", "reciprocal_rank"):
            np.testing.assert_array_equal(getattr(res[d], name), getattr(res["euclidean"], name))
        np.testing.assert_array_equal(idx[d], idx["euclidean"])
    # off the sphere they part: scaling rows by powers of 2 (exact) moves the L2 ranking only
    scaled = x * (2.0 ** rng.integers(-3, 4, size=(300, 1))).astype(np.float32)
    assert (nearest_neighbors(scaled, k=10, distance="euclidean")[0] != idx["euclidean"]).any()
    np.testing.assert_array_equal(
        nearest_neighbors(scaled, k=10, distance="cosine")[0], idx["cosine"]
    )


def test_eval_config_accepts_every_distance_and_normalisation() -> None:
    assert EvalConfig().distance == "euclidean" and EvalConfig().normalize == "none"
    for d in (*DISTANCES, *DISTANCE_ALIASES):
        assert from_dict(EvalConfig, {"distance": d}, "experiments.x.eval").distance == d
    for n in NORMALIZATIONS:
        assert from_dict(EvalConfig, {"normalize": n}, "experiments.x.eval").normalize == n
    with pytest.raises(ConfigError, match=r"experiments\.x\.eval\.distance='hamming'"):
        from_dict(EvalConfig, {"distance": "hamming"}, "experiments.x.eval")
    with pytest.raises(
        ConfigError, match=r"experiments\.x\.eval\.normalize='unit'.*none, l2, sqrt"
    ):
        from_dict(EvalConfig, {"normalize": "unit"}, "experiments.x.eval")


# --------------------------------------------------------------------------------------------
# Pair verification and the classification probes accept every distance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", DISTANCES)
def test_pair_distances_equal_scipy_cdist(distance: str) -> None:
    from simlearn.evaluation import pair_distances

    x = gaussian(40, 5, 8)
    y = np.random.default_rng(8).integers(0, 3, 40)
    d, same = pair_distances(x, y, distance=distance)
    i, j = np.triu_indices(40, k=1)
    np.testing.assert_allclose(d, cdist(x, x, SCIPY[distance])[i, j], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(same, y[i] == y[j])


@pytest.mark.parametrize("distance", DISTANCES)
def test_knn_and_nearest_class_mean_match_a_brute_force_loop(distance: str) -> None:
    from simlearn.evaluation import knn_accuracy, nearest_class_mean_accuracy

    rng = np.random.default_rng(9)
    xtr, xte = gaussian(120, 4, 10), gaussian(50, 4, 11)
    ytr, yte = rng.integers(0, 4, 120), rng.integers(0, 4, 50)
    dist = cdist(xte, xtr, SCIPY[distance])  # (50, 120), continuous: no ties
    means = np.stack([xtr[ytr == c].mean(0) for c in range(4)])  # (4, D)
    if distance == "cosine":  # the class means of unit vectors, as for cosine NCM
        unit = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
        means = np.stack([unit[ytr == c].mean(0) for c in range(4)])
    knn_right = ncm_right = 0
    for i in range(50):
        votes = np.bincount(ytr[np.argsort(dist[i])[:5]], minlength=4)
        knn_right += int(np.argmax(votes) == yte[i])  # argmax: the smallest label on a tie
        d_c = [
            SCIPY[distance](xte[i], m)
            if callable(SCIPY[distance])
            else cdist(xte[i : i + 1], m[None], SCIPY[distance])[0, 0]
            for m in means
        ]
        ncm_right += int(np.argmin(d_c) == yte[i])
    assert knn_accuracy(xtr, ytr, xte, yte, k=5, distance=distance) == knn_right / 50
    assert nearest_class_mean_accuracy(xtr, ytr, xte, yte, distance=distance) == ncm_right / 50
