"""mAP@K: the mean average precision of each query's top K list alone, as the zero-shot
sketch-based retrieval literature reports it (mAP@200)."""

from __future__ import annotations

import numpy as np

__all__ = ["map_at_k"]


def map_at_k(ranked_relevant: np.ndarray, ranked_distance: np.ndarray) -> np.ndarray:
    """AP@K of each query from its top-K list: scikit-learn's average precision over the K
    retrieved items only (as SAKE, Liu et al. 2019, "Semantic-Aware Knowledge Preservation for
    Zero-Shot Sketch-Based Image Retrieval", ICCV, computes mAP@200)::

        AP@K = sum_t (recall_t - recall_{t-1}) * precision_t,   recall = TP / R_K

    over the distinct distances t of the list (a tie is one threshold, as in
    ``average_precision_score``), where ``R_K`` is the number of relevant items *in the top K*.
    A query without a relevant item in its top K scores 0 (it counts in the mean).

    Args:
        ranked_relevant: (Q, K) bool, nearest first.
        ranked_distance: (Q, K) float, non-decreasing along each row.

    Returns:
        (Q,) float64.
    """
    rel = np.asarray(ranked_relevant, dtype=bool)
    d = np.asarray(ranked_distance, dtype=np.float64)
    q, k = rel.shape
    if k == 0:
        return np.zeros(q)
    tp = np.cumsum(rel, axis=1)  # (Q, K)
    is_end = np.ones((q, k), dtype=bool)
    is_end[:, :-1] = d[:, 1:] != d[:, :-1]  # last item of each group of equal distances
    pos = np.arange(k)[None, :].repeat(q, axis=0)
    end_at = np.where(is_end, pos, k)
    end = np.minimum.accumulate(end_at[:, ::-1], axis=1)[:, ::-1]  # (Q, K) its group's end
    rows = np.arange(q)[:, None]
    prec_at_end = tp[rows, end] / (end + 1.0)  # (Q, K) precision at the group's end
    r_k = tp[:, -1]
    total = np.where(rel, prec_at_end, 0.0).sum(axis=1)
    return np.where(r_k > 0, total / np.maximum(r_k, 1), 0.0)
