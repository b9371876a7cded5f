"""report: every experiment side by side, and each evaluation added to its MLflow run.

    python stages/report.py <eval_dir> <train_dir> <out_prefix>

Writes <out_prefix>.md, <out_prefix>.csv and <out_prefix>.png (a comparison figure). Only the
experiments currently in params.yaml are listed: ``--experiments`` (default
``reports/experiments.json``, which ``check_params`` writes) names them, in params.yaml's order,
and each one's params are read as trained (``<models>/<exp>/experiment.json``,
:func:`simlearn.tasks.trained_config`), so a row describes the model it scores. The markdown
reads at a glance: per task, its ``KEY_METRICS`` (the rest of each metrics.json goes to the CSV),
then only the params that differ between its experiments as a table, the others listed once
beneath it.

Then it adds each experiment's evaluation (metrics, figures, curves) and its trained model
(``torch.export``, registered under the key) to the MLflow run that trained it
(``<models>/<exp>/run.json``), once: what is already there is not logged again
(:func:`simlearn.tracking.publish_evaluation`, :func:`~simlearn.tracking.publish_model`); a model
whose files were deleted from ``mlartifacts`` is logged and registered again. DVC does not watch
``mlartifacts``: after deleting there, ``dvc repro --force --single-item report``. An
experiment whose run the current store does not hold (outputs from ``dvc pull``, a new store) is
named once and left out of MLflow. One
process pays MLflow's start-up (about 2 s) and ``torch.export``'s import (2.6 s) for every
experiment, instead of each ``evaluate`` and ``train``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd


def trained_configs(experiments_file: Path, models: Path) -> dict[str, Any]:
    """Experiment name -> its ``Config`` as trained, for the names ``experiments_file`` lists
    (``{"experiments": [...]}``, written by ``stages/check_params.py``), in that order."""
    from simlearn import tasks
    from simlearn.config import ConfigError

    if not experiments_file.is_file():
        raise ConfigError(
            f"{experiments_file} is missing: `dvc repro check_params` writes it (the experiments "
            "of params.yaml)"
        )
    names = json.loads(experiments_file.read_text())["experiments"]
    return {n: tasks.trained_config(models / n / tasks.TRAINED_CONFIG, n) for n in names}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("eval_dir", type=Path)
    p.add_argument("train_dir", type=Path)
    p.add_argument("out_prefix", type=Path)
    p.add_argument(
        "--experiments",
        type=Path,
        default=Path("reports/experiments.json"),
        help="the experiment names to list, in order (stages/check_params.py writes it)",
    )
    p.add_argument("--models", type=Path, default=Path("models"), help="holds <exp>/run.json")
    p.add_argument("--curves", type=Path, default=Path("reports/curves"))
    return p.parse_args(argv)


def publish(
    configs: Mapping[str, Any], eval_dir: Path, models: Path, curves: Path
) -> tuple[list[str], list[str]]:
    """Add each experiment's trained model and evaluation to its MLflow run, each once, in the
    order of ``configs`` (experiment name -> its ``Config``); the experiments whose (models,
    evaluations) were logged now."""
    import numpy as np

    from simlearn import tasks, tracking

    logged_models, logged_evals = [], []
    tracking.close_unclosed_runs()  # left RUNNING by a training whose store failed with it
    runs, missing = {}, []
    for name in configs:
        run_file = models / name / "run.json"
        if not run_file.exists():
            raise FileNotFoundError(f"{run_file} is missing: run `dvc repro train@{name}`")
        run_id = tracking.read_run_file(run_file)
        run = tracking.stored_run(run_id)  # one query per run, handed to the calls below
        if run is not None:
            runs[name] = run
        else:  # trained elsewhere (`dvc pull`) or logged to a store since replaced
            missing.append(f"{name} (run {run_id})")
    if missing:
        print(
            f"report: the tracking store {tracking.tracking_uri()} does not hold the MLflow runs "
            f"of {', '.join(missing)}: their outputs come from a DVC remote or an earlier store. "
            "The summary lists them; MLflow leaves them out. To log one here, retrain it: "
            "`dvc repro --force --single-item train@<exp>`, then `dvc repro`.",
            flush=True,
        )
    for name, run in runs.items():
        run_id = run.info.run_id
        model_dir = models / name
        cfg = configs[name]

        def load(cfg=cfg, model_dir=model_dir):
            model, _ = tasks.load_model(cfg, model_dir)
            return model, np.load(model_dir / "example.npy")

        t0 = time.perf_counter()
        if tracking.publish_model(run_id, load, run=run):
            logged_models.append(name)
            print(
                f"report: [{len(logged_models)}] {name}: model logged and registered in "
                f"{time.perf_counter() - t0:.1f}s",
                flush=True,
            )
        if tracking.publish_evaluation(run_id, eval_dir / name, curves / name, run=run):
            logged_evals.append(name)
    return logged_models, logged_evals


def summarise(
    configs: Mapping[str, Any], eval_dir: Path, train_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """For ``configs`` (experiment name -> its task's ``Config``): (one row per experiment:
    task, dataset, model, loss, its task's key metrics, train time, then every other number of
    its metrics.json; every experiment's flattened params, NaN where it has no such key;
    markdown sections the tasks add). ``summary.attrs["key_metrics"]``: task
    -> the columns of its table in the markdown, its ``KEY_METRICS``."""
    from simlearn import tasks
    from simlearn.config import flatten, to_dict

    rows, flat, columns, rest = [], {}, [], set()
    key_metrics: dict[str, tuple[str, ...]] = {}
    by_task: dict[str, dict[str, tuple[Any, dict]]] = {}
    for name, cfg in configs.items():
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
        numbers = {  # the rest of metrics.json goes to the CSV only
            k: v
            for k, v in m.items()
            if k not in task.KEY_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
        }
        rest.update(numbers)
        rows.append(
            {
                "experiment": name,
                "task": cfg.task,
                "dataset": cfg.dataset,
                "model": d.get("model", "-"),
                "loss": d.get("loss", "-"),
                "baseline": bool(d.get("baseline", False)),
                **numbers,
                **{k: (math.nan if m.get(k) is None else m[k]) for k in task.KEY_METRICS},
                "train_seconds": train_s,
                "_headline": m.get(task.KEY_METRICS[0]),
            }
        )
        by_task.setdefault(cfg.task, {})[name] = (cfg, m)
        shown = to_dict(cfg)
        for key in d.get("unused", ()):  # e.g. a fitted baseline has no loss, sampler or loop
            section, _, sub = key.partition(".")  # a section ("loss") or a key ("post.sgm")
            if sub and isinstance(shown.get(section), dict):
                shown[section].pop(sub, None)
            elif not sub:
                shown.pop(key, None)
        flat[name] = flatten(shown)
    head = ["experiment", "task", "dataset", "model", "loss", "baseline"]
    others = sorted(rest - set(columns))
    summary = pd.DataFrame(rows, columns=head + columns + ["train_seconds", *others, "_headline"])
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
    return summary, table, sections


#: how the tables mark an unset param
UNSET = "-"


def is_unset(v: Any) -> bool:
    """No value: a key the experiment does not have (a fitted baseline has no loss, sampler or
    training loop; a section left out has no keys), or one left null."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def param_text(v: Any) -> str:
    """A param as the tables show it: ``-`` when unset, floats short but exact (``0.003``, not
    ``0.0030``; ``1e-05``, not ``0.0000``), the rest as ``str``."""
    if is_unset(v):
        return UNSET
    if isinstance(v, float):
        short = f"{v:g}"
        return short if float(short) == v else repr(v)
    return str(v)


def split_params(
    keys: pd.DataFrame,
) -> tuple[pd.DataFrame, list[tuple[tuple[str, ...], list[tuple[str, str]]]]]:
    """One task's params (rows: experiments, columns: flattened keys) split for reading.

    Returns the table of the keys whose value differs between the experiments that set them,
    as text (``-`` where unset), and the other keys, grouped by the experiments that set them:
    ``[(experiments, [(key, value), ...]), ...]``, the largest group first. A key no experiment
    sets is in neither. Why unset rows do not count as a difference: a fitted baseline has no
    ``train.device``; that every trained network ran on ``auto`` is one line, not a column.
    """
    text = keys.map(param_text)
    varying, constant = [], {}
    for col in keys.columns:
        values = set(text[col]) - {UNSET}
        if len(values) > 1:
            varying.append(col)
        elif values:
            rows = tuple(str(r) for r in text.index[text[col] != UNSET])
            constant.setdefault(rows, []).append((str(col), values.pop()))
    groups = sorted(constant.items(), key=lambda g: -len(g[0]))  # stable: first seen first
    return text[varying], groups


def _rows_phrase(rows: tuple[str, ...], everyone: list[str]) -> str:
    """Which experiments a group covers, in the shorter of the two ways."""
    if len(rows) == len(everyone):
        return "every experiment"
    if len(rows) > len(everyone) / 2:
        return "all but " + ", ".join(e for e in everyone if e not in rows)
    return ", ".join(rows) + " only"


def params_markdown(keys: pd.DataFrame) -> list[str]:
    """Markdown lines for one task's params: the table of those that differ, then the others
    once, by the experiments that set them; nothing for a single experiment."""
    if len(keys) < 2:
        return []
    table, groups = split_params(keys)
    lines = []
    if len(table.columns):
        lines += ["Params that differ:", "", to_markdown(table.reset_index(names="experiment"))]
        lines.append("")
    if groups:
        lines += ["Params the same in every experiment that sets them:", ""]
        everyone = [str(e) for e in keys.index]
        for rows, pairs in groups:
            values = ", ".join(f"`{k}` {v}" for k, v in pairs)
            lines.append(f"- {_rows_phrase(rows, everyone)}: {values}")
        lines.append("")
    return lines


def to_markdown(df: pd.DataFrame, floatfmt: str = ".4f") -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "-" if math.isnan(v) else format(v, floatfmt)
        return str(v).replace("|", "\\|")  # a | inside a cell would end it

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(fmt(v) for v in r.tolist()) + " |")
    return "\n".join(lines)


def render_markdown(
    summary: pd.DataFrame, params: pd.DataFrame, sections: list[str], figure: str
) -> str:
    """summary.md: per task, its ``KEY_METRICS`` table and its params (:func:`params_markdown`),
    then the tasks' own sections; ``figure``: the comparison figure's file name, beside it."""
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
        "Baselines are fitted or classical, not trained. One table per task, with its own metrics",
        "(the rest of each `metrics.json` is in `summary.csv`); under it, the params that differ",
        "between its experiments (`-`: not set; a fitted baseline has no loss, sampler or training",
        "loop), then the others, once.",
        "",
        f"![comparison]({figure})",
        "",
    ]
    for task_name, metrics in summary.attrs["key_metrics"].items():
        rows = summary[summary["task"] == task_name]
        cols = ["experiment", "dataset", "model", "loss", *metrics, "train_seconds"]
        md += [f"## {task_name}", "", to_markdown(rows[cols].dropna(axis=1, how="all")), ""]
        # `task` is the heading; a key no experiment of this task has is not its key
        keys = params.loc[rows["experiment"]].drop(columns="task", errors="ignore")
        keys = keys.dropna(axis=1, how="all")
        md += params_markdown(keys)
    md += heldout_markdown(summary)
    md += [part + "\n" for part in sections]
    return "\n".join(md)


def heldout_markdown(summary: pd.DataFrame) -> list[str]:
    """One table across tasks for the experiments with held-out classes: what their embeddings
    do for classes never trained on (ranking, few-shot episodes, OOD detection)."""
    if "fewshot_1shot_accuracy" not in summary:
        return []
    rows = summary[summary["fewshot_1shot_accuracy"].notna()]
    if rows.empty:
        return []

    def with_ci(row: pd.Series, shot: int) -> str:
        mean, ci = row.get(f"fewshot_{shot}shot_accuracy"), row.get(f"fewshot_{shot}shot_ci95")
        return "-" if pd.isna(mean) else f"{mean:.3f} ± {ci:.3f}" if pd.notna(ci) else f"{mean:.3f}"

    ways = sorted({int(w) for w in rows.get("fewshot_way", pd.Series(dtype=float)).dropna()})
    way = f"{ways[0]}-way" if len(ways) == 1 else "N-way"
    table = pd.DataFrame(
        {
            "experiment": rows["experiment"],
            "task": rows["task"],
            "dataset": rows["dataset"],
            "unseen_map": rows.get("unseen_map"),
            f"{way} 1-shot": [with_ci(r, 1) for _, r in rows.iterrows()],
            f"{way} 5-shot": [with_ci(r, 5) for _, r in rows.iterrows()],
            "ood_knn_auroc": rows.get("ood_knn_auroc"),
            "ood_knn_fpr95": rows.get("ood_knn_fpr95"),
        }
    ).sort_values(["dataset", "unseen_map"], ascending=[True, False])
    return [
        "## Held-out classes: retrieval, few-shot, out-of-distribution",
        "",
        "Classes never seen in training (`holdout_classes`). `unseen_map`: retrieval among the",
        "held-out test images. Few-shot: episodes drawn from the held-out test images only (600,",
        "seeded), each query given the class of the nearest mean support embedding (prototype);",
        "mean accuracy ± the half-width of its 95% interval. OOD: seen-class test images are",
        "in-distribution, held-out ones out-of-distribution, scored by the distance to the k-th",
        "nearest training embedding (AUROC, and FPR at 95% TPR with OOD as positive: lower is",
        "better).",
        "",
        to_markdown(table.dropna(axis=1, how="all"), floatfmt=".3f"),
        "",
    ]


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    from simlearn.plots.comparison import plot_experiment_comparison

    configs = trained_configs(args.experiments, args.models)
    summary, differ, sections = summarise(configs, args.eval_dir, args.train_dir)
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
    md = render_markdown(summary, differ, sections, fig.name)
    out.with_suffix(".md").write_text(md)
    print(f"report: {len(summary)} experiments -> {out.with_suffix('.md')}")
    in_table_order = {name: configs[name] for name in summary["experiment"]}
    models, evals = publish(in_table_order, args.eval_dir, args.models, args.curves)
    print(f"report: model logged and registered for {len(models)} experiments")
    print(f"report: evaluation added to the MLflow runs of {len(evals)} experiments")
    return out.with_suffix(".md")


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    from simlearn.tasks import one_message

    with one_message("report"):
        main()
