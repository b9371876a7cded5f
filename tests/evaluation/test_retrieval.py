"""Retrieval metrics against a brute-force per-query loop, scikit-learn, pytorch-metric-learning
and worked examples.

Embeddings in most tests are small integers: every float32 distance is then an exact integer, so
the brute force (exact int64 arithmetic) and the library rank identically, ties included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, precision_recall_curve

from simlearn.evaluation import (
    RECALL_KS,
    RECALL_LEVELS,
    FlatIndex,
    nearest_neighbors,
    query_pr_curve,
    retrieval_metrics,
)

KS = (1, 3, 5, 10)
RKS = (1, 2, 3, 4, 8, 1000)  # Recall@K cut-offs the brute force checks (1000: past the gallery)


# --------------------------------------------------------------------------------------------
# Brute force, written from the definitions
# --------------------------------------------------------------------------------------------


def brute_query(dist: np.ndarray, rel: np.ndarray, ks: tuple[int, ...]) -> dict[str, object]:
    """All metrics of one query from its distances (n,) and relevance (n,), by plain loops."""
    n = len(dist)
    # cut-off metrics: rank by (distance, relevant): non-matches first within a tie
    order = sorted(range(n), key=lambda i: (dist[i], bool(rel[i])))
    r = [bool(rel[i]) for i in order]
    big_r = sum(r)
    if big_r == 0:
        return {"R": 0}

    def p_at(k: int) -> float:
        return sum(r[:k]) / k

    out: dict[str, object] = {"R": big_r}
    out["r_precision"] = sum(r[:big_r]) / big_r
    out["map_at_r"] = sum(p_at(i + 1) for i in range(big_r) if r[i]) / big_r
    out["rr"] = 1.0 / (r.index(True) + 1)
    out["pk"] = {k: p_at(k) for k in ks}
    # Recall@K: the query counts when one of its first K items is relevant
    out["rk"] = {k: 1.0 if any(r[:k]) else 0.0 for k in RKS}
    # AP: every distinct distance is a threshold; sum (recall_t - recall_{t-1}) * precision_t
    ap, prev_recall, points = 0.0, 0.0, []
    for t in sorted(set(dist.tolist())):
        inside = dist <= t
        tp = int(np.sum(inside & rel))
        fp = int(np.sum(inside & ~rel))
        precision = tp / (tp + fp)
        ap += (tp / big_r - prev_recall) * precision
        prev_recall = tp / big_r
        points.append((tp, precision))
    out["ap"] = ap
    # 11-point interpolated precision: max precision over points with recall >= level
    out["interp"] = [
        max((p for tp, p in points if 10 * tp >= level * big_r), default=0.0) for level in range(11)
    ]
    return out


def brute_force(
    query: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray | None,
    gallery_labels: np.ndarray | None,
    distance: str = "euclidean",
    ks: tuple[int, ...] = KS,
    exclude: np.ndarray | None = None,
) -> list[dict[str, object]]:
    """``exclude``: (Q,) a gallery position each query drops from its ranking, -1 for none."""
    self_source = gallery is None
    g = query if self_source else gallery
    gl = query_labels if self_source else gallery_labels
    out = []
    for i in range(len(query)):
        if distance == "euclidean":
            d = ((g - query[i]) ** 2).sum(axis=1)  # squared: same ranking, exact for integers
        elif distance == "cosine":
            qn = query[i] / np.linalg.norm(query[i])
            d = 1.0 - (g / np.linalg.norm(g, axis=1, keepdims=True)) @ qn
        else:  # one gallery item at a time, from the definitions (exact for integers)
            d = np.array([minkowski_or_dot(row, query[i], distance) for row in g])
        rel = gl == query_labels[i]
        if self_source or (exclude is not None and exclude[i] >= 0):
            keep = np.arange(len(g)) != (i if self_source else exclude[i])  # by index
            d, rel = d[keep], rel[keep]
        out.append(brute_query(d, rel, ks))
    return out


def minkowski_or_dot(a: np.ndarray, b: np.ndarray, distance: str) -> float:
    """d(a, b) by a loop over the coordinates."""
    if distance == "manhattan":
        return sum(abs(u - v) for u, v in zip(a.tolist(), b.tolist(), strict=True))
    if distance == "chebyshev":
        return max(abs(u - v) for u, v in zip(a.tolist(), b.tolist(), strict=True))
    assert distance == "dot"
    return -sum(u * v for u, v in zip(a.tolist(), b.tolist(), strict=True))


def assert_matches_brute(res, brute: list[dict[str, object]], atol: float = 1e-12) -> None:
    for i, b in enumerate(brute):
        assert res.n_relevant[i] == b["R"], i
        if b["R"] == 0:
            assert np.isnan(res.average_precision[i])
            assert np.isnan(res.map_at_r[i]) and np.isnan(res.reciprocal_rank[i])
            assert np.isnan(res.interpolated_precision[i]).all()
            assert all(np.isnan(v[i]) for v in res.recall_at_k.values())
            continue
        assert res.average_precision[i] == pytest.approx(b["ap"], abs=atol), i
        assert res.map_at_r[i] == pytest.approx(b["map_at_r"], abs=atol), i
        assert res.r_precision[i] == pytest.approx(b["r_precision"], abs=atol), i
        assert res.reciprocal_rank[i] == pytest.approx(b["rr"], abs=atol), i
        for k, v in b["pk"].items():
            assert res.precision_at_k[k][i] == pytest.approx(v, abs=atol), (i, k)
        for k in res.recall_at_k:
            assert res.recall_at_k[k][i] == b["rk"][k], (i, k)
        np.testing.assert_allclose(res.interpolated_precision[i], b["interp"], atol=atol)


def int_data(n: int, dim: int, low: int, high: int, n_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.integers(low, high + 1, size=(n, dim)).astype(np.float32)
    y = rng.integers(0, n_classes, size=n)
    return x, y


# --------------------------------------------------------------------------------------------
# Brute force and scikit-learn
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_metric_matches_brute_force_with_many_ties(backend: str) -> None:
    x, y = int_data(150, 3, -2, 2, 5, seed=0)  # 125 points of the grid: many exact ties
    res = retrieval_metrics(x, y, ks=KS, recall_ks=RKS, backend=backend)
    brute = brute_force(x.astype(np.int64), y, None, None)
    assert_matches_brute(res, brute)
    # the data really has ties between matches and non-matches
    d = ((x[0] - x) ** 2).sum(1)
    assert len(np.unique(d)) < len(d) - 1


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_metric_matches_brute_force_wide_integers(backend: str) -> None:
    x, y = int_data(200, 4, -100, 100, 6, seed=1)  # distances < 2**24: exact in float32
    res = retrieval_metrics(x, y, ks=KS, recall_ks=RKS, backend=backend)
    assert_matches_brute(res, brute_force(x.astype(np.int64), y, None, None))


def test_ap_equals_sklearn_per_query_with_ties() -> None:
    x, y = int_data(120, 2, -3, 3, 4, seed=2)
    res = retrieval_metrics(x, y)
    xi = x.astype(np.int64)
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        d = ((xi[keep] - xi[i]) ** 2).sum(1)
        expected = average_precision_score(y[keep] == y[i], -d)
        assert res.average_precision[i] == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(("distance", "backend"), [("euclidean", "numpy"), ("cosine", "torch")])
def test_ap_equals_sklearn_on_gaussian_data_in_float64(distance: str, backend: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(160, 8))
    y = rng.integers(0, 5, 160)
    res = retrieval_metrics(x, y, distance=distance, precision="float64", ks=KS, backend=backend)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        if distance == "euclidean":
            d = np.linalg.norm(x[keep] - x[i], axis=1)
        else:
            d = 1.0 - xn[keep] @ xn[i]
        expected = average_precision_score(y[keep] == y[i], -d)
        assert res.average_precision[i] == pytest.approx(expected, abs=1e-12)
    assert_matches_brute(res, brute_force(x, y, None, None, distance=distance))


def test_float32_and_float64_agree_on_gaussian_data() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    y = rng.integers(0, 4, 200)
    s32 = retrieval_metrics(x, y).summary()
    s64 = retrieval_metrics(x, y, precision="float64").summary()
    for key in ("map", "map_at_r", "r_precision", "precision_at_1", "mrr"):
        assert s32[key] == pytest.approx(s64[key], abs=1e-6)


# --------------------------------------------------------------------------------------------
# L1, L-infinity and dot product: the same metrics, another ranking
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("distance", ["manhattan", "chebyshev", "dot"])
def test_other_distances_match_brute_force_with_ties(distance: str, backend: str) -> None:
    x, y = int_data(140, 3, -2, 2, 5, seed=20)  # a 5x5x5 grid: many exact ties for every d
    res = retrieval_metrics(x, y, distance=distance, ks=KS, recall_ks=RKS, backend=backend)
    assert res.distance == distance
    assert_matches_brute(res, brute_force(x.astype(np.int64), y, None, None, distance))
    d = np.array([minkowski_or_dot(r, x[0].astype(np.int64), distance) for r in x.astype(int)])
    assert len(np.unique(d)) < len(d) - 1  # ties between matches and non-matches do occur


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("distance", ["manhattan", "chebyshev", "dot"])
def test_other_distances_distinct_gallery_wide_integers(distance: str, backend: str) -> None:
    q, ql = int_data(50, 5, -60, 60, 6, seed=21)  # labels 0..5
    g, gl = int_data(120, 5, -60, 60, 5, seed=22)  # label 5 absent: lone queries
    res = retrieval_metrics(q, ql, g, gl, distance=distance, ks=KS, backend=backend, chunk_size=7)
    brute = brute_force(q.astype(np.int64), ql, g.astype(np.int64), gl, distance)
    assert_matches_brute(res, brute)
    assert res.n_queries_without_relevant == int((ql == 5).sum()) > 0


def test_aliases_name_the_same_distances() -> None:
    x, y = int_data(60, 3, -3, 3, 3, seed=23)
    for alias, name in (("l1", "manhattan"), ("l2", "euclidean"), ("linf", "chebyshev")):
        a, b = retrieval_metrics(x, y, distance=alias), retrieval_metrics(x, y, distance=name)
        assert a.distance == name
        np.testing.assert_array_equal(a.average_precision, b.average_precision)


def test_dot_product_ranks_by_the_largest_inner_product() -> None:
    # worked example: q = (1, 0); q.g = 3, 2, -1 for g = (3, 9), (2, -5), (-1, 0)
    g = np.array([[-1.0, 0.0], [2.0, -5.0], [3.0, 9.0]], dtype=np.float32)
    res = retrieval_metrics([[1.0, 0.0]], [1], g, [0, 0, 1], distance="dot", ks=(1, 2))
    assert res.reciprocal_rank[0] == 1.0 and res.average_precision[0] == 1.0
    idx, dist = nearest_neighbors([[1.0, 0.0]], g, k=3, distance="dot")
    np.testing.assert_array_equal(idx, [[2, 1, 0]])
    np.testing.assert_array_equal(dist, [[-3.0, -2.0, 1.0]])


# --------------------------------------------------------------------------------------------
# Query set distinct from the gallery, queries without relevant items
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_distinct_query_set_and_queries_without_relevant(backend: str) -> None:
    q, ql = int_data(60, 3, -3, 3, 6, seed=5)  # labels 0..5
    g, gl = int_data(90, 3, -3, 3, 4, seed=6)  # labels 0..3: queries of 4 and 5 have none
    res = retrieval_metrics(q, ql, g, gl, ks=KS, recall_ks=RKS, backend=backend)
    brute = brute_force(q.astype(np.int64), ql, g.astype(np.int64), gl)
    assert_matches_brute(res, brute)
    lone = ql >= 4
    assert lone.any() and (~lone).any()
    np.testing.assert_array_equal(res.n_relevant == 0, lone)
    s = res.summary()
    assert s["n_queries"] == 60
    assert s["n_queries_without_relevant"] == int(lone.sum())
    # means leave the lone queries out
    assert s["map"] == pytest.approx(np.mean([b["ap"] for b in brute if b["R"] > 0]), abs=1e-12)
    assert s["aupr"] == s["map"]
    assert s["mrr"] == pytest.approx(np.mean([b["rr"] for b in brute if b["R"] > 0]), abs=1e-12)
    np.testing.assert_allclose(
        res.pr_curve, np.mean([b["interp"] for b in brute if b["R"] > 0], axis=0), atol=1e-12
    )


# --------------------------------------------------------------------------------------------
# Recall@K
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("distance", ["euclidean", "manhattan", "dot"])
def test_recall_at_1_is_precision_at_1_and_recall_grows_with_k(backend: str, distance: str):
    x, y = int_data(160, 2, -2, 2, 4, seed=40)  # a 5x5 grid: ties everywhere
    res = retrieval_metrics(x, y, distance=distance, ks=(1,), recall_ks=RKS, backend=backend)
    np.testing.assert_array_equal(res.recall_at_k[1], res.precision_at_k[1])
    s = res.summary()
    assert s["recall_at_1"] == s["precision_at_1"]
    ks = sorted(res.recall_at_k)
    for a, b in zip(ks[:-1], ks[1:], strict=True):
        assert (res.recall_at_k[a] <= res.recall_at_k[b]).all(), (a, b)
    assert (res.recall_at_k[1000] == 1.0).all()  # every query has a class-mate somewhere
    assert s["recall_at_1"] < s["recall_at_8"]  # not trivially equal on this data


def test_recall_worked_example() -> None:
    # distances 1 (non-match), 2 (non-match), 3 (match): R@1 = R@2 = 0, R@4 = R@8 = 1
    gallery = np.array([[1.0], [2.0], [3.0]])
    res = retrieval_metrics([[0.0]], [5], gallery, [0, 0, 5])
    assert [res.recall_at_k[k][0] for k in RECALL_KS] == [0.0, 0.0, 1.0, 1.0]
    # a match tied with a non-match at the cut: the tie never helps the query (as for P@K)
    res = retrieval_metrics([[0.0]], [5], [[1.0], [-1.0]], [0, 5], recall_ks=(1, 2))
    assert res.recall_at_k[1][0] == 0.0 and res.recall_at_k[2][0] == 1.0


def test_recall_bad_cut_offs_fail_early() -> None:
    with pytest.raises(ValueError, match="recall_ks must hold integers >= 1"):
        retrieval_metrics(np.zeros((4, 2)), [0, 0, 1, 1], recall_ks=(0,))
    s = retrieval_metrics(np.zeros((4, 2)), [0, 0, 1, 1], recall_ks=()).summary()
    assert not any(k.startswith("recall_at_") for k in s)


# --------------------------------------------------------------------------------------------
# Separate query and gallery sets that share rows: a query leaves itself out by index
# --------------------------------------------------------------------------------------------


def _shared_rows(seed: int):
    """Rows 0..119 of integer data; queries: rows 0..79, gallery: rows 40..119 (rows 40..79 are
    in both), so that half of the queries must leave themselves out."""
    x, y = int_data(120, 3, -2, 2, 5, seed=seed)
    q_rows, g_rows = np.arange(0, 80), np.arange(40, 120)
    pos = np.full(120, -1)
    pos[g_rows] = np.arange(len(g_rows))
    return x, y, q_rows, g_rows, pos[q_rows]  # exclude: the query's gallery position or -1


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_exclude_matches_brute_force(backend: str, chunk_size: int | None) -> None:
    x, y, q_rows, g_rows, exclude = _shared_rows(41)
    assert (exclude >= 0).sum() == 40 and (exclude < 0).sum() == 40
    res = retrieval_metrics(
        x[q_rows], y[q_rows], x[g_rows], y[g_rows], exclude=exclude, ks=KS, recall_ks=RKS,
        backend=backend, chunk_size=chunk_size,
    )  # fmt: skip
    xi = x.astype(np.int64)
    brute = brute_force(xi[q_rows], y[q_rows], xi[g_rows], y[g_rows], exclude=exclude)
    assert_matches_brute(res, brute)
    # the queries in the gallery rank one item fewer and never find themselves
    in_g = exclude >= 0
    count = np.array([(y[g_rows] == y[r]).sum() for r in q_rows])
    np.testing.assert_array_equal(res.n_relevant, count - in_g)


def test_exclude_everything_equals_the_query_set_as_gallery() -> None:
    x, y = int_data(90, 3, -3, 3, 4, seed=42)
    a = retrieval_metrics(x, y, chunk_size=16)
    b = retrieval_metrics(x, y, x, y, exclude=np.arange(90), chunk_size=16)
    for name in ("average_precision", "map_at_r", "r_precision", "reciprocal_rank", "n_relevant"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.interpolated_precision, b.interpolated_precision)
    assert a.summary() == b.summary()


def test_exclude_of_another_label_is_no_relevant_item() -> None:
    # query 0 at 0 leaves out gallery item 1 (a non-match at distance 0): its best is item 0
    g = np.array([[1.0], [0.0], [2.0]])
    res = retrieval_metrics([[0.0]], [1], g, [1, 0, 1], exclude=[1], ks=(1,))
    assert res.n_relevant[0] == 2 and res.precision_at_k[1][0] == 1.0
    res = retrieval_metrics([[0.0]], [1], g, [1, 0, 1], exclude=[0], ks=(1,))
    assert res.n_relevant[0] == 1 and res.precision_at_k[1][0] == 0.0


def test_exclude_in_nearest_neighbors_and_query_pr_curve() -> None:
    x, y, q_rows, g_rows, exclude = _shared_rows(43)
    idx, _ = nearest_neighbors(x[q_rows], x[g_rows], k=5, exclude=exclude)
    xi = x.astype(np.int64)
    res = retrieval_metrics(x[q_rows], y[q_rows], x[g_rows], y[g_rows], exclude=exclude)
    for i in range(len(q_rows)):
        d = ((xi[g_rows] - xi[q_rows[i]]) ** 2).sum(1).astype(np.float64)
        if exclude[i] >= 0:
            d[exclude[i]] = np.inf
        np.testing.assert_array_equal(idx[i], np.argsort(d, kind="stable")[:5])
        if exclude[i] >= 0:
            assert exclude[i] not in idx[i]
    for i in (3, 50, 79):  # outside and inside the gallery
        curve = query_pr_curve(
            x[q_rows], y[q_rows], x[g_rows], y[g_rows], index=i, exclude=int(exclude[i])
        )
        keep = np.arange(len(g_rows)) != exclude[i]
        d = ((xi[g_rows][keep] - xi[q_rows[i]]) ** 2).sum(1)
        precision, recall, _ = precision_recall_curve(y[g_rows][keep] == y[q_rows[i]], -d)
        np.testing.assert_allclose(curve.recall, recall[:-1][::-1])
        np.testing.assert_allclose(curve.precision, precision[:-1][::-1])
        assert curve.ap == pytest.approx(res.average_precision[i], abs=1e-12)


def test_bad_exclude_fails_early() -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="exclude must be \\(4,\\) integers"):
        retrieval_metrics(x, [0, 0, 1, 1], x, [0, 0, 1, 1], exclude=[0, 1])
    with pytest.raises(ValueError, match="exclude must hold -1 or gallery positions"):
        retrieval_metrics(x, [0, 0, 1, 1], x, [0, 0, 1, 1], exclude=[0, 1, 2, 4])
    with pytest.raises(ValueError, match="without gallery_emb"):
        retrieval_metrics(x, [0, 0, 1, 1], exclude=[0, 1, 2, 3])
    with pytest.raises(ValueError, match="k must be an integer in \\[1, 3\\]"):
        nearest_neighbors(x, x, k=4, exclude=[0, -1, -1, -1])


def test_string_labels_and_torch_inputs() -> None:
    x, y = int_data(80, 3, -3, 3, 3, seed=7)
    names = np.array(["cat", "dog", "emu"])[y]
    a = retrieval_metrics(torch.from_numpy(x), torch.from_numpy(y)).summary()
    b = retrieval_metrics(x, names).summary()
    assert a == b


def test_no_query_has_a_relevant_item() -> None:
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    res = retrieval_metrics(x, [0, 1, 2, 3])
    s = res.summary()
    assert s["n_queries_without_relevant"] == 4
    assert np.isnan(s["map"]) and np.isnan(res.pr_curve).all()


# --------------------------------------------------------------------------------------------
# Chunking and backends
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_chunked_equals_unchunked(chunk_size: int) -> None:
    x, y = int_data(130, 4, -20, 20, 5, seed=8)
    full = retrieval_metrics(x, y, chunk_size=1000)
    # numpy: bit for bit whatever the chunks and threads; torch sums in another order (1 ulp)
    for backend, threads, atol in (("numpy", 1, 0.0), ("numpy", 3, 0.0), ("torch", 1, 1e-14)):
        part = retrieval_metrics(x, y, chunk_size=chunk_size, backend=backend, num_threads=threads)
        for name in ("average_precision", "map_at_r", "r_precision", "reciprocal_rank"):
            np.testing.assert_allclose(getattr(part, name), getattr(full, name), atol=atol, rtol=0)
        np.testing.assert_allclose(
            part.interpolated_precision, full.interpolated_precision, atol=atol, rtol=0
        )
        for k in full.precision_at_k:
            np.testing.assert_array_equal(part.precision_at_k[k], full.precision_at_k[k])


def test_memory_budget_picks_smaller_chunks_with_same_result() -> None:
    x, y = int_data(120, 3, -5, 5, 4, seed=9)
    a = retrieval_metrics(x, y, memory_budget=1)  # one query per chunk
    b = retrieval_metrics(x, y)
    np.testing.assert_array_equal(a.average_precision, b.average_precision)
    c = retrieval_metrics(x, y, backend="torch", memory_budget=1)
    np.testing.assert_allclose(c.average_precision, b.average_precision, atol=1e-15)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    x, y = int_data(300, 4, -20, 20, 6, seed=10)
    cpu = retrieval_metrics(x, y)
    gpu = retrieval_metrics(x, y, device="cuda")
    for name in ("average_precision", "map_at_r", "r_precision", "reciprocal_rank"):
        np.testing.assert_allclose(getattr(gpu, name), getattr(cpu, name), atol=1e-12)
    np.testing.assert_allclose(gpu.interpolated_precision, cpu.interpolated_precision, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Worked examples
# --------------------------------------------------------------------------------------------


def test_worked_example_ranking_1010() -> None:
    # query at 0; gallery at 1, 2, 3, 4 with relevance 1, 0, 1, 0
    gallery = np.array([[1.0], [2.0], [3.0], [4.0]])
    res = retrieval_metrics([[0.0]], [7], gallery, [7, 1, 7, 1], ks=(1, 2, 4))
    assert res.average_precision[0] == pytest.approx((1 + 2 / 3) / 2)
    assert res.precision_at_k[1][0] == 1.0
    assert res.precision_at_k[2][0] == 0.5
    assert res.precision_at_k[4][0] == 0.5
    assert res.r_precision[0] == 0.5  # R = 2: one hit in the first 2
    assert res.map_at_r[0] == 0.5  # (1/2) * (P@1 * 1 + P@2 * 0)
    assert res.reciprocal_rank[0] == 1.0
    assert res.n_relevant[0] == 2
    # precision 1 up to recall 0.5, then 2/3
    np.testing.assert_allclose(res.interpolated_precision[0], [1.0] * 6 + [2 / 3] * 5)
    np.testing.assert_allclose(res.pr_curve, [1.0] * 6 + [2 / 3] * 5)
    np.testing.assert_allclose(res.recall_levels, RECALL_LEVELS)


def test_worked_example_tie_is_never_in_the_query_favour() -> None:
    # distances 1 (match), 1 (non-match), 2 (match): the tie ranks the non-match first
    gallery = np.array([[1.0], [-1.0], [2.0]])
    res = retrieval_metrics([[0.0]], [1], gallery, [1, 0, 1], ks=(1, 2))
    assert res.precision_at_k[1][0] == 0.0
    assert res.reciprocal_rank[0] == 0.5
    assert res.r_precision[0] == 0.5
    assert res.map_at_r[0] == 0.25  # (1/2) * (P@2 = 1/2)
    # AP: threshold 1 -> (recall 1/2, precision 1/2); threshold 2 -> (1, 2/3)
    assert res.average_precision[0] == pytest.approx(7 / 12)
    assert average_precision_score([1, 0, 1], [-1, -1, -2]) == pytest.approx(7 / 12)
    # the gallery order does not matter
    res2 = retrieval_metrics([[0.0]], [1], gallery[[1, 0, 2]], [0, 1, 1], ks=(1, 2))
    assert res2.summary() == res.summary()


def test_self_is_excluded_by_index_not_by_distance() -> None:
    x = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 0.0]])
    # a duplicate of query 0 with the same label is a true match at distance 0
    res = retrieval_metrics(x, [3, 3, 4])
    assert res.average_precision[0] == 1.0 and res.n_relevant[0] == 1
    assert np.isnan(res.average_precision[2])  # its only class-mate is itself
    # a duplicate with another label is a non-match that ties with nothing relevant
    res = retrieval_metrics(x, [3, 4, 3])
    assert res.precision_at_k[1][0] == 0.0
    assert res.average_precision[0] == 0.5
    assert res.reciprocal_rank[0] == 0.5


def test_gallery_shorter_than_k_counts_missing_places_as_misses() -> None:
    res = retrieval_metrics([[0.0]], [1], [[1.0], [2.0]], [1, 1], ks=(1, 5))
    assert res.precision_at_k[1][0] == 1.0
    assert res.precision_at_k[5][0] == pytest.approx(2 / 5)
    assert res.average_precision[0] == 1.0


def test_summary_keys() -> None:
    x, y = int_data(40, 2, -3, 3, 3, seed=11)
    s = retrieval_metrics(x, y, ks=(1, 5)).summary()
    assert list(s) == [
        "map", "aupr", "map_at_r", "r_precision", "precision_at_1", "precision_at_5",
        "recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "mrr",
        "n_queries", "n_queries_without_relevant",
    ]  # fmt: skip
    assert all(isinstance(v, float) for v in s.values())


# --------------------------------------------------------------------------------------------
# pytorch-metric-learning
# --------------------------------------------------------------------------------------------

PML_KEYS = {
    "mean_average_precision": "map",
    "mean_average_precision_at_r": "map_at_r",
    "r_precision": "r_precision",
    "precision_at_1": "precision_at_1",
    "mean_reciprocal_rank": "mrr",
}


def pml_accuracy(query, query_labels, gallery=None, gallery_labels=None) -> dict[str, float]:
    pml = pytest.importorskip("pytorch_metric_learning")
    del pml
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    # k=None: the full ranking; CustomKNN instead of faiss; raw (not normalised) Euclidean
    calc = AccuracyCalculator(
        include=tuple(PML_KEYS),
        k=None,
        device=torch.device("cpu"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    t = torch.from_numpy
    if gallery is None:  # PML then sets ref_includes_query and drops each query by index
        return calc.get_accuracy(t(query), t(query_labels))
    return calc.get_accuracy(t(query), t(query_labels), t(gallery), t(gallery_labels))


def has_tie_with_a_match(query, query_labels, gallery, gallery_labels, self_source: bool) -> bool:
    """True if some query has a match at the same distance as another item. PML breaks such
    ties arbitrarily (match/non-match) or scores them one rank at a time (match/match), where
    scikit-learn's AP takes a tie group as one threshold: without them the two agree."""
    q, g = query.astype(np.int64), gallery.astype(np.int64)
    for i in range(len(q)):
        d = ((g - q[i]) ** 2).sum(1)
        rel = gallery_labels == query_labels[i]
        if self_source:
            keep = np.arange(len(g)) != i
            d, rel = d[keep], rel[keep]
        values, counts = np.unique(d, return_counts=True)
        if np.isin(d[rel], values[counts > 1]).any():
            return True
    return False


def tie_free_data(n: int, n_classes: int, first_seed: int, self_source: bool, gallery=None):
    """Integers in [-150, 150], D = 8: squared distances < 1e6 are exact in float32 and so is
    the order of their float32 square roots (PML ranks torch.cdist's). The first seed from
    ``first_seed`` on whose data no match ties with another item."""
    for seed in range(first_seed, first_seed + 200):
        x, y = int_data(n, 8, -150, 150, n_classes, seed=seed)
        g, gl = (x, y) if gallery is None else gallery
        if not has_tie_with_a_match(x, y, g, gl, self_source):
            return x, y
    raise AssertionError("no tie-free data found")


def test_equals_pytorch_metric_learning_same_source() -> None:
    x, y = tie_free_data(150, 5, first_seed=12, self_source=True)
    ours = retrieval_metrics(x, y).summary()
    theirs = pml_accuracy(x, y)
    for pml_key, key in PML_KEYS.items():
        assert ours[key] == pytest.approx(theirs[pml_key], abs=1e-6), key


def test_equals_pytorch_metric_learning_distinct_sets_with_lone_queries() -> None:
    g, gl = int_data(110, 8, -150, 150, 5, seed=14)  # label 5 is absent from the gallery
    q, ql = tie_free_data(70, 6, first_seed=13, self_source=False, gallery=(g, gl))
    assert (ql == 5).any()
    ours = retrieval_metrics(q, ql, g, gl).summary()
    theirs = pml_accuracy(q, ql, g, gl)
    for pml_key, key in PML_KEYS.items():
        assert ours[key] == pytest.approx(theirs[pml_key], abs=1e-6), key


# --------------------------------------------------------------------------------------------
# nearest_neighbors and query_pr_curve
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_nearest_neighbors_matches_stable_sort(distance: str) -> None:
    x, _ = int_data(90, 3, -2, 2, 2, seed=15)
    x[x.sum(1) == 0, 0] = 1.0  # no zero vector (cosine)
    idx, dist = nearest_neighbors(x, k=6, distance=distance)
    xi = x.astype(np.float64)
    for i in range(len(x)):
        if distance == "euclidean":
            d = ((xi - xi[i]) ** 2).sum(1)
        else:
            xn = xi / np.linalg.norm(xi, axis=1, keepdims=True)
            d = np.round(1.0 - xn @ xn[i], 6)  # the float32 ties of the library, made exact
        d[i] = np.inf  # self excluded
        expected = np.argsort(d, kind="stable")[:6]  # ties by gallery index
        if distance == "euclidean":
            np.testing.assert_array_equal(idx[i], expected)
            np.testing.assert_allclose(dist[i], np.sqrt(d[expected]), rtol=1e-6)
        else:
            np.testing.assert_allclose(np.sort(d[idx[i]]), d[expected], atol=1e-5)
        assert i not in idx[i]


@pytest.mark.parametrize("distance", ["manhattan", "chebyshev", "dot"])
def test_nearest_neighbors_other_distances_match_stable_sort(distance: str) -> None:
    x, _ = int_data(80, 4, -3, 3, 2, seed=24)
    idx, dist = nearest_neighbors(x, k=7, distance=distance)
    xi = x.astype(np.int64)
    for i in range(len(x)):
        d = np.array([minkowski_or_dot(r, xi[i], distance) for r in xi], dtype=np.float64)
        d[i] = np.inf  # self excluded
        expected = np.argsort(d, kind="stable")[:7]  # ties by gallery index
        np.testing.assert_array_equal(idx[i], expected)
        np.testing.assert_array_equal(dist[i], d[expected])


@pytest.mark.parametrize("distance", ["manhattan", "chebyshev", "dot"])
def test_query_pr_curve_other_distances_match_sklearn(distance: str) -> None:
    x, y = int_data(90, 3, -3, 3, 3, seed=25)
    res = retrieval_metrics(x, y, distance=distance)
    xi = x.astype(np.int64)
    for i in (0, 44):
        curve = query_pr_curve(x, y, index=i, distance=distance)
        keep = np.arange(len(x)) != i
        d = np.array([minkowski_or_dot(r, xi[i], distance) for r in xi[keep]])
        precision, recall, _ = precision_recall_curve(y[keep] == y[i], -d)
        np.testing.assert_allclose(curve.recall, recall[:-1][::-1])
        np.testing.assert_allclose(curve.precision, precision[:-1][::-1])
        assert curve.ap == pytest.approx(res.average_precision[i], abs=1e-12)


@pytest.mark.parametrize("distance", ["manhattan", "euclidean", "chebyshev", "dot"])
@pytest.mark.parametrize("block_rows", [None, 1, 7, 64])
def test_flat_index_blocks_give_the_k_smallest_keys(distance: str, block_rows: int | None) -> None:
    """The block-by-block selection of FlatIndex keeps exactly the k smallest (distance,
    position) pairs, the excluded item left out, on integer data full of exact ties."""
    x, _ = int_data(120, 3, -2, 2, 2, seed=31)
    xi = x.astype(np.int64)
    q = torch.from_numpy(x[:40]).float()
    exclude = torch.tensor([i if i % 3 else -1 for i in range(40)])  # every third keeps itself
    index = FlatIndex(torch.from_numpy(x).float(), distance)
    idx, dist = index.search(q, 7, exclude=exclude, query_chunk=9, block_rows=block_rows)
    for i in range(40):
        if distance == "euclidean":  # squared: exact integers, the same order
            d = np.array([((r - xi[i]) ** 2).sum() for r in xi], dtype=np.float64)
        else:
            d = np.array([minkowski_or_dot(r, xi[i], distance) for r in xi], dtype=np.float64)
        if i % 3:
            d[i] = np.inf
        expected = np.argsort(d, kind="stable")[:7]  # ties by gallery index
        np.testing.assert_array_equal(idx[i].numpy(), expected)
        want = np.sqrt(d[expected]) if distance == "euclidean" else d[expected]
        np.testing.assert_allclose(dist[i].numpy(), want, rtol=1e-6)


def test_nearest_neighbors_distinct_gallery() -> None:
    g = np.array([[3.0], [1.0], [1.0], [0.0]])
    idx, dist = nearest_neighbors([[1.0], [2.9]], g, k=3)
    np.testing.assert_array_equal(idx, [[1, 2, 3], [0, 1, 2]])
    np.testing.assert_allclose(dist, [[0, 0, 1], [0.1, 1.9, 1.9]], rtol=1e-5)


def test_query_pr_curve_matches_sklearn_and_ap() -> None:
    x, y = int_data(100, 2, -3, 3, 3, seed=16)
    res = retrieval_metrics(x, y)
    xi = x.astype(np.int64)
    for i in (0, 17, 55):
        curve = query_pr_curve(x, y, index=i)
        keep = np.arange(len(x)) != i
        d = ((xi[keep] - xi[i]) ** 2).sum(1)
        precision, recall, _ = precision_recall_curve(y[keep] == y[i], -d)
        # sklearn: by decreasing distance threshold... reversed, without its (recall 0, 1) point
        np.testing.assert_allclose(curve.recall, recall[:-1][::-1])
        np.testing.assert_allclose(curve.precision, precision[:-1][::-1])
        assert curve.ap == pytest.approx(res.average_precision[i], abs=1e-12)
        assert np.all(np.diff(curve.recall) >= 0) and curve.recall[-1] == 1.0


def test_query_pr_curve_without_relevant_item_fails() -> None:
    with pytest.raises(ValueError, match="no relevant item"):
        query_pr_curve([[0.0], [1.0]], [0, 1], index=0)


# --------------------------------------------------------------------------------------------
# Bad arguments
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"distance": "hamming"}, "distance='hamming'"),
        ({"distance": "dot", "precision": "float64"}, "float32 only"),
        ({"ks": (0, 5)}, "ks must hold integers >= 1"),
        ({"ks": ()}, "ks must hold at least one"),
        ({"chunk_size": 0}, "chunk_size must be a positive"),
        ({"precision": "float16"}, "precision='float16'"),
        ({"backend": "jax"}, "backend='jax'"),
        ({"memory_budget": 0}, "memory_budget must be"),
        ({"num_threads": 0}, "num_threads must be"),
    ],
)
def test_bad_arguments_fail_early(kwargs: dict, match: str) -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=match):
        retrieval_metrics(x, [0, 0, 1, 1], **kwargs)


def test_bad_inputs_fail_early() -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="query_labels has 3 labels for 4 embeddings"):
        retrieval_metrics(x, [0, 0, 1])
    with pytest.raises(ValueError, match="2-D"):
        retrieval_metrics(np.zeros(4), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        retrieval_metrics(np.full((4, 2), np.nan), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="go together"):
        retrieval_metrics(x, [0, 0, 1, 1], x)
    with pytest.raises(ValueError, match="dimension 2 but gallery_emb has 3"):
        retrieval_metrics(x, [0, 0, 1, 1], np.zeros((3, 3)), [0, 1, 1])
    with pytest.raises(ValueError, match="zero vector"):
        retrieval_metrics(x, [0, 0, 1, 1], distance="cosine")
    with pytest.raises(ValueError, match="at least 2 rows"):
        retrieval_metrics(x[:1], [0])
    with pytest.raises(ValueError, match="too large"):
        retrieval_metrics(np.full((4, 2), 1e20, dtype=np.float32), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="k must be an integer in"):
        nearest_neighbors(x, k=4)


def test_auto_chunk_keeps_the_chunks_in_flight_within_the_budget() -> None:
    from simlearn.evaluation.retrieval import _BYTES_PER_RELEVANT, _auto_chunk

    budget = 512 * 2**20
    for n, r in ((100_000, 10_000), (10_000, 1_000), (1_000_000, 100)):
        per_row = n * 5 + _BYTES_PER_RELEVANT * r  # float32 keys + mask + per-item arrays
        cpu = _auto_chunk(n, r, 4, budget, use_torch=False, threads=2)
        assert cpu >= 1 and (cpu == 1 or 2 * cpu * per_row <= budget)
        gpu = _auto_chunk(n, r, 4, budget, use_torch=True, threads=2)
        assert gpu >= 1 and (gpu == 1 or gpu * (per_row + n * 16) <= budget)
    # N = 100,000: 32 queries per task (cache-sized keys, fast matrix product)
    assert _auto_chunk(100_000, 10_000, 4, budget, use_torch=False, threads=2) == 32
