"""The report's comparison figure: every experiment side by side."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.patches import Patch

from simlearn.plots._common import (
    METRIC_DISPLAY_NAMES,
    TAB10,
    PathLike,
    _new_figure,
    _save,
)

# --------------------------------------------------------------------------------------------
# 7. Experiment comparison
# --------------------------------------------------------------------------------------------


def _comparison_order(summary: pd.DataFrame, metrics: Sequence[str]) -> np.ndarray:
    """Row positions to draw, best first by ``metrics[0]``; NaN last, rows with no metric dropped.

    Ties keep the summary's order (stable sort).
    """
    values = summary[list(metrics)].to_numpy(dtype=np.float64)  # (E, M)
    rows = np.flatnonzero(~np.all(np.isnan(values), axis=1))
    key = values[rows, 0]
    key = np.where(np.isnan(key), -np.inf, key)
    return rows[np.argsort(-key, kind="stable")]


def plot_experiment_comparison(
    summary: pd.DataFrame,
    path: PathLike,
    *,
    metrics: Sequence[str] = ("map", "map_at_r", "precision_at_1"),
    title: str,
) -> Path:
    """Grouped horizontal bars, one group per experiment, best (by the first metric) on top.

    Baselines (boolean column ``baseline``) are hatched and marked in their tick label; every bar
    is annotated with its value, missing values with "n/a".

    Args:
        summary: one row per experiment; the name comes from an ``experiment`` column if present,
            else from the index. Rows where every metric is NaN (e.g. stereo runs) are left out.
        path: where the PNG goes.
        metrics: columns to draw, the first one sorts the experiments.
        title: figure title.
    """
    if not isinstance(summary, pd.DataFrame):
        raise ValueError(f"summary must be a pandas DataFrame, got {type(summary).__name__}")
    metrics = list(metrics)
    if not metrics:
        raise ValueError("metrics must name at least one column, got an empty sequence")
    absent = [m for m in metrics if m not in summary.columns]
    if absent:
        raise ValueError(f"metrics {absent} are not columns of summary {list(summary.columns)}")
    order = _comparison_order(summary, metrics)
    if order.size == 0:
        raise ValueError(f"summary has no experiment with a value for any of {metrics}")

    source = summary["experiment"] if "experiment" in summary.columns else summary.index
    names = source.astype(str).to_numpy()[order]
    baseline = (
        summary["baseline"].fillna(False).astype(bool).to_numpy()[order]
        if "baseline" in summary.columns
        else np.zeros(order.size, dtype=bool)
    )
    values = summary[metrics].to_numpy(dtype=np.float64)[order]  # (E, M)

    n_exp, n_met = values.shape
    bar_h = 0.8 / n_met
    fig = _new_figure(8.0, 1.4 + n_exp * (0.22 * n_met + 0.25))
    ax = fig.add_subplot()
    top = np.nanmax(values)
    x_max = max(1.0, float(top)) * 1.14  # room for the value labels right of the bars
    for j in range(n_met):
        # group i sits at y = i (inverted axis puts the best on top); metric j stacks downwards
        ys = np.arange(n_exp) - 0.4 + bar_h * (j + 0.5)
        for i in range(n_exp):
            v = values[i, j]
            if np.isnan(v):
                ax.text(0.01 * x_max, ys[i], "n/a", va="center", fontsize=7, color=TAB10[7])
                continue
            ax.barh(
                ys[i],
                v,
                height=bar_h * 0.92,
                color=TAB10[j % len(TAB10)],
                hatch="///" if baseline[i] else None,
                edgecolor="white" if baseline[i] else None,
                linewidth=0,
            )
            ax.text(v + 0.01 * x_max, ys[i], f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(np.arange(n_exp))
    ax.set_yticklabels(
        [f"{n} (baseline)" if b else n for n, b in zip(names, baseline, strict=True)]
    )
    for tick, b in zip(ax.get_yticklabels(), baseline, strict=True):
        if b:
            tick.set_fontstyle("italic")
    ax.set_ylim(n_exp - 0.5, -0.5)  # best first, at the top
    ax.set_xlim(0.0, x_max)
    ax.set_xlabel("score (0-1, higher is better)")
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for i in range(1, n_exp):  # thin separators between experiment groups
        ax.axhline(i - 0.5, color="0.85", linewidth=0.6)
    handles = [
        Patch(facecolor=TAB10[j % len(TAB10)], label=METRIC_DISPLAY_NAMES.get(m, m))
        for j, m in enumerate(metrics)
    ]
    if baseline.any():
        handles.append(Patch(facecolor=TAB10[7], hatch="///", edgecolor="white", label="baseline"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return _save(fig, path)
