"""evaluate@<exp>: retrieval, pair and classification metrics of an experiment's embeddings,
curves for DVC plots, figures, all logged to the experiment's MLflow run.

    python stages/evaluate.py <exp> <embeddings.npz> <data_dir> <model_dir> <out_dir>

Writes <out_dir>/metrics.json, <out_dir>/figures/*.png and reports/curves/{pr,roc}/<exp>.csv.
Protocol: the test split is both query set and gallery (a query is never its own match). With
``holdout_classes``, ``seen_*`` and ``unseen_*`` metrics repeat the retrieval inside each group.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment")
    p.add_argument("embeddings", type=Path)
    p.add_argument("data_dir", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--curves", type=Path, default=Path("reports/curves"))
    return p.parse_args(argv)


def evaluate(
    emb: np.ndarray, labels: np.ndarray, split: np.ndarray, holdout: np.ndarray, cfg: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """All metrics of one experiment, and the data its curves and figures need."""
    from simlearn.evaluation import (
        knn_accuracy,
        linear_probe_accuracy,
        nearest_class_mean_accuracy,
        pair_distances,
        pair_verification,
        retrieval_metrics,
    )

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
        metrics["knn_accuracy"] = float(
            knn_accuracy(
                emb[ref],
                labels[ref],
                emb[seen_test],
                labels[seen_test],
                k=e.knn_k,
                distance=e.distance,
            )
        )
        metrics["ncm_accuracy"] = float(
            nearest_class_mean_accuracy(
                emb[ref], labels[ref], emb[seen_test], labels[seen_test], distance=e.distance
            )
        )
        if len(np.unique(labels[ref])) >= 2:
            metrics["linear_probe_accuracy"] = float(
                linear_probe_accuracy(
                    emb[ref], labels[ref], emb[seen_test], labels[seen_test], seed=cfg.seed
                )
            )
    if holdout.any():
        for group, mask in (("seen", seen_test), ("unseen", test & holdout)):
            if mask.sum() >= 2:
                s = retrieval_metrics(
                    emb[mask], labels[mask], distance=e.distance, ks=e.ks
                ).summary()
                metrics.update({f"{group}_{k}": v for k, v in s.items()})
    extras = {"result": res, "pairs": pv, "pair_distances": d, "pair_same": same}
    return metrics, extras


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    from simlearn import plots, tracking
    from simlearn.config import experiment_config, load_params
    from simlearn.data.image_dataset import load_image_dataset
    from simlearn.evaluation import nearest_neighbors, query_pr_curve

    cfg = experiment_config(load_params(args.params), args.experiment)
    z = np.load(args.embeddings, allow_pickle=False)
    emb, labels, split, holdout = z["embeddings"], z["labels"], z["split"].astype(str), z["holdout"]
    metrics, x = evaluate(emb, labels, split, holdout, cfg)

    out, figs = args.out_dir, args.out_dir / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(
        json.dumps(
            {
                k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in sorted(metrics.items())
            },
            indent=2,
        )
        + "\n"
    )

    # curves for `dvc plots`: the mean 11-point PR curve and a ROC curve on a fixed fpr grid
    res, pv = x["result"], x["pairs"]
    pr = pd.DataFrame({"recall": res.recall_levels, "precision": res.pr_curve})
    grid = np.linspace(0.0, 1.0, 101)
    roc = pd.DataFrame({"fpr": grid, "tpr": np.interp(grid, pv["fpr"], pv["tpr"])})
    for kind, df in (("pr", pr), ("roc", roc)):
        (args.curves / kind).mkdir(parents=True, exist_ok=True)
        df.to_csv(args.curves / kind / f"{args.experiment}.csv", index=False)

    # figures
    name = args.experiment
    test_idx = np.flatnonzero(split == "test")
    q_emb, q_lab = emb[test_idx], labels[test_idx]
    ds = load_image_dataset(args.data_dir)
    rng = np.random.default_rng(cfg.seed)
    examples = []
    for q in rng.choice(len(test_idx), size=min(3, len(test_idx)), replace=False):
        c = query_pr_curve(q_emb, q_lab, index=int(q), distance=cfg.eval.distance)
        examples.append(
            plots.PRExample(
                c.recall, c.precision, c.ap, f"query {ds.ids[test_idx[q]]}, class {q_lab[q]}"
            )
        )
    plots.plot_precision_recall(
        res.recall_levels,
        res.pr_curve,
        examples,
        figs / "pr.png",
        title=f"{name}: precision-recall (test)",
        map_value=metrics["map"],
    )
    plots.plot_roc(
        pv["fpr"],
        pv["tpr"],
        metrics["roc_auc"],
        figs / "roc.png",
        title=f"{name}: pair verification ROC (test)",
    )
    d, same = x["pair_distances"], x["pair_same"]
    plots.plot_distance_histograms(
        d[same],
        d[~same],
        figs / "distances.png",
        title=f"{name}: distances of positive vs negative pairs",
    )
    plots.plot_embedding_map(
        emb[test_idx],
        q_lab,
        figs / "embedding_map.png",
        class_names=ds.class_names or None,
        heldout_mask=holdout[test_idx],
        method=cfg.eval.embedding_map,
        seed=cfg.seed,
        title=f"{name}: test embeddings ({cfg.eval.embedding_map})",
    )
    k = min(cfg.eval.grid_k, len(test_idx) - 1)
    rows = _grid_queries(q_lab, res.average_precision, cfg.eval.grid_queries, rng)
    nn_idx, _ = nearest_neighbors(q_emb, None, k=k, distance=cfg.eval.distance)
    nn_idx = nn_idx[rows]
    imgs = ds.images[test_idx]
    n_hard = cfg.eval.grid_queries // 2
    plots.plot_retrieval_grid(
        imgs[rows],
        imgs[nn_idx],
        q_lab[nn_idx] == q_lab[rows, None],
        figs / "retrieval_grid.png",
        title=f"{name}: top {k} of test queries (first {n_hard} rows: the "
        "lowest-AP queries; then random ones)",
        query_labels=q_lab[rows],
        neighbor_labels=q_lab[nn_idx],
    )

    run_id = tracking.read_run_file(args.model_dir / "run.json")
    tracking.log_metrics(run_id, metrics)
    tracking.log_artifacts(run_id, figs, "figures")
    tracking.log_artifact(run_id, out / "metrics.json", "eval")
    for kind in ("pr", "roc"):
        tracking.log_artifact(run_id, args.curves / kind / f"{name}.csv", f"eval/{kind}")
    shown = ", ".join(
        f"{k}={metrics[k]:.4f}"
        for k in ("map", "map_at_r", "precision_at_1", "roc_auc")
        if k in metrics
    )
    print(f"[{name}] {shown}")
    return metrics


def _grid_queries(
    labels: np.ndarray, ap: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows for the retrieval grid: the ``n // 2`` queries with the lowest AP (where the model
    fails is worth seeing), then random queries of other classes, one class at a time."""
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


if __name__ == "__main__":
    main()
