"""Shared pieces of the figure modules: the canvas, saving, colours and argument checks.

Every public plotting function takes plain numpy arrays (or a pandas DataFrame), draws one figure on
the Agg canvas, writes it as a PNG (``DPI`` dots per inch, tight bounding box) and returns its path.
Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so no global
figure state is created or leaked and the functions are safe in worker processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 120  # crisp in a browser / MLflow UI, small enough to keep in git under reports/

PathLike = str | os.PathLike[str]

TAB10 = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
]  # fmt: skip
TAB20 = [
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
]  # fmt: skip

QUERY_FRAME_COLOR = "#7f7f7f"  # tab:gray, neutral: the query is neither right nor wrong
CORRECT_FRAME_COLOR = "#2ca02c"  # tab:green
WRONG_FRAME_COLOR = "#d62728"  # tab:red
ERROR_OK_COLOR = "#c7c7c7"  # light grey: pixels within the disparity error threshold

# Short display names for the flat metric keys written by the evaluate stage.
METRIC_DISPLAY_NAMES = {
    "map": "mAP",
    "map_at_r": "MAP@R",
    "r_precision": "R-precision",
    "precision_at_1": "P@1",
    "aupr": "AUPR",
    "roc_auc": "ROC AUC",
    "knn_accuracy": "kNN accuracy",
    "ncm_accuracy": "NCM accuracy",
    "accuracy_3px": "accuracy (3 px)",
    "d1": "D1",
}


class PRExample(NamedTuple):
    """One query's precision-recall points for :func:`plot_precision_recall`.

    A plain tuple ``(recall, precision, ap)`` or ``(recall, precision, ap, label)`` works too.
    """

    recall: np.ndarray  # (R,) recall after each retrieved item, non-decreasing
    precision: np.ndarray  # (R,) precision after each retrieved item
    ap: float  # the query's average precision
    label: str | None = None  # e.g. "query 17 (class 3)"; defaults to "example k"


# --------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------


def _new_figure(width: float, height: float) -> Figure:
    """A figure on its own Agg canvas (no pyplot), laid out by the constrained-layout engine."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: PathLike) -> Path:
    """Write ``fig`` as a PNG at ``path`` (parents created) and release its memory."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, bbox_inches="tight", format="png", facecolor="white")
    fig.clear()  # the figure was never registered with pyplot; clearing frees the artists
    return out


def _as_1d(name: str, values: object) -> np.ndarray:
    """``values`` as a finite float 1-D array; fails naming ``name`` otherwise."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {int((~np.isfinite(arr)).sum())} NaN/inf")
    return arr


def _check_unit_interval(name: str, arr: np.ndarray) -> None:
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise ValueError(
            f"{name} must lie in [0, 1], got values in [{arr.min():.4g}, {arr.max():.4g}]"
        )


def _unit_axes(ax: Axes, xlabel: str, ylabel: str) -> None:
    """Square [0, 1] x [0, 1] axes with a small margin so curves on the border stay visible."""
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal")
    ax.grid(True, alpha=0.3)


def _frame(ax: Axes, color: str, width: float = 3.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(color)
        spine.set_linewidth(width)
