"""The evaluation protocol of labelled embeddings (the image tasks: metric and simclr).

- Retrieval: the test split is both query set and gallery; a query is never its own match.
- Pair verification: ROC and PR over (a sample of) the test split's pairs.
- Classification probes: kNN, nearest class mean and a linear probe, with the training split's
  seen classes as the reference set and the test split's seen classes as queries.
- Held-out classes (``holdout_classes``, never trained on): ``seen_*`` and ``unseen_*`` repeat the
  retrieval inside each group of test images, so the unseen figure measures how the embedding
  ranks classes it never saw among themselves.
- Validation during training: retrieval on the validation split, seen classes only, so the
  held-out classes never select or tune a model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# the metric modules (torch, scikit-learn) are imported by the functions that use them, so that
# the task modules can read KEY_METRICS cheaply

#: the figures of the report for embedding tasks, most important first
KEY_METRICS = (
    "map",
    "map_at_r",
    "r_precision",
    "precision_at_1",
    "roc_auc",
    "knn_accuracy",
    "ncm_accuracy",
    "linear_probe_accuracy",
    "seen_map",
    "unseen_map",
)


def labelled_metrics(
    emb: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    holdout: np.ndarray,
    cfg: Any,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every metric of the protocol above, and the data the curves and figures need.

    Args:
        emb: (N, D) embeddings of every sample; labels: (N,); split: (N,) train | val | test;
        holdout: (N,) bool, True for the classes held out of training.
        cfg: the experiment config (``cfg.eval`` and ``cfg.seed`` are read).
    """
    from simlearn.evaluation.classify import (
        knn_accuracy,
        linear_probe_accuracy,
        nearest_class_mean_accuracy,
    )
    from simlearn.evaluation.pairs import pair_distances, pair_verification
    from simlearn.evaluation.retrieval import retrieval_metrics

    e = cfg.eval
    test = split == "test"
    if test.sum() < 2:
        raise ValueError("the test split has fewer than 2 samples; nothing to evaluate")
    res = retrieval_metrics(emb[test], labels[test], distance=e.distance, ks=e.ks)
    metrics: dict[str, float] = dict(res.summary())
    d, same = pair_distances(
        emb[test], labels[test], max_pairs=e.max_pairs, seed=cfg.seed, distance=e.distance
    )
    pv = pair_verification(d, same)
    metrics["roc_auc"] = float(pv["roc_auc"])
    metrics["pair_pr_auc"] = float(pv["pr_auc"])
    ref = (split == "train") & ~holdout
    seen_test = test & ~holdout
    if ref.any() and seen_test.any():
        args = (emb[ref], labels[ref], emb[seen_test], labels[seen_test])
        metrics["knn_accuracy"] = float(knn_accuracy(*args, k=e.knn_k, distance=e.distance))
        metrics["ncm_accuracy"] = float(nearest_class_mean_accuracy(*args, distance=e.distance))
        if len(np.unique(labels[ref])) >= 2:
            metrics["linear_probe_accuracy"] = float(linear_probe_accuracy(*args, seed=cfg.seed))
    metrics.update(seen_unseen_metrics(emb, labels, test, holdout, cfg))
    extras = {"result": res, "pairs": pv, "pair_distances": d, "pair_same": same}
    return metrics, extras


def seen_unseen_metrics(
    emb: np.ndarray, labels: np.ndarray, test: np.ndarray, holdout: np.ndarray, cfg: Any
) -> dict[str, float]:
    """``seen_<metric>`` and ``unseen_<metric>``: retrieval among the test images of the seen
    classes, and among those of the held-out classes, each group its own query set and gallery.
    Empty when no class is held out; a group with fewer than 2 test images is left out."""
    from simlearn.evaluation.retrieval import retrieval_metrics

    out: dict[str, float] = {}
    if not holdout.any():
        return out
    for group, mask in (("seen", test & ~holdout), ("unseen", test & holdout)):
        if mask.sum() >= 2:
            s = retrieval_metrics(
                emb[mask], labels[mask], distance=cfg.eval.distance, ks=cfg.eval.ks
            ).summary()
            out.update({f"{group}_{k}": v for k, v in s.items()})
    return out


def grid_queries(
    labels: np.ndarray, ap: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows for the retrieval grid: the ``n // 2`` queries with the lowest AP (where the model
    fails is worth seeing; a NaN AP, a query with no relevant item, counts as the highest), then
    one random query per class not shown yet, classes in random order, until ``n`` rows."""
    order = np.argsort(np.where(np.isnan(ap), np.inf, ap), kind="stable")
    picks = [int(i) for i in order[: n // 2]]
    classes = rng.permutation(np.unique(labels))
    for c in classes[np.argsort(np.isin(classes, labels[picks]), kind="stable")]:
        if len(picks) >= n:
            break
        free = np.setdiff1d(np.flatnonzero(labels == c), picks)
        if len(free):
            picks.append(int(rng.choice(free)))
    return np.asarray(picks, dtype=np.int64)


def validation_retrieval(cfg: Any, ds: Any, model: Any, device: Any) -> dict[str, float]:
    """Retrieval mAP and P@1 on the validation split, seen classes only (held-out classes are
    kept for the final evaluation, never used to select or tune a model)."""
    import torch

    from simlearn.evaluation.retrieval import retrieval_metrics
    from simlearn.models.embedder import embed_images

    idx = ds.indices("val", exclude=np.asarray(cfg.holdout_classes, dtype=np.int64))
    if len(idx) < 2:
        return {}
    from simlearn.distances import normalize_embeddings

    with torch.no_grad():
        emb = normalize_embeddings(embed_images(model, ds.images[idx], device), cfg.eval.normalize)
    s = retrieval_metrics(emb, ds.labels[idx], distance=cfg.eval.distance).summary()
    return {"val_map": s["map"], "val_precision_at_1": s["precision_at_1"]}


def evaluate_labelled(
    cfg: Any, arrays: dict[str, np.ndarray], ds: Any, figures_dir: Path, name: str
) -> tuple[dict[str, float], dict[str, Any], list[Path]]:
    """Metrics, curves (``pr``: the mean 11-point PR curve, x recall, y precision; ``roc``: pair
    ROC on a fixed fpr grid, x fpr, y tpr) and figures (PR, ROC, distance histograms, embedding
    map, retrieval grid) of one image experiment, from what
    :func:`simlearn.models.embedder.embed_labelled` wrote."""
    import pandas as pd

    from simlearn.distances import normalize_embeddings
    from simlearn.evaluation.retrieval import nearest_neighbors, query_pr_curve
    from simlearn.plots.embedding import plot_embedding_map
    from simlearn.plots.retrieval import (
        PRExample,
        plot_distance_histograms,
        plot_precision_recall,
        plot_retrieval_grid,
        plot_roc,
    )

    emb = normalize_embeddings(np.asarray(arrays["embeddings"]), cfg.eval.normalize)
    labels = arrays["labels"]
    split, holdout = arrays["split"].astype(str), arrays["holdout"]
    metrics, x = labelled_metrics(emb, labels, split, holdout, cfg)
    res, pv = x["result"], x["pairs"]
    grid = np.linspace(0.0, 1.0, 101)
    curves = {
        "pr": pd.DataFrame({"x": res.recall_levels, "y": res.pr_curve}),
        "roc": pd.DataFrame({"x": grid, "y": np.interp(grid, pv["fpr"], pv["tpr"])}),
    }

    figs = Path(figures_dir)
    test_idx = np.flatnonzero(split == "test")
    q_emb, q_lab = emb[test_idx], labels[test_idx]
    rng = np.random.default_rng(cfg.seed)
    examples = []
    for q in rng.choice(len(test_idx), size=min(3, len(test_idx)), replace=False):
        c = query_pr_curve(q_emb, q_lab, index=int(q), distance=cfg.eval.distance)
        label = f"query {ds.ids[test_idx[q]]}, class {q_lab[q]}"
        examples.append(PRExample(c.recall, c.precision, c.ap, label))
    out = [
        plot_precision_recall(
            res.recall_levels,
            res.pr_curve,
            examples,
            figs / "pr.png",
            title=f"{name}: precision-recall (test)",
            map_value=metrics["map"],
        ),
        plot_roc(
            pv["fpr"],
            pv["tpr"],
            metrics["roc_auc"],
            figs / "roc.png",
            title=f"{name}: pair verification ROC (test)",
        ),
    ]
    d, same = x["pair_distances"], x["pair_same"]
    out.append(
        plot_distance_histograms(
            d[same],
            d[~same],
            figs / "distances.png",
            title=f"{name}: distances of positive vs negative pairs",
        )
    )
    out.append(
        plot_embedding_map(
            emb[test_idx],
            q_lab,
            figs / "embedding_map.png",
            class_names=ds.class_names or None,
            heldout_mask=holdout[test_idx],
            method=cfg.eval.embedding_map,
            seed=cfg.seed,
            title=f"{name}: test embeddings ({cfg.eval.embedding_map})",
        )
    )
    k = min(cfg.eval.grid_k, len(test_idx) - 1)
    rows = grid_queries(q_lab, res.average_precision, cfg.eval.grid_queries, rng)
    nn_idx, _ = nearest_neighbors(q_emb, None, k=k, distance=cfg.eval.distance)
    nn_idx = nn_idx[rows]
    imgs = ds.images[test_idx]
    n_hard = cfg.eval.grid_queries // 2
    out.append(
        plot_retrieval_grid(
            imgs[rows],
            imgs[nn_idx],
            q_lab[nn_idx] == q_lab[rows, None],
            figs / "retrieval_grid.png",
            title=f"{name}: top {k} of test queries (first {n_hard} rows: the "
            "lowest-AP queries; then random ones)",
            query_labels=q_lab[rows],
            neighbor_labels=q_lab[nn_idx],
        )
    )
    return metrics, curves, out
