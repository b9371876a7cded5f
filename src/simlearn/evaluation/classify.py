"""Classification probes of an embedding: how much label information it keeps, and how simply.

- kNN accuracy: majority vote among the ``k`` nearest training embeddings
  (scikit-learn ``KNeighborsClassifier``, brute force; a tied vote goes to the smallest label).
  Cover & Hart, "Nearest neighbor pattern classification", IEEE Trans. Inf. Theory 1967.
- Nearest-class-mean accuracy: ``argmin_c d(x, mu_c)`` with ``mu_c`` the mean training embedding
  of class ``c`` (scikit-learn ``NearestCentroid``). Mensink et al., "Distance-based image
  classification: generalizing to new classes at near-zero cost", TPAMI 2013. For the cosine
  distance both ``x`` and the embeddings are L2-normalised and the class is
  ``argmax_c cos(x, mu_c)``.
- Linear probe accuracy: multinomial logistic regression on standardised embeddings
  (``StandardScaler`` + ``LogisticRegression``), the linear evaluation protocol of SimCLR (Chen et
  al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020).

Every probe is fit on the training split and scored (accuracy = fraction of test embeddings
whose predicted label equals the true one) on the test split.
"""

from __future__ import annotations

import warnings
from typing import Final, Literal

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["knn_accuracy", "linear_probe_accuracy", "nearest_class_mean_accuracy"]

Distance = Literal["euclidean", "cosine"]
DISTANCES: Final[tuple[str, ...]] = ("euclidean", "cosine")


def _split(
    train_emb: object, train_labels: object, test_emb: object, test_labels: object
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Checked float64 (N, D) embeddings and 1-D labels of both splits."""
    out = []
    for name, x in (("train_emb", train_emb), ("test_emb", test_emb)):
        a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if a.ndim != 2 or a.shape[0] == 0:
            raise ValueError(f"{name} must be 2-D (N, D) with N >= 1, got shape {a.shape}")
        a = a.astype(np.float64)
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
        out.append(a)
    xtr, xte = out
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train_emb has dimension {xtr.shape[1]} but test_emb has {xte.shape[1]}")
    labels = []
    for name, y, n in (
        ("train_labels", train_labels, len(xtr)),
        ("test_labels", test_labels, len(xte)),
    ):
        b = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        if b.shape != (n,):
            raise ValueError(f"{name} must have shape ({n},), got {b.shape}")
        labels.append(b)
    return xtr, labels[0], xte, labels[1]


def _check_distance(distance: str) -> None:
    if distance not in DISTANCES:
        raise ValueError(f"distance={distance!r} is not supported; allowed: 'euclidean', 'cosine'")


def _normalise(name: str, x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
    if (norms == 0).any():
        raise ValueError(f"{name} has a zero vector: its cosine distance is undefined")
    return x / norms


def knn_accuracy(
    train_emb: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_emb: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    *,
    k: int = 5,
    distance: Distance = "euclidean",
) -> float:
    """Accuracy of the ``k``-nearest-neighbour majority vote (training split = references)."""
    _check_distance(distance)
    xtr, ytr, xte, yte = _split(train_emb, train_labels, test_emb, test_labels)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(xtr):
        raise ValueError(f"k must be an integer in [1, {len(xtr)}] (training size), got {k!r}")
    clf = KNeighborsClassifier(n_neighbors=int(k), metric=distance, algorithm="brute")
    return float(clf.fit(xtr, ytr).score(xte, yte))


def _fit_centroids(x: np.ndarray, y: np.ndarray) -> NearestCentroid:
    """``NearestCentroid`` fitted quietly: it also computes within-class deviations (for its
    optional shrinkage, unused here) and warns when one of them is 0."""
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.filterwarnings("ignore", message=".*within_class_std_dev_.*")
        return NearestCentroid().fit(x, y)


def nearest_class_mean_accuracy(
    train_emb: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_emb: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    *,
    distance: Distance = "euclidean",
) -> float:
    """Accuracy of the nearest class mean (nearest centroid) classifier."""
    _check_distance(distance)
    xtr, ytr, xte, yte = _split(train_emb, train_labels, test_emb, test_labels)
    if len(np.unique(ytr)) < 2:
        raise ValueError("train_labels must hold at least two classes for nearest class mean")
    if distance == "euclidean":
        return float(_fit_centroids(xtr, ytr).score(xte, yte))
    ncm = _fit_centroids(_normalise("train_emb", xtr), ytr)  # means of unit vectors
    centroids = ncm.centroids_  # (C, D)
    c_norm = np.linalg.norm(centroids, axis=1)  # (C,) 0 when a class's directions cancel out
    cos = _normalise("test_emb", xte) @ centroids.T / np.where(c_norm > 0, c_norm, 1.0)  # (M, C)
    pred = ncm.classes_[np.argmax(cos, axis=1)]
    return float(np.mean(pred == yte))


def linear_probe_accuracy(
    train_emb: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_emb: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    *,
    c: float = 1.0,
    max_iter: int = 1000,
    seed: int = 0,
) -> float:
    """Accuracy of L2-regularised (inverse strength ``c``) logistic regression fitted on
    standardised training embeddings."""
    xtr, ytr, xte, yte = _split(train_emb, train_labels, test_emb, test_labels)
    if not c > 0:
        raise ValueError(f"c (inverse regularisation strength) must be > 0, got {c!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive integer, got {max_iter!r}")
    if len(np.unique(ytr)) < 2:
        raise ValueError("train_labels must hold at least two classes for a linear probe")
    probe = make_pipeline(
        StandardScaler(), LogisticRegression(C=float(c), max_iter=max_iter, random_state=seed)
    )
    return float(probe.fit(xtr, ytr).score(xte, yte))
