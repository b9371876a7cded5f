"""The gallery index: exact k-NN on both backends against a brute force (scipy's cdist), faiss and
torch agreeing, true L2 distances, exclusion, normalisation, and the saved index."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy.spatial.distance import cdist

import simlearn.search as search
from simlearn.distances import DISTANCES, normalize_embeddings
from simlearn.search import GalleryIndex, build_index, faiss_available, index_path, load_index

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss is not installed")

SCIPY = {
    "euclidean": "euclidean",
    "manhattan": "cityblock",
    "chebyshev": "chebyshev",
    "cosine": "cosine",
    "dot": lambda u, v: -float(np.dot(u, v)),
}


def brute(q: np.ndarray, g: np.ndarray, distance: str) -> np.ndarray:
    """(Q, N) float64 distances from scipy."""
    return cdist(q.astype(np.float64), g.astype(np.float64), SCIPY[distance])


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 37 gallery rows whatever the number of queries: the block-by-block selection
    runs many times even on a small gallery."""
    monkeypatch.setattr(search, "BLOCK_ROWS", 37)
    monkeypatch.setattr(search, "_BIG_BLOCK_ROWS", 37)


@pytest.mark.parametrize("n_queries", [3, 90])  # few queries (big blocks) and many
@pytest.mark.parametrize("distance", DISTANCES)
def test_torch_backend_equals_brute_force(distance: str, n_queries: int, small_blocks) -> None:
    g, q = gaussian(500, 8, 0), gaussian(n_queries, 8, 1)
    res = GalleryIndex(g).search(q, 12, distance=distance, backend="torch")
    full = brute(q, g, distance)
    expected = np.argsort(full, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(res.positions, expected)
    np.testing.assert_allclose(res.distances, np.take_along_axis(full, expected, 1), atol=2e-5)
    assert res.backend == "torch" and res.distance == distance


@pytest.mark.parametrize("distance", DISTANCES)
def test_integer_data_with_ties_gives_the_k_smallest_distances(distance: str, small_blocks) -> None:
    rng = np.random.default_rng(2)
    g = rng.integers(-2, 3, size=(400, 3)).astype(np.float32)  # a 5x5x5 grid: ties everywhere
    g[np.abs(g).sum(1) == 0] = 1.0  # no zero vector (cosine)
    q = rng.integers(-2, 3, size=(70, 3)).astype(np.float32)
    q[np.abs(q).sum(1) == 0] = 1.0
    full = brute(q, g, distance)
    for backend in ["torch"] + (["faiss"] if faiss_available() else []):
        res = GalleryIndex(g).search(q, 9, distance=distance, backend=backend)
        # up to ties: the same k smallest distances, each the true distance of its item
        np.testing.assert_allclose(res.distances, np.sort(full, 1)[:, :9], atol=1e-5)
        np.testing.assert_allclose(
            res.distances, np.take_along_axis(full, res.positions, 1), atol=1e-5
        )
        assert all(len(set(row)) == 9 for row in res.positions.tolist())
        if backend == "torch":  # the flat index breaks every tie by gallery position
            expected = np.argsort(full, axis=1, kind="stable")[:, :9]
            np.testing.assert_array_equal(res.positions, expected)
        # ordered by (distance, position)
        for d, p in zip(res.distances, res.positions, strict=True):
            assert list(zip(d, p, strict=True)) == sorted(zip(d, p, strict=True))


@needs_faiss
@pytest.mark.parametrize("distance", DISTANCES)
def test_faiss_and_torch_return_the_same_neighbours(distance: str) -> None:
    g, q = gaussian(3000, 16, 3), gaussian(120, 16, 4)
    index = GalleryIndex(g)
    a = index.search(q, 10, distance=distance, backend="torch")
    b = index.search(q, 10, distance=distance, backend="faiss")
    assert (a.backend, b.backend) == ("torch", "faiss")
    np.testing.assert_array_equal(a.positions, b.positions)  # continuous data: no ties
    np.testing.assert_array_equal(a.distances, b.distances)  # both recomputed the same way


def test_l2_distances_are_true_distances_not_squared() -> None:
    g = np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]], dtype=np.float32)
    for backend in ["torch"] + (["faiss"] if faiss_available() else []):
        res = GalleryIndex(g).search([[0.0, 0.0]], 3, backend=backend)
        np.testing.assert_array_equal(res.positions, [[0, 1, 2]])
        np.testing.assert_allclose(res.distances, [[0.0, 5.0, 10.0]])
    # close points: recomputed from the differences, no cancellation of ||q||^2 + ||g||^2
    far = np.array([[1000.0, 1000.0], [1000.001, 1000.0]], dtype=np.float32)
    res = GalleryIndex(far).search(far[:1], 2)
    assert res.distances[0, 1] == pytest.approx(float(far[1, 0] - far[0, 0]), rel=1e-6)


def test_auto_backend_choice() -> None:
    index = GalleryIndex(gaussian(50, 4, 5))
    assert index.backend_for("chebyshev") == "torch"  # torch.cdist won the benchmark
    for d in ("euclidean", "cosine", "dot", "manhattan"):
        assert index.backend_for(d) == ("faiss" if faiss_available() else "torch")
    assert index.backend_for("linf", "faiss") == "faiss"  # forced


def test_exclude_rows_leaves_the_query_out() -> None:
    g = gaussian(200, 6, 6)
    index = GalleryIndex(g, rows=np.arange(1000, 1200))  # rows of a bigger embeddings file
    res = index.search(g[:4], 5, exclude_rows=[1000, 1001, 1002, -1])
    full = brute(g[:4], g, "euclidean")
    for i in range(3):
        full[i, i] = np.inf  # excluded by row
    expected = np.argsort(full, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(res.positions, expected)
    np.testing.assert_array_equal(res.rows, expected + 1000)
    assert res.positions[3, 0] == 3  # not excluded: the query finds itself first
    assert index.position_of(1005) == 5 and index.position_of(7) is None


def test_normalisation_applies_to_gallery_and_queries() -> None:
    g, q = gaussian(300, 8, 7), gaussian(20, 8, 8)
    for how in ("l2", "sqrt"):
        index = GalleryIndex(g, normalize=how)
        np.testing.assert_allclose(index.vectors, normalize_embeddings(g, how), rtol=1e-6)
        a = index.search(q, 7, backend="torch")
        b = index.search(10.0 * q, 7, backend="torch")  # a scaled query has the same direction
        np.testing.assert_array_equal(a.positions, b.positions)
        full = brute(normalize_embeddings(q, how), normalize_embeddings(g, how), "euclidean")
        np.testing.assert_array_equal(a.positions, np.argsort(full, 1, kind="stable")[:, :7])


def test_ids_and_labels_follow_the_results() -> None:
    g = np.array([[0.0], [10.0], [1.0], [11.0]], dtype=np.float32)
    index = GalleryIndex(g, ids=["a", "b", "c", "d"], labels=[0, 1, 0, 1])
    res = index.search([[0.4], [10.6]], 2)
    np.testing.assert_array_equal(res.ids, [["a", "c"], ["d", "b"]])
    np.testing.assert_array_equal(res.labels, [[0, 0], [1, 1]])


def write_embeddings(path, n: int = 120, dim: int = 5, domains: bool = False) -> dict:
    rng = np.random.default_rng(9)
    arrays = {
        "embeddings": rng.normal(size=(n, dim)).astype(np.float32),
        "labels": rng.integers(0, 4, n).astype(np.int64),
        "ids": np.array([f"item-{i:03d}" for i in range(n)]),
        "split": rng.choice(["train", "test"], n),
    }
    if domains:
        arrays["domain"] = np.where(np.arange(n) % 3 == 0, "sketch", "photo")
    np.savez_compressed(path, **arrays)
    return arrays


def test_index_is_saved_beside_the_embeddings_and_reloaded(tmp_path, monkeypatch) -> None:
    npz = tmp_path / "embeddings" / "exp.npz"
    npz.parent.mkdir()
    arrays = write_embeddings(npz)
    first = load_index(npz, "l2")
    saved = index_path(npz, "l2")
    assert saved == tmp_path / "embeddings" / "exp.index.l2.npz" and saved.exists()
    np.testing.assert_allclose(first.vectors, normalize_embeddings(arrays["embeddings"], "l2"))
    np.testing.assert_array_equal(first.ids, arrays["ids"])

    calls = []
    monkeypatch.setattr(
        search, "build_index", lambda *a, **k: calls.append(a) or build_index(*a, **k)
    )
    again = load_index(npz, "l2")  # loaded, not rebuilt
    assert calls == []
    np.testing.assert_array_equal(again.vectors, first.vectors)
    np.testing.assert_array_equal(again.labels, first.labels)
    assert again.normalize == "l2" and again.source_sha256 == first.source_sha256
    q = arrays["embeddings"][:3]
    np.testing.assert_array_equal(again.search(q, 4).positions, first.search(q, 4).positions)

    write_embeddings(npz, n=130)  # new embeddings: the saved index is stale and rebuilt
    rebuilt = load_index(npz, "l2")
    assert len(calls) == 1 and len(rebuilt) == 130


def test_two_domain_file_searches_the_photos(tmp_path) -> None:
    npz = tmp_path / "sbir.npz"
    arrays = write_embeddings(npz, domains=True)
    index = build_index(npz)
    photos = np.flatnonzero(arrays["domain"] == "photo")
    assert index.domain == "photo"
    np.testing.assert_array_equal(index.rows, photos)
    sketch = int(np.flatnonzero(arrays["domain"] == "sketch")[0])
    res = index.search(arrays["embeddings"][sketch], 5)
    full = brute(
        arrays["embeddings"][sketch : sketch + 1], arrays["embeddings"][photos], "euclidean"
    )
    np.testing.assert_array_equal(res.rows[0], photos[np.argsort(full[0], kind="stable")[:5]])
    assert len(build_index(npz, domain=None)) == 120
    with pytest.raises(ValueError, match="domain='drawing': no such row"):
        build_index(npz, domain="drawing")


def test_bad_searches_fail_with_what_is_expected(monkeypatch) -> None:
    index = GalleryIndex(gaussian(10, 4, 10))
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 10\]"):
        index.search(gaussian(1, 4, 11), 11)
    with pytest.raises(ValueError, match=r"queries must be \(Q, 4\)"):
        index.search(gaussian(1, 5, 11), 3)
    with pytest.raises(ValueError, match="distance='hamming'"):
        index.search(gaussian(1, 4, 11), 3, distance="hamming")
    with pytest.raises(ValueError, match="backend='gpu'"):
        index.search(gaussian(1, 4, 11), 3, backend="gpu")
    with pytest.raises(ValueError, match="zero vector"):
        index.search(np.zeros((1, 4)), 3, distance="cosine")
    with pytest.raises(ValueError, match="NaN or infinite"):
        GalleryIndex(np.full((3, 2), np.nan))
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if faiss were not installed
    assert not faiss_available()
    assert index.backend_for("euclidean") == "torch"
    with pytest.raises(ImportError, match=r'pip install -e "\.\[faiss\]"'):
        index.search(gaussian(1, 4, 11), 3, backend="faiss")
    with pytest.raises(FileNotFoundError, match="embed@missing"):
        build_index("/nonexistent/missing.npz")
