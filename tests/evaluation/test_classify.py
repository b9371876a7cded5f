"""Classification probes against brute-force loops and known answers."""

from __future__ import annotations

import numpy as np
import pytest

from simlearn.evaluation import (
    knn_accuracy,
    linear_probe_accuracy,
    nearest_class_mean_accuracy,
)
from simlearn.evaluation.classify import weighted_knn_accuracy


def blobs(n: int, dim: int, n_classes: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(n_classes, dim))
    y = rng.integers(0, n_classes, n)
    return centres[y] + spread * rng.normal(size=(n, dim)), y


def brute_knn(xtr, ytr, xte, k: int, distance: str) -> np.ndarray:
    pred = []
    for x in xte:
        if distance == "euclidean":
            d = np.sqrt(((xtr - x) ** 2).sum(1))
        else:
            d = 1 - xtr @ x / (np.linalg.norm(xtr, axis=1) * np.linalg.norm(x))
        nearest = np.argsort(d, kind="stable")[:k]
        labels, votes = np.unique(ytr[nearest], return_counts=True)
        pred.append(labels[np.argmax(votes)])  # a tied vote goes to the smallest label
    return np.array(pred)


def brute_ncm(xtr, ytr, xte, distance: str) -> np.ndarray:
    classes = np.unique(ytr)
    if distance == "cosine":
        xtr = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    means = np.array([xtr[ytr == c].mean(0) for c in classes])
    pred = []
    for x in xte:
        if distance == "euclidean":
            d = [np.linalg.norm(x - m) for m in means]
        else:
            d = [1 - x @ m / (np.linalg.norm(x) * np.linalg.norm(m)) for m in means]
        pred.append(classes[int(np.argmin(d))])
    return np.array(pred)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_knn_matches_brute_force(distance: str, k: int) -> None:
    xtr, ytr = blobs(150, 4, 5, spread=3.0, seed=0)  # overlapping classes: accuracy < 1
    xte, yte = blobs(80, 4, 5, spread=3.0, seed=1)
    acc = knn_accuracy(xtr, ytr, xte, yte, k=k, distance=distance)
    expected = np.mean(brute_knn(xtr, ytr, xte, k, distance) == yte)
    assert acc == pytest.approx(expected)
    assert 0.0 < acc < 1.0


def test_knn_worked_example() -> None:
    xtr = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]])
    ytr = np.array([0, 0, 1, 1, 1])
    xte = np.array([[0.5], [9.0], [5.0]])
    # k = 3: 0.5 -> {0, 0, 1} -> 0; 9 -> {1, 1, 1} -> 1; 5 -> {1 (d 5), 0 (d 4), 0 (d 5)} -> 0
    assert knn_accuracy(xtr, ytr, xte, [0, 1, 0], k=3) == 1.0
    assert knn_accuracy(xtr, ytr, xte, [0, 1, 1], k=3) == pytest.approx(2 / 3)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_ncm_matches_brute_force(distance: str) -> None:
    xtr, ytr = blobs(200, 5, 6, spread=3.0, seed=2)
    xte, yte = blobs(100, 5, 6, spread=3.0, seed=3)
    acc = nearest_class_mean_accuracy(xtr, ytr, xte, yte, distance=distance)
    assert acc == pytest.approx(np.mean(brute_ncm(xtr, ytr, xte, distance) == yte))
    assert 0.0 < acc < 1.0


def test_ncm_cosine_differs_from_euclidean_on_a_worked_example() -> None:
    # class 0 along +x far away, class 1 near the origin along +y
    xtr = np.array([[10.0, 0.0], [12.0, 0.0], [0.0, 1.0], [0.0, 1.2]])
    ytr = np.array([0, 0, 1, 1])
    xte = np.array([[1.0, 0.2]])  # closer to class 1's mean, but points along class 0
    assert nearest_class_mean_accuracy(xtr, ytr, xte, [1]) == 1.0
    assert nearest_class_mean_accuracy(xtr, ytr, xte, [0], distance="cosine") == 1.0


def test_linear_probe_separable_and_scale_invariant() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)  # linearly separable
    train, test = slice(0, 200), slice(200, 300)
    acc = linear_probe_accuracy(x[train], y[train], x[test], y[test], c=100.0)
    assert acc >= 0.97
    # standardisation: rescaling a feature by 1e4 changes nothing
    xs = x * np.array([1e4, 1.0, 1e-3])
    acc_s = linear_probe_accuracy(xs[train], y[train], xs[test], y[test], c=100.0)
    assert acc_s == pytest.approx(acc)
    # labels unrelated to the embedding: near chance
    y_rand = rng.integers(0, 2, 300)
    chance = linear_probe_accuracy(x[train], y_rand[train], x[test], y_rand[test])
    assert chance < 0.7


def test_bad_arguments_fail_early() -> None:
    x = np.zeros((4, 2))
    y = np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match="k must be an integer in"):
        knn_accuracy(x, y, x, y, k=5)
    with pytest.raises(ValueError, match="distance='hamming'"):
        knn_accuracy(x, y, x, y, distance="hamming")
    with pytest.raises(ValueError, match="test_labels must have shape"):
        knn_accuracy(x, y, x, y[:3])
    with pytest.raises(ValueError, match="dimension 2 but test_emb has 3"):
        nearest_class_mean_accuracy(x, y, np.zeros((2, 3)), [0, 1])
    with pytest.raises(ValueError, match="zero vector"):
        nearest_class_mean_accuracy(x, y, x, y, distance="cosine")
    with pytest.raises(ValueError, match="at least two classes"):
        linear_probe_accuracy(x, [0, 0, 0, 0], x, y)
    with pytest.raises(ValueError, match="c \\(inverse regularisation strength\\)"):
        linear_probe_accuracy(x, y, x, y, c=0.0)


def brute_weighted_knn(xr, yr, xq, k: int, temperature: float) -> np.ndarray:
    pred = []
    for q in xq:
        sims = [float(r @ q / (np.linalg.norm(r) * np.linalg.norm(q))) for r in xr]
        nearest = sorted(range(len(xr)), key=lambda i: -sims[i])[:k]
        votes: dict[int, float] = {}
        for i in nearest:
            votes[int(yr[i])] = votes.get(int(yr[i]), 0.0) + np.exp(sims[i] / temperature)
        best = max(votes.values())
        pred.append(min(c for c, v in votes.items() if v == best))
    return np.array(pred)


@pytest.mark.parametrize(("k", "temperature"), [(1, 0.1), (7, 0.1), (30, 0.5), (150, 0.05)])
def test_weighted_knn_matches_brute_force(k: int, temperature: float) -> None:
    xr, yr = blobs(150, 4, 5, spread=3.0, seed=5)
    xq, yq = blobs(60, 4, 5, spread=3.0, seed=6)
    acc = weighted_knn_accuracy(xr, yr, xq, yq, k=k, temperature=temperature, chunk=16)
    expected = np.mean(brute_weighted_knn(xr, yr, xq, k, temperature) == yq)
    assert acc == pytest.approx(expected)
    assert 0.0 < acc < 1.0


def test_weighted_knn_worked_example() -> None:
    # query along +x; references at angles 0 (class 1), 60 and 90 degrees (class 0), 180 (class 1)
    xr = np.array([[1.0, 0.0], [0.5, np.sqrt(3) / 2], [0.0, 2.0], [-3.0, 0.0]])
    yr = np.array([1, 0, 0, 1])
    xq = np.array([[2.0, 0.0]])
    # k = 3: class 1 gets exp(1 / T), class 0 gets exp(0.5 / T) + exp(0 / T)
    # T = 1: 2.718 > 1.649 + 1 = 2.649 -> class 1; T = 10: 1.105 < 1.051 + 1 -> class 0
    assert weighted_knn_accuracy(xr, yr, xq, [1], k=3, temperature=1.0) == 1.0
    assert weighted_knn_accuracy(xr, yr, xq, [0], k=3, temperature=10.0) == 1.0
    # a tiny temperature is the 1-NN rule, and does not overflow
    assert weighted_knn_accuracy(xr, yr, xq, [1], k=4, temperature=1e-4) == 1.0


def test_weighted_knn_at_a_high_temperature_is_the_majority_vote() -> None:
    # two classes and an odd k: the majority vote has no tie, and equal weights give it
    xr, yr = blobs(120, 3, 2, spread=3.0, seed=7)
    xq, yq = blobs(50, 3, 2, spread=3.0, seed=8)
    majority = knn_accuracy(xr, yr, xq, yq, k=7, distance="cosine")
    assert weighted_knn_accuracy(xr, yr, xq, yq, k=7, temperature=1e6) == pytest.approx(majority)
    assert 0.0 < majority < 1.0


def test_weighted_knn_keeps_the_label_values_and_rejects_bad_arguments() -> None:
    xr = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert weighted_knn_accuracy(xr, np.array([7, 42]), xr, np.array([7, 42]), k=1) == 1.0
    with pytest.raises(ValueError, match="k must be an integer in"):
        weighted_knn_accuracy(xr, [0, 1], xr, [0, 1], k=3)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        weighted_knn_accuracy(xr, [0, 1], xr, [0, 1], k=1, temperature=0.0)
    with pytest.raises(ValueError, match="zero vector"):
        weighted_knn_accuracy(np.zeros((2, 2)), [0, 1], xr, [0, 1], k=1)
