"""Evaluation of embeddings: exact retrieval metrics, pair verification, classification probes."""

from simlearn.evaluation.classify import (
    knn_accuracy,
    linear_probe_accuracy,
    nearest_class_mean_accuracy,
    weighted_knn_accuracy,
)
from simlearn.evaluation.pairs import pair_distances, pair_verification, sample_pairs
from simlearn.evaluation.retrieval import (
    RECALL_LEVELS,
    QueryPRCurve,
    RetrievalResult,
    nearest_neighbors,
    query_pr_curve,
    retrieval_metrics,
)

__all__ = [
    "RECALL_LEVELS",
    "QueryPRCurve",
    "RetrievalResult",
    "knn_accuracy",
    "linear_probe_accuracy",
    "nearest_class_mean_accuracy",
    "nearest_neighbors",
    "pair_distances",
    "pair_verification",
    "query_pr_curve",
    "retrieval_metrics",
    "sample_pairs",
    "weighted_knn_accuracy",
]
