"""Clustering quality of an embedding: NMI of k-means against the labels.

With ``C`` the number of classes among the labels, the embeddings are clustered by k-means into
``C`` clusters (scikit-learn ``KMeans``, Lloyd iterations until its tolerance or 300 of them,
``n_init`` seedings of which the lowest inertia wins, ``random_state=seed``), and the clustering
``K`` is compared with the classes ``Y`` by the normalised mutual information::

    NMI(Y, K) = I(Y; K) / ((H(Y) + H(K)) / 2)

with ``I`` the mutual information and ``H`` the entropies of the two partitions (natural
logarithms; scikit-learn ``normalized_mutual_info_score``, arithmetic mean). 1: the clusters are
the classes; about 0: independent of them. The metric learning benchmarks report it beside
Recall@K (Oh Song et al., "Deep Metric Learning via Lifted Structured Feature Embedding",
CVPR 2016, https://arxiv.org/abs/1511.06452; Musgrave, Belongie, Lim, "A Metric Learning
Reality Check", ECCV 2020, https://arxiv.org/abs/2003.08505, whose pytorch-metric-learning
computes it the same way, with faiss's k-means).

k-means clusters in Euclidean geometry. For the cosine distance the rows are taken as unit
vectors first (:meth:`simlearn.distances.Distance.prepare_numpy`), so that the clusters follow
the angles the retrieval ranks by; every other distance clusters the embeddings as given (the
evaluation's normalisation, ``eval.normalize``, is applied by the caller).

Seeding (``init="auto"``): k-means++ (Arthur & Vassilvitskii, "k-means++: The Advantages of
Careful Seeding", SODA 2007; scikit-learn's default) up to :data:`KMEANS_PLUSPLUS_MAX_CLUSTERS`
clusters; above, ``C`` distinct rows drawn at random, the seeding of faiss's k-means that
pytorch-metric-learning (and so Musgrave et al.) cluster with. scikit-learn's k-means++ places
its ``C`` centres one after the other, each against every row: about a minute for 20,000 rows
and 1,000 classes on 2 cores, and most of an hour for Stanford Online Products' test split
(60,502 images, 11,316 classes), where random seeding and the Lloyd passes take about 2 minutes.
``n_init=1`` (scikit-learn's own choice, ``"auto"``, for k-means++): each further seeding would
repeat that cost. scikit-learn computes the assignments in chunks of rows, so memory stays
O(N D + C D), never (N, C).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import normalized_mutual_info_score

from simlearn import distances
from simlearn.distances import Distance

__all__ = ["KMEANS_N_INIT", "KMEANS_PLUSPLUS_MAX_CLUSTERS", "kmeans_clusters", "nmi"]

#: k-means seedings per NMI (see the module docstring for why one)
KMEANS_N_INIT = 1
#: the most clusters seeded by k-means++ under ``init="auto"``; more: random rows (see above)
KMEANS_PLUSPLUS_MAX_CLUSTERS = 1000


def kmeans_clusters(
    emb: np.ndarray | torch.Tensor,
    n_clusters: int,
    *,
    distance: Distance | str = "euclidean",
    seed: int = 0,
    n_init: int = KMEANS_N_INIT,
    max_iter: int = 300,
    init: str = "auto",
) -> np.ndarray:
    """(N,) int cluster of each row of ``emb`` (N, D) under seeded k-means (see module doc).

    ``init``: ``"k-means++"``, ``"random"`` or ``"auto"`` (k-means++ up to
    :data:`KMEANS_PLUSPLUS_MAX_CLUSTERS` clusters, random above)."""
    distance = distances.get(distance)
    x = emb.detach().cpu().numpy() if isinstance(emb, torch.Tensor) else np.asarray(emb)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"emb must be 2-D (N, D) with N >= 1, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("emb contains NaN or infinite values")
    if isinstance(n_clusters, bool) or not 1 <= int(n_clusters) <= x.shape[0]:
        raise ValueError(f"n_clusters must be in [1, {x.shape[0]}] (rows), got {n_clusters!r}")
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
    if init not in ("auto", "k-means++", "random"):
        raise ValueError(f"init={init!r} is not supported; allowed: 'auto', 'k-means++', 'random'")
    if init == "auto":
        init = "k-means++" if n_clusters <= KMEANS_PLUSPLUS_MAX_CLUSTERS else "random"
    x = distance.prepare_numpy(x, "emb")  # unit rows for the cosine, x itself otherwise
    km = KMeans(
        n_clusters=int(n_clusters), init=init, n_init=n_init, max_iter=max_iter, random_state=seed
    )
    with warnings.catch_warnings():
        # fewer distinct points than clusters: k-means leaves clusters empty, and NMI says so
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        return km.fit_predict(x)


def nmi(
    emb: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    distance: Distance | str = "euclidean",
    seed: int = 0,
    n_init: int = KMEANS_N_INIT,
) -> float:
    """NMI between the classes ``labels`` (N,) and k-means with as many clusters as classes on
    ``emb`` (N, D) (see the module docstring for the formula, the seeding and the papers)."""
    y = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = emb.shape[0]
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    n_classes = len(np.unique(y))
    clusters = kmeans_clusters(emb, n_classes, distance=distance, seed=seed, n_init=n_init)
    return float(normalized_mutual_info_score(y, clusters))
