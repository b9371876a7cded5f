"""Evaluation of embeddings: exact retrieval metrics (with Recall@K), clustering (NMI), pair
verification, classification probes, the protocol of labelled embeddings, distances, stereo
metrics.

Names are looked up in their modules on first use (``from simlearn.evaluation import
retrieval_metrics``), so importing this package imports neither torch nor scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "KMEANS_N_INIT": "clustering",
    "KMEANS_PLUSPLUS_MAX_CLUSTERS": "clustering",
    "kmeans_clusters": "clustering",
    "nmi": "clustering",
    "knn_accuracy": "classify",
    "linear_probe_accuracy": "classify",
    "nearest_class_mean_accuracy": "classify",
    "weighted_knn_accuracy": "classify",
    "map_at_k": "map_at_k",
    "pair_distances": "pairs",
    "pair_verification": "pairs",
    "sample_pairs": "pairs",
    "RECALL_KS": "retrieval",
    "RECALL_LEVELS": "retrieval",
    "QueryPRCurve": "retrieval",
    "RetrievalResult": "retrieval",
    "FlatIndex": "retrieval",
    "nearest_neighbors": "retrieval",
    "query_pr_curve": "retrieval",
    "retrieval_metrics": "retrieval",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
