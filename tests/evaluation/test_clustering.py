"""NMI of k-means against the labels: a worked example by hand, scikit-learn, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from simlearn.evaluation import KMEANS_N_INIT, kmeans_clusters, nmi


def nmi_by_hand(y: np.ndarray, k: np.ndarray) -> float:
    """I(Y; K) / ((H(Y) + H(K)) / 2) from the counts, by loops (natural logarithms)."""
    n = len(y)

    def entropy(a: np.ndarray) -> float:
        return -sum((c / n) * math.log(c / n) for c in np.unique(a, return_counts=True)[1])

    mi = 0.0
    for a in np.unique(y):
        for b in np.unique(k):
            n_ab = int(np.sum((y == a) & (k == b)))
            if n_ab:
                p_ab, p_a, p_b = n_ab / n, np.sum(y == a) / n, np.sum(k == b) / n
                mi += p_ab * math.log(p_ab / (p_a * p_b))
    return mi / ((entropy(y) + entropy(k)) / 2)


def blobs() -> tuple[np.ndarray, np.ndarray]:
    """Three tight blobs far apart (k-means can only find them), whose labels do not follow
    them: blob 0 holds class 0, blob 1 holds classes 1 and 2 (6 + 2), blob 2 holds class 2."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    blob = np.repeat([0, 1, 2], 8)  # (24,)
    emb = centres[blob] + rng.normal(scale=0.1, size=(24, 2))
    labels = np.array([0] * 8 + [1] * 6 + [2] * 2 + [2] * 8)
    return emb, labels


def test_worked_example_three_blobs() -> None:
    emb, labels = blobs()
    clusters = kmeans_clusters(emb, 3, seed=0)
    blob = np.repeat([0, 1, 2], 8)
    # the clustering is the blobs (up to the cluster ids)
    assert normalized_mutual_info_score(blob, clusters) == pytest.approx(1.0)
    # by hand from the counts: classes (8, 6, 10) / 24, clusters (8, 8, 8) / 24
    expected = nmi_by_hand(labels, blob)
    assert nmi(emb, labels, seed=0) == pytest.approx(expected, abs=1e-12)
    assert 0.7 < expected < 0.9  # the mixed blob costs something, and not everything


def test_classes_that_are_the_clusters_give_one_whatever_their_names() -> None:
    emb, _ = blobs()
    blob = np.repeat([0, 1, 2], 8)
    assert nmi(emb, blob) == pytest.approx(1.0)
    assert nmi(emb, np.array(["c", "a", "b"])[blob]) == pytest.approx(1.0)


def test_equals_scikit_learn_kmeans_and_nmi_with_the_same_seed() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, 300)
    emb = (rng.normal(size=(300, 8)) + labels[:, None]).astype(np.float32)
    km = KMeans(n_clusters=5, n_init=KMEANS_N_INIT, random_state=7).fit_predict(emb)
    expected = normalized_mutual_info_score(labels, km)
    assert nmi(emb, labels, seed=7) == expected
    assert nmi(emb, labels, seed=7) == nmi(emb, labels, seed=7)  # seeded: the same every time
    assert 0.0 < expected < 1.0


def test_many_classes_are_seeded_with_random_rows() -> None:
    """Above KMEANS_PLUSPLUS_MAX_CLUSTERS classes, k-means++ (sequential, one centre at a time)
    gives way to random rows as seeds, as faiss seeds: scikit-learn's init="random"."""
    from simlearn.evaluation import KMEANS_PLUSPLUS_MAX_CLUSTERS

    c = KMEANS_PLUSPLUS_MAX_CLUSTERS + 1
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(c), 2)
    emb = rng.normal(size=(2 * c, 3)) + 10 * rng.normal(size=(c, 3))[labels]
    expected = KMeans(n_clusters=c, init="random", n_init=1, random_state=5).fit_predict(emb)
    np.testing.assert_array_equal(kmeans_clusters(emb, c, seed=5), expected)
    few = KMeans(n_clusters=7, n_init=1, random_state=5).fit_predict(emb)  # k-means++
    np.testing.assert_array_equal(kmeans_clusters(emb, 7, seed=5), few)


def test_cosine_clusters_the_directions() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 90)
    emb = rng.normal(size=(90, 4)) + 3 * np.eye(4)[labels]
    scaled = emb * rng.uniform(0.1, 10.0, size=(90, 1))  # lengths change, directions do not
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    a = nmi(scaled, labels, distance="cosine", seed=3)
    assert a == nmi(unit, labels, distance="euclidean", seed=3)
    assert a == pytest.approx(nmi(emb, labels, distance="cosine", seed=3))


def test_fewer_distinct_points_than_classes_is_no_error() -> None:
    emb = np.zeros((6, 2))
    emb[3:] = 1.0
    labels = np.array([0, 1, 2, 3, 3, 3])
    value = nmi(emb, labels)  # 4 clusters asked, 2 distinct points: no exception, no warning
    assert 0.0 <= value <= 1.0


def test_bad_inputs_fail_early() -> None:
    with pytest.raises(ValueError, match="labels must have shape"):
        nmi(np.zeros((4, 2)), [0, 1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        nmi(np.full((4, 2), np.nan), [0, 0, 1, 1])
    with pytest.raises(ValueError, match="n_clusters must be in"):
        kmeans_clusters(np.zeros((4, 2)), 5)
    with pytest.raises(ValueError, match="n_init must be"):
        kmeans_clusters(np.zeros((4, 2)), 2, n_init=0)
    with pytest.raises(ValueError, match="init='forgy'"):
        kmeans_clusters(np.zeros((4, 2)), 2, init="forgy")
