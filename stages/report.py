"""report: every experiment side by side.

    python stages/report.py <eval_dir> <train_dir> <out_prefix>

Writes <out_prefix>.md, <out_prefix>.csv and <out_prefix>.png (a comparison figure). Only the
experiments currently in params.yaml are listed.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

KEY_METRICS = [
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
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("eval_dir", type=Path)
    p.add_argument("train_dir", type=Path)
    p.add_argument("out_prefix", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    return p.parse_args(argv)


def summarise(
    params: dict[str, Any], eval_dir: Path, train_dir: Path
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per experiment: task, dataset, key metrics, train time; the params that differ)."""
    from simlearn.config import SHALLOW_MODELS, experiment_config, flatten, to_dict

    rows, flat = [], {}
    for name in params.get("experiments") or {}:
        cfg = experiment_config(params, name)
        metrics_file = eval_dir / name / "metrics.json"
        if not metrics_file.exists():
            raise FileNotFoundError(f"{metrics_file} is missing: run `dvc repro evaluate@{name}`")
        m = json.loads(metrics_file.read_text())
        hist_file = train_dir / name / "history.csv"
        train_s = float(pd.read_csv(hist_file)["seconds"].sum()) if hist_file.exists() else math.nan
        rows.append(
            {
                "experiment": name,
                "task": cfg.task,
                "dataset": cfg.dataset,
                "model": cfg.model.name,
                "loss": "-" if cfg.model.name in SHALLOW_MODELS else cfg.loss.name,
                "baseline": cfg.model.name in SHALLOW_MODELS,
                **{k: m.get(k, math.nan) for k in KEY_METRICS},
                "train_seconds": train_s,
            }
        )
        shown = to_dict(cfg)
        if cfg.model.name in SHALLOW_MODELS:  # fitted: no loss, sampler or training loop
            for key in ("loss", "sampler", "train"):
                shown.pop(key)
        flat[name] = flatten(shown)
    summary = pd.DataFrame(rows)
    table = pd.DataFrame(flat).T
    differ = [c for c in table.columns if table[c].astype(str).nunique() > 1]
    return summary, table[differ].fillna("-")


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
    from simlearn.plots import plot_experiment_comparison

    params = load_params(args.params)
    summary, differ = summarise(params, args.eval_dir, args.train_dir)
    summary = summary.sort_values(["task", "dataset", "map"], ascending=[True, True, False])
    out = args.out_prefix
    out.parent.mkdir(parents=True, exist_ok=True)
    summary.to_csv(out.with_suffix(".csv"), index=False)
    fig = plot_experiment_comparison(
        summary, out.with_suffix(".png"), title="Test-split retrieval, every experiment"
    )
    shown = summary.drop(columns=["baseline"]).dropna(axis=1, how="all")
    md = [
        "# simlearn: experiment summary",
        "",
        "Test split; a query is never its own match. `map` = mean average precision over the full",
        "ranking (= AUPR), `map_at_r`/`r_precision` as in Musgrave et al. 2020, `roc_auc` over",
        "pairs; `knn_accuracy`, `ncm_accuracy` and `linear_probe_accuracy` (logistic regression)",
        "use the training split as reference.",
        "`seen_`/`unseen_` split the test set by whether the class was held out of training.",
        "Baselines (raw, mahalanobis, lda) are fitted, not trained.",
        "",
        to_markdown(shown),
        "",
        f"![comparison]({fig.name})",
        "",
        "## Params that differ between experiments",
        "",
        to_markdown(differ.reset_index(names="experiment")) if len(differ.columns) else "(none)",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(md))
    print(f"report: {len(summary)} experiments -> {out.with_suffix('.md')}")
    return out.with_suffix(".md")


if __name__ == "__main__":
    main()
