"""Out-of-distribution detection: does an embedding notice an image of no class it was trained on?

The test images of the classes trained on are in-distribution (ID); the test images of the
held-out classes are out-of-distribution (OOD). Two scores come from the embeddings alone, both
fitted on the training split's seen classes (the reference set), larger meaning "more likely OOD":

- **kNN** (Sun, Ming, Zhu, Li, "Out-of-Distribution Detection with Deep Nearest Neighbors",
  ICML 2022, https://proceedings.mlr.press/v162/sun22d.html): the Euclidean distance from the
  L2-normalised embedding ``z = f(x) / ||f(x)||`` to its k-th nearest L2-normalised reference
  embedding, ``||z - z_(k)||``.
- **Mahalanobis** (Lee, Lee, Lee, Shin, "A Simple Unified Framework for Detecting
  Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018,
  https://arxiv.org/abs/1807.03888): class means ``mu_c`` and one covariance shared by the
  classes, ``Sigma = (1/N) sum_c sum_{y_i = c} (f(x_i) - mu_c)(f(x_i) - mu_c)^T``; the score is
  ``min_c (f(x) - mu_c)^T Sigma^{-1} (f(x) - mu_c)``. ``Sigma`` gets a ridge
  ``shrinkage * trace(Sigma) / d * I`` (``eval.ood.mahalanobis_shrinkage``) so that a singular
  covariance (raw pixels' constant borders) stays invertible. The squared distance is the
  squared Euclidean distance of whitened vectors, ``||L^{-1} (f(x) - mu_c)||^2`` with the
  Cholesky factor ``Sigma = L L^T``, computed by :data:`simlearn.distances.SQUARED_L2`.

With OOD as the positive class (as pytorch-ood counts it):

- ``auroc``: the area under the ROC curve, ``P(score(OOD) > score(ID))`` (+ 1/2 per tie);
- ``aupr``: average precision of the OOD class, scikit-learn's ``sum_t (R_t - R_{t-1}) P_t``
  (no interpolation; pytorch-ood's ``AUPR-OUT`` is the trapezoid of the same points);
- ``fpr95``: the share of ID images flagged at the highest threshold that flags at least 95% of
  the OOD images. Sun et al. and Lee et al. quote FPR95 with ID as the positive class (the share
  of OOD images accepted when 95% of ID images are kept): another figure, not this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from simlearn.distances import EUCLIDEAN, SQUARED_L2, normalize_embeddings

__all__ = [
    "DetectionResult",
    "detection_metrics",
    "knn_scores",
    "mahalanobis_scores",
    "ood_metrics",
]

#: the true positive rate (share of OOD images flagged) of the ``fpr95`` figure
TPR = 0.95


@dataclass(frozen=True)
class DetectionResult:
    """One score's figures and what its figure draws."""

    auroc: float
    aupr: float
    fpr95: float
    threshold: float  # flagged as OOD: score >= threshold (the 95%-TPR point)
    id_scores: np.ndarray  # (N_id,)
    ood_scores: np.ndarray  # (N_ood,)


def knn_scores(reference: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q,) distance of each L2-normalised query to its ``k``-th nearest L2-normalised
    reference embedding (Sun et al. 2022), float64.

    The search is :func:`simlearn.evaluation.retrieval.nearest_neighbors` (exact, float32
    ranking); the distance it returns is recomputed from the differences.
    """
    from simlearn.evaluation.retrieval import nearest_neighbors

    if not 1 <= k <= len(reference):
        raise ValueError(
            f"eval.ood.knn_k={k}: must be between 1 and the {len(reference)} training "
            "embeddings of the seen classes"
        )
    ref = normalize_embeddings(np.asarray(reference, dtype=np.float32), "l2")
    q = normalize_embeddings(np.asarray(queries, dtype=np.float32), "l2")
    _, dist = nearest_neighbors(q, ref, k=int(k), distance=EUCLIDEAN)  # (Q, k), nearest first
    return dist[:, -1].astype(np.float64)


def mahalanobis_scores(
    reference: np.ndarray, labels: np.ndarray, queries: np.ndarray, shrinkage: float = 1e-6
) -> np.ndarray:
    """(Q,) ``min_c`` squared Mahalanobis distance of each query to the class means of the
    reference set under their shared covariance (Lee et al. 2018), float64; see the module
    docstring for the covariance and its ridge."""
    x = np.asarray(reference, dtype=np.float64)  # (N, d)
    y = np.asarray(labels)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"reference must be (N, d) with N >= 2, got shape {x.shape}")
    classes, inverse = np.unique(y, return_inverse=True)
    means = np.zeros((len(classes), x.shape[1]))  # (C, d)
    np.add.at(means, inverse, x)
    means /= np.bincount(inverse)[:, None]
    centred = x - means[inverse]
    cov = centred.T @ centred / len(x)  # (d, d), the maximum-likelihood estimate of the paper
    cov += shrinkage * np.trace(cov) / x.shape[1] * np.eye(x.shape[1])
    try:
        chol = cholesky(cov, lower=True)  # Sigma = L L^T, cheaper than an eigendecomposition
    except LinAlgError:
        raise ValueError(
            "the shared covariance is singular (a direction without variance in the training "
            "embeddings); raise eval.ood.mahalanobis_shrinkage above 0"
        ) from None
    # whitened rows L^{-1} v: ||L^{-1}(x - mu)||^2 = (x - mu)^T Sigma^{-1} (x - mu)
    q = solve_triangular(chol, np.asarray(queries, dtype=np.float64).T, lower=True).T  # (Q, d)
    m = solve_triangular(chol, means.T, lower=True).T  # (C, d)
    d2 = SQUARED_L2.pairwise_numpy(q, m)  # (Q, C)
    return d2.min(axis=1)


def detection_metrics(id_scores: np.ndarray, ood_scores: np.ndarray) -> DetectionResult:
    """AUROC, AUPR and FPR@95%TPR of scores where larger means OOD, OOD positive (module
    docstring), from scikit-learn's curves; ``threshold``: the score of the 95%-TPR point."""
    s_id = np.asarray(id_scores, dtype=np.float64)
    s_ood = np.asarray(ood_scores, dtype=np.float64)
    if len(s_id) == 0 or len(s_ood) == 0:
        raise ValueError(
            f"OOD detection needs ID and OOD scores, got {len(s_id)} ID and {len(s_ood)} OOD"
        )
    if not (np.isfinite(s_id).all() and np.isfinite(s_ood).all()):
        raise ValueError("OOD scores contain NaN or infinite values")
    scores = np.concatenate([s_id, s_ood])
    is_ood = np.concatenate([np.zeros(len(s_id), bool), np.ones(len(s_ood), bool)])
    fpr, tpr, thresholds = roc_curve(is_ood, scores, drop_intermediate=False)
    at = int(np.searchsorted(tpr, TPR, side="left"))  # first threshold with TPR >= 95%
    return DetectionResult(
        auroc=float(roc_auc_score(is_ood, scores)),
        aupr=float(average_precision_score(is_ood, scores)),
        fpr95=float(fpr[at]),
        threshold=float(thresholds[at]),
        id_scores=s_id,
        ood_scores=s_ood,
    )


def ood_metrics(
    emb: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    holdout: np.ndarray,
    cfg: Any,
) -> tuple[dict[str, float], dict[str, DetectionResult]]:
    """OOD figures of one experiment under ``cfg`` (:class:`~simlearn.config.OODConfig`): ID =
    test rows of the seen classes, OOD = test rows of the held-out ones, reference = training
    rows of the seen classes. ``emb`` are the embeddings as evaluated (``eval.normalize``
    applied). Keys ``ood_<score>_<figure>`` for score knn | mahalanobis and figure auroc | aupr |
    fpr95, plus ``ood_n_id`` and ``ood_n_ood``; and each score's :class:`DetectionResult`.
    The kNN score is left out when ``knn_k`` exceeds the reference set (the task's
    ``check_data`` refuses such params before training), Mahalanobis below 2 reference rows."""
    test = split == "test"
    ref = (split == "train") & ~holdout
    id_rows, ood_rows = test & ~holdout, test & holdout
    if not (ref.any() and id_rows.any() and ood_rows.any()):
        raise ValueError(
            "OOD detection needs training and test images of the seen classes and test images "
            f"of the held-out ones; got {int(ref.sum())}, {int(id_rows.sum())} and "
            f"{int(ood_rows.sum())}"
        )
    queries = np.concatenate([emb[id_rows], emb[ood_rows]])
    n_id = int(id_rows.sum())
    scores = {}
    if cfg.knn_k <= ref.sum():  # else left out: the tasks' check_data refuses it before training
        scores["knn"] = knn_scores(emb[ref], queries, cfg.knn_k)
    if ref.sum() >= 2:
        scores["mahalanobis"] = mahalanobis_scores(
            emb[ref], labels[ref], queries, cfg.mahalanobis_shrinkage
        )
    metrics: dict[str, float] = {"ood_n_id": float(n_id), "ood_n_ood": float(ood_rows.sum())}
    results = {}
    for name, s in scores.items():
        r = detection_metrics(s[:n_id], s[n_id:])
        results[name] = r
        metrics.update(
            {f"ood_{name}_auroc": r.auroc, f"ood_{name}_aupr": r.aupr, f"ood_{name}_fpr95": r.fpr95}
        )
    return metrics, results
