"""Pair verification: can a distance threshold tell "same class" pairs from "different" ones?

Every unordered pair ``{i, j}`` (``i < j``) of an embedded set gets a distance and a label
``same = labels[i] == labels[j]``. With ``-distance`` as the score and "same" as the positive
class:

- ROC AUC ``= P(d(same pair) < d(different pair))`` (+ 1/2 per tie), the area under the curve of
  true positive rate against false positive rate over all thresholds (Hanley & McNeil, "The
  meaning and use of the area under a receiver operating characteristic (ROC) curve",
  Radiology 1982);
- PR AUC, scikit-learn's average precision ``sum_t (R_t - R_{t-1}) P_t`` over the distinct
  distances as thresholds (no interpolation), the same definition as the retrieval AP.

Both come from scikit-learn (``roc_auc_score``, ``average_precision_score``) on the pair list.
When there are more than ``max_pairs`` pairs, an unbiased estimate uses ``max_pairs`` distinct
pairs drawn uniformly without replacement (every pair equally likely, none twice, never
``i == j``).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch
from sklearn.metrics import (
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

from simlearn import distances
from simlearn.distances import Distance

__all__ = ["pair_distances", "pair_verification", "sample_pairs"]

# bytes of float64 differences per block of pairs: (block, D) stays in the CPU's cache. On 1,500
# raw 28x28 digits (D = 784, 1M pairs) a fixed 65,536-pair block (411 MB) took 4.8 s and a 2 MiB
# one 1.0 s, with bit-identical distances (each row's arithmetic does not depend on the block).
_PAIR_BLOCK_BYTES: Final[int] = 2 << 20


def _pair_block(dim: int) -> int:
    """Pairs per block for D-dimensional float64 differences (at least 64)."""
    return max(64, _PAIR_BLOCK_BYTES // (8 * max(dim, 1)))


def _n_pairs(n: int) -> int:
    return n * (n - 1) // 2


def _row_start(i: np.ndarray, n: int) -> np.ndarray:
    """Index of pair (i, i + 1) in the row-major list of pairs i < j: i * (2n - i - 1) / 2."""
    return i * (2 * n - i - 1) // 2


def _unrank_pairs(t: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(i, j), i < j, of the pairs with row-major indices ``t`` (int64, in [0, n(n-1)/2))."""
    b = 2 * n - 1
    i = np.floor((b - np.sqrt(b * b - 8.0 * t.astype(np.float64))) / 2.0).astype(np.int64)
    i = np.clip(i, 0, n - 2)
    # exact integer correction of the float estimate (off by at most one)
    i -= _row_start(i, n) > t
    i += _row_start(i + 1, n) <= t
    j = t - _row_start(i, n) + i + 1
    return i, j


def sample_pairs(n: int, max_pairs: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices (i, j), i < j, of all pairs of ``n`` items, or of ``max_pairs`` of them.

    All pairs (row-major order) when ``n (n - 1) / 2 <= max_pairs``. Otherwise ``max_pairs``
    distinct pairs drawn uniformly without replacement (``numpy.random.Generator.choice`` over
    the pair indices, then unranked exactly), sorted row-major.

    Returns:
        i (P,) int64 and j (P,) int64 with ``i < j``.
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"n must be an integer >= 2 (pairs need two items), got {n!r}")
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, int | np.integer) or max_pairs < 1:
        raise ValueError(f"max_pairs must be a positive integer, got {max_pairs!r}")
    total = _n_pairs(int(n))
    if total <= max_pairs:
        i, j = np.triu_indices(int(n), k=1)
        return i.astype(np.int64), j.astype(np.int64)
    rng = np.random.default_rng(seed)
    t = np.sort(rng.choice(total, size=int(max_pairs), replace=False)).astype(np.int64)
    return _unrank_pairs(t, int(n))


def pair_distances(
    emb: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    max_pairs: int = 1_000_000,
    seed: int = 0,
    distance: Distance | str = "euclidean",
) -> tuple[np.ndarray, np.ndarray]:
    """Distances and same-label flags of all pairs i < j, or of an unbiased sample of them.

    Args:
        emb: (N, D) embeddings.
        labels: (N,) labels.
        max_pairs: at most this many pairs; above it, a uniform sample without replacement
            (see :func:`sample_pairs`).
        seed: seed of that sample.
        distance: a :mod:`simlearn.distances` object or name: ``"euclidean"``
            (``||x_i - x_j||``), ``"cosine"`` (``1 - cos``), ``"manhattan"``, ``"chebyshev"`` or
            ``"dot"`` (``-x_i.x_j``), or an alias; its evaluation dissimilarity, computed in
            float64 (:meth:`~simlearn.distances.Distance.rowwise_numpy`, from the differences
            for the Minkowski distances: no cancellation; scipy's ``pdist`` when every pair is
            wanted).

    Returns:
        distances (P,) float64 and same (P,) bool.
    """
    distance = distances.get(distance)
    x = emb.detach().cpu().numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb)
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"emb must be 2-D (N, D), got shape {x.shape}")
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("emb contains NaN or infinite values")
    x = distance.prepare_numpy(x, "emb")  # cosine: unit rows
    i, j = sample_pairs(x.shape[0], max_pairs, seed)
    every = distance.all_pairs_numpy(x) if i.shape[0] == _n_pairs(x.shape[0]) else None
    dist = every if every is not None else blocked_pair_distances(x, i, j, distance)
    return dist, y[i] == y[j]


def blocked_pair_distances(
    x: np.ndarray, i: np.ndarray, j: np.ndarray, distance: Distance
) -> np.ndarray:
    """``distance`` of the pairs ``(x[i], x[j])``, in blocks of rows that stay in the CPU's cache:
    float64 (P,). For any distance and any subset of pairs; :func:`pair_distances` takes
    one ``pdist`` call instead when every pair of a Minkowski distance is wanted
    (:meth:`~simlearn.distances.Distance.all_pairs_numpy`)."""
    dist = np.empty(i.shape[0], dtype=np.float64)  # (P,)
    block = _pair_block(x.shape[1])
    for s in range(0, i.shape[0], block):
        a, b = x[i[s : s + block]], x[j[s : s + block]]  # (B, D) each
        dist[s : s + block] = distance.to_distance(distance.rowwise_numpy(a, b))
    return dist


def pair_verification(distances: np.ndarray, same: np.ndarray) -> dict[str, float | np.ndarray]:
    """ROC and precision-recall of "same class" pairs, scored by ``-distance``.

    Args:
        distances: (P,) pair distances (smaller = more alike).
        same: (P,) bool, True for same-class pairs (the positive class).

    Returns:
        ``roc_auc`` and ``pr_auc`` (floats, see the module docstring), ``positive_rate`` (the PR
        AUC of a random scorer), ``n_pairs``, ``n_positive``; curve points as float64 arrays:
        ``fpr``, ``tpr``, ``roc_thresholds`` (ROC, by increasing fpr) and ``precision``,
        ``recall``, ``pr_thresholds`` (PR, by decreasing recall, as scikit-learn gives them).
        Thresholds are distances: a pair is called "same" when its distance is <= threshold.
        Collinear points are dropped (``drop_intermediate``); the curves keep their shape.
    """
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same)
    if d.ndim != 1:
        raise ValueError(f"distances must be 1-D (P,), got shape {d.shape}")
    if s.shape != d.shape:
        raise ValueError(f"same must have the shape of distances {d.shape}, got {s.shape}")
    if s.dtype != np.bool_:
        if not np.isin(s, (0, 1)).all():
            raise ValueError("same must be boolean (True for same-class pairs)")
        s = s.astype(bool)
    if not np.isfinite(d).all():
        raise ValueError("distances contains NaN or infinite values")
    n_pos = int(s.sum())
    if n_pos == 0 or n_pos == s.shape[0]:
        raise ValueError(
            f"pair verification needs both same and different pairs, got {n_pos} same of "
            f"{s.shape[0]}"
        )
    score = -d
    fpr, tpr, roc_thr = roc_curve(s, score, drop_intermediate=True)
    precision, recall, pr_thr = precision_recall_curve(s, score, drop_intermediate=True)
    return {
        "roc_auc": float(roc_auc_score(s, score)),
        "pr_auc": float(average_precision_score(s, score)),
        "positive_rate": n_pos / s.shape[0],
        "n_pairs": float(s.shape[0]),
        "n_positive": float(n_pos),
        "fpr": fpr.astype(np.float64),
        "tpr": tpr.astype(np.float64),
        "roc_thresholds": -roc_thr.astype(np.float64),
        "precision": precision.astype(np.float64),
        "recall": recall.astype(np.float64),
        "pr_thresholds": -pr_thr.astype(np.float64),
    }
