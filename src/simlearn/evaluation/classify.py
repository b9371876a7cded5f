"""Classification probes of an embedding: how much label information it keeps, and how simply.

- kNN accuracy: majority vote among the ``k`` nearest training embeddings
  (scikit-learn ``KNeighborsClassifier``, brute force; a tied vote goes to the smallest label).
  Cover & Hart, "Nearest neighbor pattern classification", IEEE Trans. Inf. Theory 1967.
- Nearest-class-mean accuracy: ``argmin_c d(x, mu_c)`` with ``mu_c`` the mean training embedding
  of class ``c`` (scikit-learn ``NearestCentroid``). Mensink et al., "Distance-based image
  classification: generalizing to new classes at near-zero cost", TPAMI 2013. For the cosine
  distance both ``x`` and the embeddings are L2-normalised and the class is
  ``argmax_c cos(x, mu_c)``; for the dot product it is ``argmax_c x.mu_c``; L1 and L-infinity
  compare ``x`` with the same means (scipy ``cdist``).
- Weighted kNN accuracy: the monitor of self-supervised encoders in the common SimCLR benchmarks
  (k = 200, temperature 0.1, cosine): the ``k`` most cosine-similar training embeddings vote for
  their class with weight ``exp(s / T)``. Wu et al., "Unsupervised Feature Learning via
  Non-Parametric Instance Discrimination", CVPR 2018, Sec. 3.4.
- Linear probe accuracy: multinomial logistic regression on standardised embeddings
  (``StandardScaler`` + ``LogisticRegression``), the linear evaluation protocol of SimCLR (Chen et
  al., "A Simple Framework for Contrastive Learning of Visual Representations", ICML 2020).

Every probe is fit on the training split and scored (accuracy = fraction of test embeddings
whose predicted label equals the true one) on the test split.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from simlearn import distances
from simlearn.distances import COSINE, DOT, EUCLIDEAN, Distance

__all__ = [
    "knn_accuracy",
    "linear_probe_accuracy",
    "nearest_class_mean_accuracy",
    "weighted_knn_accuracy",
]


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


def knn_accuracy(
    train_emb: np.ndarray | torch.Tensor,
    train_labels: np.ndarray | torch.Tensor,
    test_emb: np.ndarray | torch.Tensor,
    test_labels: np.ndarray | torch.Tensor,
    *,
    k: int = 5,
    distance: Distance | str = "euclidean",
) -> float:
    """Accuracy of the ``k``-nearest-neighbour majority vote (training split = references).

    ``distance``: a :mod:`simlearn.distances` object or name, by its scikit-learn metric.
    ``dot``: the ``k`` largest ``x.r`` vote (scikit-learn has no such metric), with scikit-learn's
    tie rule (a tied vote goes to the smallest label)."""
    distance = distances.get(distance)
    xtr, ytr, xte, yte = _split(train_emb, train_labels, test_emb, test_labels)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(xtr):
        raise ValueError(f"k must be an integer in [1, {len(xtr)}] (training size), got {k!r}")
    if distance.sklearn_metric is None:  # dot: the largest similarities vote
        classes, ytr_idx = np.unique(ytr, return_inverse=True)
        correct = 0
        for s in range(0, len(xte), 1024):
            sim = torch.from_numpy(distance.pairwise_numpy(xte[s : s + 1024], xtr))  # (M, N)
            idx = sim.topk(int(k), dim=1).indices.numpy()  # (M, k)
            votes = np.zeros((len(idx), len(classes)), dtype=np.int64)  # (M, C)
            np.add.at(votes, (np.arange(len(idx))[:, None], ytr_idx[idx]), 1)
            correct += int(np.sum(classes[votes.argmax(1)] == yte[s : s + 1024]))
        return correct / len(xte)
    clf = KNeighborsClassifier(
        n_neighbors=int(k), metric=distance.sklearn_metric, algorithm="brute"
    )
    return float(clf.fit(xtr, ytr).score(xte, yte))


def weighted_knn_accuracy(
    ref_emb: np.ndarray | torch.Tensor,
    ref_labels: np.ndarray | torch.Tensor,
    q_emb: np.ndarray | torch.Tensor,
    q_labels: np.ndarray | torch.Tensor,
    k: int = 200,
    temperature: float = 0.1,
    *,
    device: str | torch.device = "cpu",
    chunk: int = 1024,
) -> float:
    """Accuracy of the similarity-weighted kNN vote (Wu et al., CVPR 2018, Sec. 3.4; k = 200 and
    T = 0.1 in the SimCLR benchmarks of lightly and solo-learn).

    With ``s_i = cos(q, r_i)`` and ``N_k(q)`` the ``k`` references of largest ``s_i``::

        score_c(q) = sum_{i in N_k(q)} exp(s_i / T) [y_i = c],   pred(q) = argmax_c score_c(q)

    A tied score goes to the smallest label. Weights are computed as ``exp((s_i - s_max) / T)``,
    the same vote scaled by a constant, so a small ``T`` does not overflow. Queries are processed
    ``chunk`` at a time: memory is O(chunk x N_ref). On the CPU in float64; on a GPU
    (``device="cuda"``) in float32.
    """
    xr, yr, xq, yq = _split(ref_emb, ref_labels, q_emb, q_labels)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(xr):
        raise ValueError(f"k must be an integer in [1, {len(xr)}] (reference size), got {k!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    dev = torch.device(device)
    dtype = torch.float64 if dev.type == "cpu" else torch.float32
    classes, yr_idx = np.unique(yr, return_inverse=True)  # votes go to class indices
    # the cosine similarity of unit rows is their dot product
    ref = torch.as_tensor(COSINE.prepare_numpy(xr, "ref_emb"), dtype=dtype, device=dev)  # (N, D)
    ref_cls = torch.as_tensor(yr_idx, device=dev)  # (N,)
    queries = COSINE.prepare_numpy(xq, "q_emb")
    correct = 0
    for start in range(0, len(queries), chunk):
        q = torch.as_tensor(queries[start : start + chunk], dtype=dtype, device=dev)  # (M, D)
        sim, idx = DOT.pairwise(q, ref).topk(int(k), dim=1)  # (M, k), most similar first
        weight = torch.exp((sim - sim[:, :1]) / temperature)  # (M, k)
        score = torch.zeros(len(q), len(classes), dtype=dtype, device=dev)
        score.scatter_add_(1, ref_cls[idx], weight)  # (M, C)
        pred = classes[score.argmax(dim=1).cpu().numpy()]  # argmax: first (smallest) on a tie
        correct += int(np.sum(pred == yq[start : start + chunk]))
    return correct / len(queries)


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
    distance: Distance | str = "euclidean",
) -> float:
    """Accuracy of the nearest class mean (nearest centroid) classifier.

    ``distance``: a :mod:`simlearn.distances` object or name. The class means are those of the
    rows it compares (:meth:`~simlearn.distances.Distance.prepare_numpy`: unit vectors for the
    cosine); a similarity picks the class of largest value, a distance that of smallest."""
    distance = distances.get(distance)
    xtr, ytr, xte, yte = _split(train_emb, train_labels, test_emb, test_labels)
    if len(np.unique(ytr)) < 2:
        raise ValueError("train_labels must hold at least two classes for nearest class mean")
    if distance == EUCLIDEAN:
        return float(_fit_centroids(xtr, ytr).score(xte, yte))
    ncm = _fit_centroids(distance.prepare_numpy(xtr, "train_emb"), ytr)  # (C, D) class means
    values = distance.pairwise_numpy(distance.prepare_numpy(xte, "test_emb"), ncm.centroids_)
    best = np.argmax(values, axis=1) if distance.is_similarity else np.argmin(values, axis=1)
    return float(np.mean(ncm.classes_[best] == yte))


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
