"""The distance objects of simlearn.distances: every form against a Python loop written from the
definitions (or scipy's ``cdist``), the larger-is-closer notion, names and aliases, the
normalisations, and the rankings the evaluation distances must share."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist

from simlearn import distances
from simlearn.config import ConfigError, EvalConfig, from_dict
from simlearn.distances import (
    ALIASES,
    CHEBYSHEV,
    COSINE,
    DISTANCES,
    DOT,
    EUCLIDEAN,
    LOSS_NAMES,
    MANHATTAN,
    NAMES,
    NORMALIZATIONS,
    SQUARED_L2,
    Distance,
    normalize_embeddings,
)
from simlearn.evaluation import nearest_neighbors, retrieval_metrics

ALL: tuple[Distance, ...] = (MANHATTAN, EUCLIDEAN, SQUARED_L2, CHEBYSHEV, COSINE, DOT)
IDS = [d.name for d in ALL]

# our name -> scipy's metric for the evaluation dissimilarity (dot: -q.g, as a callable)
SCIPY = {
    "euclidean": "euclidean",
    "squared_euclidean": "sqeuclidean",
    "manhattan": "cityblock",
    "chebyshev": "chebyshev",
    "cosine": "cosine",
    "dot": lambda u, v: -float(np.dot(u, v)),
}


def value_loop(x: list[float], y: list[float], name: str) -> float:
    """v(x, y) of one pair, written out from the definitions in plain Python."""
    diff = [a - b for a, b in zip(x, y, strict=True)]
    if name == "manhattan":
        return sum(abs(t) for t in diff)
    if name == "euclidean":
        return math.sqrt(sum(t * t for t in diff))
    if name == "squared_euclidean":
        return sum(t * t for t in diff)
    if name == "chebyshev":
        return max(abs(t) for t in diff)
    dot = sum(a * b for a, b in zip(x, y, strict=True))
    if name == "dot":
        return dot
    return dot / (math.sqrt(sum(a * a for a in x)) * math.sqrt(sum(b * b for b in y)))


def dissimilarity_loop(x: list[float], y: list[float], name: str) -> float:
    """The evaluation dissimilarity: the distance itself, 1 - cos, or -x.y."""
    v = value_loop(x, y, name)
    return 1.0 - v if name == "cosine" else -v if name == "dot" else v


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# --------------------------------------------------------------------------------------------
# Training forms: pairwise and row-wise against the loop
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_pairwise_matches_loop(dist: Distance) -> None:
    x, y = gaussian(5, 3, 0), gaussian(4, 3, 1)
    got = dist.pairwise(torch.from_numpy(x), torch.from_numpy(y))
    assert got.shape == (5, 4) and got.dtype == torch.float64
    want = [[value_loop(list(a), list(b), dist.name) for b in y] for a in x]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_rowwise_matches_loop_and_pairwise_diagonal(dist: Distance) -> None:
    x, y = torch.from_numpy(gaussian(6, 4, 2)), torch.from_numpy(gaussian(6, 4, 3))
    got = dist.rowwise(x, y)
    want = [value_loop(x[i].tolist(), y[i].tolist(), dist.name) for i in range(6)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got, torch.diagonal(dist.pairwise(x, y)))


def test_cosine_is_scale_invariant_worked_example() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 2.0], [-5.0, 0.0]], dtype=torch.float64)
    s = 2.0**-0.5
    want = torch.tensor([[0.0, -1.0], [s, -s]], dtype=torch.float64)
    torch.testing.assert_close(COSINE.pairwise(x, y), want)
    torch.testing.assert_close(COSINE.pairwise(7.0 * x, y), want)
    assert DOT.pairwise(7.0 * x, y)[1, 0].item() == 7.0 * 6.0  # the raw dot product grows


def test_ordering_notion() -> None:
    assert {d.name for d in ALL if d.is_similarity} == {"cosine", "dot"}
    assert all(d.is_inverted == d.is_similarity for d in ALL)
    assert COSINE.normalizes and not any(d.normalizes for d in ALL if d is not COSINE)
    pos, neg = torch.tensor([1.0]), torch.tensor([3.0])
    # Distance: the negative (3) is farther than the positive (1): no violation, -2.
    assert EUCLIDEAN.violation(pos, neg).item() == -2.0
    # Similarity: the negative (3) is more similar than the positive (1): violation +2.
    assert COSINE.violation(pos, neg).item() == 2.0
    assert DOT.as_dissimilarity(pos).item() == -1.0
    assert EUCLIDEAN.as_dissimilarity(pos) is pos


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_as_dissimilarity_orders_smaller_is_closer(dist: Distance) -> None:
    """Sorting by as_dissimilarity and by to_distance gives the loop's nearest-first order."""
    q, g = gaussian(1, 5, 4), gaussian(30, 5, 5)
    want = np.argsort([dissimilarity_loop(list(q[0]), list(b), dist.name) for b in g])
    values = dist.pairwise(torch.from_numpy(q), torch.from_numpy(g))[0]
    np.testing.assert_array_equal(np.argsort(dist.as_dissimilarity(values).numpy()), want)
    np.testing.assert_array_equal(np.argsort(dist.to_distance(values).numpy()), want)


def test_euclidean_gradient_is_finite_where_points_coincide() -> None:
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    d = EUCLIDEAN.pairwise(x, x)  # diagonal and off-diagonal are all coincident
    assert torch.all(d < 1e-5)
    (grad,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(grad).all()
    r = EUCLIDEAN.rowwise(x[:1], x[1:])
    (grad,) = torch.autograd.grad(r.sum(), x)
    assert torch.isfinite(grad).all()


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_half_precision_is_computed_in_float32(dist: Distance) -> None:
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(2))
    want = dist.pairwise(x.bfloat16().double(), x.bfloat16().double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = dist.pairwise(x.bfloat16(), x.bfloat16())
    assert got.dtype == torch.float32
    # Only the bfloat16 rounding of the inputs remains, not a bfloat16 matmul.
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-4)


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"same embedding size D"):
        EUCLIDEAN.pairwise(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"same shape"):
        EUCLIDEAN.rowwise(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        EUCLIDEAN.pairwise(torch.zeros(3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"floating-point"):
        EUCLIDEAN.pairwise(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(Q, D\) and \(N, D\)"):
        EUCLIDEAN.reference(np.zeros((2, 3)), np.zeros((2, 4)))


# --------------------------------------------------------------------------------------------
# Evaluation forms: dissimilarities
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_reference_equals_scipy_cdist(dist: Distance) -> None:
    q, g = gaussian(17, 9, 0), gaussian(31, 9, 1)
    ours = dist.reference(q, g).numpy()  # float64 in, float64 out
    np.testing.assert_allclose(ours, cdist(q, g, SCIPY[dist.name]), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_exact_broadcasts_matched_rows_like_the_loop(dist: Distance) -> None:
    q, g = gaussian(4, 6, 6), gaussian(4 * 3, 6, 7).reshape(4, 3, 6)
    got = dist.exact(torch.from_numpy(q)[:, None, :], torch.from_numpy(g))  # (4, 3)
    want = [[dissimilarity_loop(list(q[i]), list(g[i, j]), dist.name) for j in range(3)]
            for i in range(4)]  # fmt: skip
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_numpy_forms_match_the_loop(dist: Distance) -> None:
    x, y = gaussian(7, 5, 8), gaussian(7, 5, 9)
    a, b = dist.prepare_numpy(x), dist.prepare_numpy(y)
    want_rows = [value_loop(list(x[i]), list(y[i]), dist.name) for i in range(7)]
    np.testing.assert_allclose(dist.rowwise_numpy(a, b), want_rows, rtol=1e-12, atol=1e-12)
    want = [[value_loop(list(r), list(c), dist.name) for c in y[:3]] for r in x]
    np.testing.assert_allclose(dist.pairwise_numpy(a, y[:3]), want, rtol=1e-12, atol=1e-12)


def test_cosine_forms_reject_zero_vectors() -> None:
    with pytest.raises(ValueError, match="emb has a zero vector"):
        COSINE.prepare_numpy(np.zeros((2, 3)), "emb")
    with pytest.raises(ValueError, match="zero vector"):
        COSINE.reference(np.ones((2, 3)), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="gallery_emb has a zero vector"):
        COSINE.ranking_form(torch.zeros(2, 3), gallery=True, name="gallery_emb")
    # a zero class mean (directions that cancel out) scores 0 against everything
    np.testing.assert_array_equal(COSINE.pairwise_numpy(np.eye(2), np.zeros((1, 2))), [[0], [0]])


# --------------------------------------------------------------------------------------------
# Ranking forms
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_ranking_block_equals_scipy_cdist(dist: Distance) -> None:
    """The (Q, N) block the exact metrics rank (squared for Euclidean), in float32."""
    q, g = gaussian(23, 12, 2), gaussian(40, 12, 3)
    qa = dist.ranking_form(torch.from_numpy(q).float(), gallery=False)
    ga = dist.ranking_form(torch.from_numpy(g).float(), gallery=True)
    block = dist.ranking_block(qa, ga).double().numpy()
    expected = cdist(q, g, SCIPY[dist.name])
    if dist is EUCLIDEAN:
        expected = expected**2
    np.testing.assert_allclose(block, expected, rtol=1e-5, atol=1e-5)
    out = torch.empty(23, 40)
    assert dist.ranking_block(qa, ga, out) is out


@pytest.mark.parametrize("dist", [MANHATTAN, EUCLIDEAN, CHEBYSHEV, DOT], ids=str)
def test_ranking_block_is_exact_on_integer_data(dist: Distance) -> None:
    """Small integers: every float32 ranking value is an exact integer, so ties are exact."""
    rng = np.random.default_rng(4)
    q, g = rng.integers(-5, 6, (30, 7)), rng.integers(-5, 6, (50, 7))
    qa = dist.ranking_form(torch.from_numpy(q).float(), gallery=False)
    ga = dist.ranking_form(torch.from_numpy(g).float(), gallery=True)
    want = cdist(q, g, SCIPY[dist.name]) ** (2 if dist is EUCLIDEAN else 1)
    np.testing.assert_array_equal(dist.ranking_block(qa, ga).double().numpy(), np.rint(want))


@pytest.mark.parametrize("dist", ALL, ids=IDS)
def test_ranking_form_rejects_values_that_could_overflow(dist: Distance) -> None:
    huge = torch.full((2, 3), 1e37)
    if dist is COSINE:  # scale-free
        dist.ranking_form(huge, gallery=False)
        return
    with pytest.raises(ValueError, match="too large"):
        dist.ranking_form(huge, gallery=False, name="query_emb")


# --------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------


def test_names_aliases_and_objects() -> None:
    assert distances.get("l1") is MANHATTAN and distances.get("manhattan") is MANHATTAN
    assert distances.get("l2") is EUCLIDEAN and distances.get("linf") is CHEBYSHEV
    assert distances.get("dot") is DOT and distances.get("squared_euclidean") is SQUARED_L2
    assert distances.get(COSINE) is COSINE  # an object is taken as it is
    assert ALIASES == {"l1": "manhattan", "l2": "euclidean", "linf": "chebyshev"}
    assert set(ALIASES.values()) <= set(DISTANCES) <= set(NAMES)
    assert [distances.get(n).label for n in DISTANCES] == [
        "L1", "L2", "L\u221e", "cosine", "dot product"
    ]  # fmt: skip
    assert {n: str(d) for n, d in NAMES.items() if n == d.name} == {d.name: d.name for d in ALL}
    assert EUCLIDEAN == distances.Euclidean() and hash(EUCLIDEAN) == hash(distances.Euclidean())
    assert repr(COSINE) == "Cosine()"


def test_loss_names_call_the_cosine_dot() -> None:
    """Loss configs name the dot product of L2-normalised embeddings "dot"."""
    assert distances.get("dot", names=LOSS_NAMES) is COSINE
    assert distances.get("euclidean", names=LOSS_NAMES) is EUCLIDEAN
    with pytest.raises(ValueError, match=r"distance='manhattan' is not supported; allowed: "):
        distances.get("manhattan", names=LOSS_NAMES)


def test_unknown_names_fail_with_the_allowed_ones() -> None:
    with pytest.raises(
        ValueError,
        match=r"^distance='minkowski' is not supported; allowed: 'manhattan', 'euclidean', "
        r"'chebyshev', 'cosine', 'dot', 'squared_euclidean', 'l1', 'l2', 'linf'$",
    ):
        distances.get("minkowski")
    with pytest.raises(ValueError, match=r"^metric='dot' is not supported; allowed: 'euclidean'$"):
        distances.get("dot", ("euclidean",), key="metric")
    with pytest.raises(ValueError, match="is not supported"):
        distances.get(None)  # type: ignore[arg-type]


def test_eval_config_accepts_every_distance_and_normalisation() -> None:
    assert EvalConfig().distance == "euclidean" and EvalConfig().normalize == "none"
    for d in (*DISTANCES, *ALIASES):
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
# Normalisations
# --------------------------------------------------------------------------------------------


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
    with pytest.raises(ValueError, match="normalize='l1'"):
        normalize_embeddings(np.ones((2, 2)), "l1")


def test_sqrt_normalisation_damps_a_bursty_component() -> None:
    # one component 100x the others: after l2 the others nearly vanish, after sqrt they remain
    x = np.array([[100.0, 1.0, 1.0, 1.0]])
    rest_l2 = normalize_embeddings(x, "l2")[0, 1:].sum()
    rest_sqrt = normalize_embeddings(x, "sqrt")[0, 1:].sum()
    assert rest_l2 == pytest.approx(3 / (10003**0.5))
    assert rest_sqrt == pytest.approx(3 / (103**0.5))
    assert rest_sqrt / rest_l2 == pytest.approx((10003 / 103) ** 0.5)  # about 9.9x more weight


# --------------------------------------------------------------------------------------------
# Rankings the evaluation distances share, and every evaluation accepts every distance
# --------------------------------------------------------------------------------------------


def test_l2_and_cosine_rank_alike_on_unit_vectors() -> None:
    rng = np.random.default_rng(6)
    x = normalize_embeddings(rng.normal(size=(300, 16)), "l2")
    y = rng.integers(0, 6, 300)
    a = retrieval_metrics(x, y, distance="euclidean", precision="float64")
    b = retrieval_metrics(x, y, distance=COSINE, precision="float64")
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


@pytest.mark.parametrize("distance", DISTANCES)
def test_nearest_neighbors_distances_equal_scipy_cdist(distance: str) -> None:
    q, g = gaussian(11, 6, 4), gaussian(50, 6, 5)
    idx, dist = nearest_neighbors(q, g, k=5, distance=distance)
    full = cdist(q, g, SCIPY[distance])
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(dist, np.take_along_axis(full, idx, 1), rtol=1e-5, atol=1e-5)


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
    obj = distances.get(distance)  # an object works as its name
    assert nearest_class_mean_accuracy(xtr, ytr, xte, yte, distance=obj) == ncm_right / 50
