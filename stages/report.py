"""report: every experiment side by side, and each evaluation added to its MLflow run.

    python stages/report.py <eval_dir> <train_dir> <out_prefix>

Writes <out_prefix>.md, <out_prefix>.csv and <out_prefix>.png (a comparison figure). Only the
experiments currently in params.yaml are listed. Then it adds each experiment's evaluation
(metrics, figures, curves) and its trained model (``torch.export``, registered under the key)
to the MLflow run that trained it (``<models>/<exp>/run.json``), once: what is already there is
not logged again (:func:`simlearn.tracking.publish_evaluation`, :func:`~simlearn.tracking.
publish_model`). One process pays MLflow's start-up (about 2 s) and ``torch.export``'s import
(2.6 s) for every experiment, instead of each ``evaluate`` and ``train``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("eval_dir", type=Path)
    p.add_argument("train_dir", type=Path)
    p.add_argument("out_prefix", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--models", type=Path, default=Path("models"), help="holds <exp>/run.json")
    p.add_argument("--curves", type=Path, default=Path("reports/curves"))
    return p.parse_args(argv)


def publish(
    params: dict[str, Any], experiments: list[str], eval_dir: Path, models: Path, curves: Path
) -> tuple[list[str], list[str]]:
    """Add each experiment's trained model and evaluation to its MLflow run, each once; the
    experiments whose (models, evaluations) were logged now."""
    import numpy as np

    from simlearn import tasks, tracking

    logged_models, logged_evals = [], []
    for name in experiments:
        model_dir = models / name
        run_file = model_dir / "run.json"
        if not run_file.exists():
            raise FileNotFoundError(f"{run_file} is missing: run `dvc repro train@{name}`")
        run_id = tracking.read_run_file(run_file)
        cfg = tasks.experiment_config(params, name)

        def load(cfg=cfg, model_dir=model_dir):
            model, _ = tasks.load_model(cfg, model_dir)
            return model, np.load(model_dir / "example.npy")

        t0 = time.perf_counter()
        if tracking.publish_model(run_id, load):
            logged_models.append(name)
            print(
                f"report: [{len(logged_models)}] {name}: model logged and registered in "
                f"{time.perf_counter() - t0:.1f}s",
                flush=True,
            )
        if tracking.publish_evaluation(run_id, eval_dir / name, curves / name):
            logged_evals.append(name)
    return logged_models, logged_evals


def summarise(
    params: dict[str, Any], eval_dir: Path, train_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(one row per experiment: task, dataset, model, loss, its task's key metrics, train time;
    every experiment's flattened params; markdown sections the tasks add)."""
    from simlearn import tasks
    from simlearn.config import flatten, to_dict

    rows, flat, columns = [], {}, []
    key_metrics: dict[str, tuple[str, ...]] = {}
    by_task: dict[str, dict[str, tuple[Any, dict]]] = {}
    for name in params.get("experiments") or {}:
        cfg = tasks.experiment_config(params, name)
        task = tasks.get(cfg.task)
        metrics_file = eval_dir / name / "metrics.json"
        if not metrics_file.exists():
            raise FileNotFoundError(f"{metrics_file} is missing: run `dvc repro evaluate@{name}`")
        m = json.loads(metrics_file.read_text())
        hist_file = train_dir / name / "history.csv"
        train_s = float(pd.read_csv(hist_file)["seconds"].sum()) if hist_file.exists() else math.nan
        columns += [k for k in task.KEY_METRICS if k not in columns]
        key_metrics[cfg.task] = tuple(task.KEY_METRICS)
        d = task.describe(cfg)
        rows.append(
            {
                "experiment": name,
                "task": cfg.task,
                "dataset": cfg.dataset,
                "model": d.get("model", "-"),
                "loss": d.get("loss", "-"),
                "baseline": bool(d.get("baseline", False)),
                **{k: (math.nan if m.get(k) is None else m[k]) for k in task.KEY_METRICS},
                "train_seconds": train_s,
                "_headline": m.get(task.KEY_METRICS[0]),
            }
        )
        by_task.setdefault(cfg.task, {})[name] = (cfg, m)
        shown = to_dict(cfg)
        for key in d.get("unused", ()):  # e.g. a fitted baseline has no loss, sampler or loop
            shown.pop(key, None)
        flat[name] = flatten(shown)
    head = ["experiment", "task", "dataset", "model", "loss", "baseline"]
    summary = pd.DataFrame(rows, columns=head + columns + ["train_seconds", "_headline"])
    summary["_headline"] = summary["_headline"].astype(float)
    summary = summary.sort_values(
        ["task", "dataset", "_headline"], ascending=[True, True, False]
    ).drop(columns="_headline")
    table = pd.DataFrame(flat).T
    sections = []
    for task_name, experiments in by_task.items():
        extra = getattr(tasks.get(task_name), "report_section", None)
        if extra is not None:
            text = extra(experiments)
            if text:
                sections.append(text)
    summary.attrs["key_metrics"] = key_metrics  # task -> its report columns
    return summary, table.fillna("-"), sections


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else format(v, floatfmt)
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(fmt(v) for v in r.tolist()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    from simlearn.config import load_params
    from simlearn.plots.comparison import plot_experiment_comparison

    params = load_params(args.params)
    summary, differ, sections = summarise(params, args.eval_dir, args.train_dir)
    out = args.out_prefix
    out.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out.with_suffix(".csv"), index=False)
    drawn = [m for m in ("map", "map_at_r", "precision_at_1") if m in summary] or list(
        summary.columns[6:9]
    )  # retrieval where any experiment has it, else the first task's headline metrics
    fig = plot_experiment_comparison(
        summary,
        out.with_suffix(".png"),
        metrics=drawn,
        title="Test split, every retrieval experiment (stereo: its own table)",
    )
    md = [
        "# simlearn: experiment summary",
        "",
        "Test split (held-out pixels for stereo); a query is never its own match. `map` = mean",
        "average precision over the full ranking (= AUPR), `map_at_r`/`r_precision` as in Musgrave",
        "et al. 2020, `recall_at_k`: share of queries with a match among their k nearest (the",
        "field's Recall@K; `recall_at_1` = `precision_at_1`), `nmi`: k-means on the test",
        "embeddings against the labels, `roc_auc` over pairs; `knn_accuracy`, `ncm_accuracy` and",
        "`linear_probe_accuracy` (logistic regression) use the training split as reference (absent",
        "where the test classes were never trained on).",
        "`seen_`/`unseen_` split the test set by whether the class was held out of training.",
        "Baselines are fitted or classical, not trained. One table per task, with its own metrics.",
        "",
        f"![comparison]({fig.name})",
        "",
    ]
    for task_name, metrics in summary.attrs["key_metrics"].items():
        rows = summary[summary["task"] == task_name]
        cols = ["experiment", "dataset", "model", "loss", *metrics, "train_seconds"]
        md += [f"## {task_name}", "", to_markdown(rows[cols].dropna(axis=1, how="all")), ""]
        keys = differ.loc[rows["experiment"]]
        varying = [c for c in keys.columns if keys[c].astype(str).nunique() > 1]
        if varying:
            md += [
                "Params that differ:",
                "",
                to_markdown(keys[varying].reset_index(names="experiment")),
                "",
            ]
    md += [part + "\n" for part in sections]
    out.with_suffix(".md").write_text("\n".join(md))
    print(f"report: {len(summary)} experiments -> {out.with_suffix('.md')}")
    models, evals = publish(
        params, list(summary["experiment"]), args.eval_dir, args.models, args.curves
    )
    print(f"report: model logged and registered for {len(models)} experiments")
    print(f"report: evaluation added to the MLflow runs of {len(evals)} experiments")
    return out.with_suffix(".md")


if __name__ == "__main__":
    main()
