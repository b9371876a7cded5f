"""Figures for the evaluation and report stages.

Every public function takes plain numpy arrays (or a pandas DataFrame), draws one figure on the
Agg canvas, writes it as a PNG to ``path`` (``DPI`` dots per inch, tight bounding box) and returns
that path. Figures are built with ``matplotlib.figure.Figure`` directly, never through pyplot, so
no global figure state is created or leaked and the functions are safe in worker processes.

Colours come from the colourblind-friendly ``tab10`` palette; where colour carries a meaning
(right/wrong neighbour, bad pixel) a second cue (marker, hatch, legend) carries it too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

__all__ = [
    "DPI",
    "PRExample",
    "plot_precision_recall",
    "plot_roc",
    "plot_distance_histograms",
    "plot_embedding_map",
    "plot_retrieval_grid",
    "plot_training_history",
    "plot_experiment_comparison",
    "plot_disparity",
]

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


# --------------------------------------------------------------------------------------------
# 1. Precision-recall
# --------------------------------------------------------------------------------------------


def _query_step_curve(recall: np.ndarray, precision: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One query's PR step curve from per-rank (recall, precision), recall non-decreasing.

    Keeps the ranks where recall rises (the relevant items) and prepends recall 0 at the first
    such precision. Drawn with ``where="pre"``, precision p_i holds on (r_{i-1}, r_i], so the area
    under the steps is sum_i (r_i - r_{i-1}) p_i, the query's average precision.
    """
    prev = np.concatenate([[0.0], recall[:-1]])
    rises = recall > prev  # (R,) True at relevant items
    r, p = recall[rises], precision[rises]
    if r.size == 0:  # no relevant item retrieved: precision 0 everywhere
        return np.array([0.0, 1.0]), np.array([0.0, 0.0])
    return np.concatenate([[0.0], r]), np.concatenate([[p[0]], p])


def plot_precision_recall(
    mean_recall: np.ndarray,
    mean_precision: np.ndarray,
    examples: Sequence[PRExample | tuple],
    path: PathLike,
    *,
    title: str,
    map_value: float,
) -> Path:
    """Mean 11-point interpolated precision-recall curve plus a few example queries.

    Args:
        mean_recall: (P,) recall levels of the mean curve, usually ``0, 0.1, ..., 1``.
        mean_precision: (P,) mean interpolated precision at those levels.
        examples: per-query curves, each ``(recall, precision, ap[, label])`` (see
            :class:`PRExample`), drawn as thin step curves labelled with their AP.
        path: where the PNG goes.
        title: figure title.
        map_value: the mean average precision, shown in the legend.
    """
    recall = _as_1d("mean_recall", mean_recall)
    precision = _as_1d("mean_precision", mean_precision)
    if recall.shape != precision.shape:
        raise ValueError(
            f"mean_recall and mean_precision must have the same shape, got {recall.shape} "
            f"and {precision.shape}"
        )
    _check_unit_interval("mean_recall", recall)
    _check_unit_interval("mean_precision", precision)
    if not 0.0 <= float(map_value) <= 1.0:
        raise ValueError(f"map_value must lie in [0, 1], got {map_value}")

    parsed: list[PRExample] = []
    for k, example in enumerate(examples):
        if len(example) not in (3, 4):
            raise ValueError(
                f"examples[{k}] must be (recall, precision, ap[, label]), got {len(example)} items"
            )
        ex = PRExample(*example)
        r = _as_1d(f"examples[{k}].recall", ex.recall)
        p = _as_1d(f"examples[{k}].precision", ex.precision)
        if r.shape != p.shape:
            raise ValueError(
                f"examples[{k}] recall and precision must have the same shape, got {r.shape} "
                f"and {p.shape}"
            )
        _check_unit_interval(f"examples[{k}].recall", r)
        if np.any(np.diff(r) < 0):
            raise ValueError(
                f"examples[{k}].recall must be non-decreasing (one value per rank, best first)"
            )
        _check_unit_interval(f"examples[{k}].precision", p)
        parsed.append(PRExample(r, p, float(ex.ap), ex.label))

    fig = _new_figure(7.2, 5.0)
    ax = fig.add_subplot()
    for k, ex in enumerate(parsed):
        name = ex.label if ex.label else f"example {k + 1}"
        step_r, step_p = _query_step_curve(ex.recall, ex.precision)
        ax.step(
            step_r,
            step_p,
            where="pre",  # precision p_i holds on (r_{i-1}, r_i]: the area is the query's AP
            linewidth=1.2,
            alpha=0.85,
            color=TAB10[(k + 1) % len(TAB10)],
            label=f"{name}: AP = {ex.ap:.3f}",
        )
    ax.plot(
        recall,
        precision,
        color=TAB10[0],
        linewidth=3.0,
        marker="o",
        markersize=5,
        zorder=5,
        label=f"mean, 11-point interpolated: mAP = {float(map_value):.3f}",
    )
    handles, labels = ax.get_legend_handles_labels()  # mean curve first
    handles, labels = handles[-1:] + handles[:-1], labels[-1:] + labels[:-1]
    _unit_axes(ax, "recall", "precision")
    ax.set_title(title)
    ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False
    )
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 2. ROC
# --------------------------------------------------------------------------------------------


def plot_roc(
    fpr: np.ndarray, tpr: np.ndarray, roc_auc: float, path: PathLike, *, title: str
) -> Path:
    """ROC curve of pair verification (same class vs different class) with the chance diagonal.

    Args:
        fpr: (P,) false-positive rates, non-decreasing, in [0, 1].
        tpr: (P,) true-positive rates at the same thresholds.
        roc_auc: area under the curve, shown in the legend.
        path: where the PNG goes.
        title: figure title.
    """
    x = _as_1d("fpr", fpr)
    y = _as_1d("tpr", tpr)
    if x.shape != y.shape:
        raise ValueError(f"fpr and tpr must have the same shape, got {x.shape} and {y.shape}")
    _check_unit_interval("fpr", x)
    _check_unit_interval("tpr", y)
    if not 0.0 <= float(roc_auc) <= 1.0:
        raise ValueError(f"roc_auc must lie in [0, 1], got {roc_auc}")

    fig = _new_figure(5.2, 5.0)
    ax = fig.add_subplot()
    ax.plot(
        [0, 1], [0, 1], linestyle="--", color=TAB10[7], linewidth=1.2, label="chance (AUC = 0.5)"
    )
    ax.plot(x, y, color=TAB10[0], linewidth=2.2, label=f"ROC (AUC = {float(roc_auc):.3f})")
    _unit_axes(ax, "false-positive rate", "true-positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 3. Distance histograms
# --------------------------------------------------------------------------------------------


def _shared_bins(a: np.ndarray, b: np.ndarray, max_bins: int = 80) -> np.ndarray:
    """Common bin edges of two samples: numpy's "auto" rule on the union, at most ``max_bins``."""
    both = np.concatenate([a, b])
    lo, hi = float(both.min()), float(both.max())
    if lo == hi:  # all distances equal: one visible bin around the value
        return np.array([lo - 0.5, hi + 0.5])
    edges = np.histogram_bin_edges(both, bins="auto")
    if len(edges) - 1 > max_bins:
        edges = np.linspace(lo, hi, max_bins + 1)
    return edges


def plot_distance_histograms(
    pos_distances: np.ndarray,
    neg_distances: np.ndarray,
    path: PathLike,
    *,
    title: str,
    xlabel: str = "distance between embeddings (embedding units)",
) -> Path:
    """Overlaid density histograms (same bins) of positive-pair and negative-pair distances.

    A well-trained embedding separates the two; their overlap is what pair verification gets wrong.

    Args:
        pos_distances: (P,) distances between pairs of the same class.
        neg_distances: (M,) distances between pairs of different classes.
        path: where the PNG goes.
        title: figure title.
        xlabel: x-axis label; change it when the values are similarities.
    """
    pos = _as_1d("pos_distances", pos_distances)
    neg = _as_1d("neg_distances", neg_distances)
    if pos.size == 0:
        raise ValueError("pos_distances must not be empty")
    if neg.size == 0:
        raise ValueError("neg_distances must not be empty")
    edges = _shared_bins(pos, neg)

    fig = _new_figure(6.8, 4.4)
    ax = fig.add_subplot()
    for values, color, name in (
        (pos, TAB10[0], "positive pairs"),
        (neg, TAB10[1], "negative pairs"),
    ):
        label = f"{name} (n = {values.size:,})"
        ax.hist(values, bins=edges, density=True, color=color, alpha=0.45, label=label)
        ax.hist(values, bins=edges, density=True, color=color, histtype="step", linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (1 / distance unit)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 4. Embedding map
# --------------------------------------------------------------------------------------------


def _subsample_indices(n: int, max_points: int, seed: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` points, the same for the same seed.

    All indices when ``n <= max_points``; otherwise a uniform sample without replacement.
    """
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def _project_2d(
    x: np.ndarray, method: Literal["tsne", "pca"], seed: int
) -> tuple[np.ndarray, tuple[str, str]]:
    """2-D coordinates of ``x`` (N, D) and the two axis labels.

    ``D == 2`` is returned unchanged (no re-projection); otherwise PCA or t-SNE (PCA init,
    automatic learning rate, perplexity ``min(30, N / 4)``) from scikit-learn.
    """
    if x.shape[1] == 2:
        return x, ("embedding dimension 1", "embedding dimension 2")
    if method == "pca":
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=seed)
        coords = pca.fit_transform(x)  # (N, 2)
        ratio = pca.explained_variance_ratio_
        return coords, (
            f"PC 1 ({100 * ratio[0]:.0f}% of variance)",
            f"PC 2 ({100 * ratio[1]:.0f}% of variance)",
        )
    from sklearn.manifold import TSNE

    tsne = TSNE(
        n_components=2,
        init="pca",
        learning_rate="auto",
        perplexity=min(30.0, x.shape[0] / 4),
        random_state=seed,
    )
    return tsne.fit_transform(x), ("t-SNE 1 (arbitrary units)", "t-SNE 2 (arbitrary units)")


def _class_colors(n_classes: int) -> list[str]:
    """tab10 up to 10 classes, tab20 up to 20, tab20 repeated beyond (then no class legend)."""
    palette = TAB10 if n_classes <= 10 else TAB20
    return [palette[i % len(palette)] for i in range(n_classes)]


def plot_embedding_map(
    embeddings: np.ndarray,
    labels: np.ndarray,
    path: PathLike,
    *,
    class_names: Sequence[str] | Mapping[int, str] | None = None,
    heldout_mask: np.ndarray | None = None,
    method: Literal["tsne", "pca"] = "tsne",
    seed: int = 0,
    max_points: int = 3000,
    title: str,
) -> Path:
    """2-D map of embeddings coloured by class; held-out classes drawn with a cross marker.

    Args:
        embeddings: (N, D) float, D >= 2; D == 2 is plotted as is, otherwise projected.
        labels: (N,) integer class labels.
        path: where the PNG goes.
        class_names: name per label value (list indexed by label, or mapping); default the label.
        heldout_mask: (N,) bool, True for points of classes not seen in training.
        method: ``"tsne"`` or ``"pca"`` projection for D > 2.
        seed: seeds the subsample and the projection.
        max_points: above this many points a deterministic random subsample is drawn.
        title: figure title.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ValueError(f"embeddings must be (N, D) with D >= 2, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("embeddings must be finite, found NaN or inf")
    y = np.asarray(labels)
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            f"labels must be integers of shape ({x.shape[0]},), got {y.dtype} of shape {y.shape}"
        )
    if method not in ("tsne", "pca"):
        raise ValueError(f"method must be 'tsne' or 'pca', got {method!r}")
    if max_points < 3:
        raise ValueError(f"max_points must be >= 3, got {max_points}")
    if x.shape[1] > 2 and x.shape[0] < 3:
        raise ValueError(f"embeddings need at least 3 points to project, got {x.shape[0]}")
    if heldout_mask is None:
        held = np.zeros(x.shape[0], dtype=bool)
    else:
        held = np.asarray(heldout_mask)
        if held.shape != (x.shape[0],) or held.dtype != np.bool_:
            raise ValueError(
                f"heldout_mask must be bool of shape ({x.shape[0]},), got {held.dtype} "
                f"of shape {held.shape}"
            )
    classes = np.unique(y)
    if class_names is None:
        names = {int(c): str(c) for c in classes}
    elif isinstance(class_names, Mapping):
        names = {int(k): str(v) for k, v in class_names.items()}
    else:
        names = dict(enumerate(map(str, class_names)))
    missing = [int(c) for c in classes if int(c) not in names]
    if missing:
        raise ValueError(f"class_names has no name for labels {missing[:10]}")

    n_total = x.shape[0]
    keep = _subsample_indices(n_total, max_points, seed)
    x, y, held = x[keep], y[keep], held[keep]
    coords, (xlabel, ylabel) = _project_2d(x, method, seed)  # (n, 2)

    colors = dict(zip(classes.tolist(), _class_colors(len(classes)), strict=True))
    show_class_legend = len(classes) <= 20
    size = 14 if len(keep) > 1000 else 28
    fig = _new_figure(7.6, 6.0)
    ax = fig.add_subplot()
    for c in classes.tolist():
        for is_held, marker in ((False, "o"), (True, "X")):
            sel = (y == c) & (held == is_held)
            if not sel.any():
                continue
            label = f"{names[c]} (held-out)" if is_held else names[c]
            ax.scatter(
                coords[sel, 0],
                coords[sel, 1],
                s=size * (1.4 if is_held else 1.0),
                marker=marker,
                color=colors[c],
                alpha=0.8,
                linewidths=0,
                label=label if show_class_legend else None,
            )
    if held.any() and not show_class_legend:
        # no per-class legend to carry the "(held-out)" suffix: explain the markers in grey
        ax.scatter([], [], marker="o", color=TAB10[7], label="seen class")
        ax.scatter([], [], marker="X", color=TAB10[7], label="held-out class")
    handles, legend_labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(
            handles,
            legend_labels,
            loc="upper left",
            bbox_to_anchor=(1.02, 1.0),
            fontsize=8,
            frameon=False,
            markerscale=1.3,
            ncols=1 if len(handles) <= 16 else 2,
            title="class" if show_class_legend else None,
        )
    method_name = (
        "2-D, no projection" if x.shape[1] == 2 else ("t-SNE" if method == "tsne" else "PCA")
    )
    shown = f"{len(keep):,} of {n_total:,} points" if len(keep) < n_total else f"{n_total:,} points"
    note = "" if show_class_legend else f", {len(classes)} classes (colours repeat)"
    if held.any():
        note += ", crosses: held-out classes"
    ax.set_title(f"{title}\n{method_name}, {shown}{note}", fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_aspect("equal", adjustable="datalim")
    ax.grid(True, alpha=0.2)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 5. Retrieval grid
# --------------------------------------------------------------------------------------------


def _frame_colors(correct: np.ndarray) -> list[list[str]]:
    """Frame colour per grid cell, (Q, K) bool -> Q rows of K + 1 colours.

    Column 0 is the query (neutral grey); column k + 1 is green when neighbour k has the query's
    class and red when it does not.
    """
    ok = np.asarray(correct)
    if ok.ndim != 2 or ok.dtype != np.bool_:
        raise ValueError(
            f"correct must be a 2-D bool array (Q, K), got {ok.dtype} of shape {ok.shape}"
        )
    return [
        [QUERY_FRAME_COLOR] + [CORRECT_FRAME_COLOR if c else WRONG_FRAME_COLOR for c in row]
        for row in ok.tolist()
    ]


def _show_image(ax: Axes, image: np.ndarray) -> None:
    """uint8 (H, W, C) image; C == 1 in grey, nearest-neighbour so small images stay sharp."""
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")


def _frame(ax: Axes, color: str, width: float = 3.0) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_edgecolor(color)
        spine.set_linewidth(width)


def plot_retrieval_grid(
    query_images: np.ndarray,
    neighbor_images: np.ndarray,
    correct: np.ndarray,
    path: PathLike,
    *,
    title: str,
    query_labels: Sequence[object] | np.ndarray | None = None,
    neighbor_labels: Sequence[Sequence[object]] | np.ndarray | None = None,
) -> Path:
    """Queries and their top-K neighbours: one row per query, neighbours framed right / wrong.

    Args:
        query_images: (Q, H, W, C) uint8, C in {1, 3, 4}.
        neighbor_images: (Q, K, H, W, C) uint8, nearest first.
        correct: (Q, K) bool, True where the neighbour has the query's class.
        path: where the PNG goes.
        title: figure title.
        query_labels: (Q,) class (name or id) written under each query.
        neighbor_labels: (Q, K) class written under each neighbour.
    """
    q_img = np.asarray(query_images)
    n_img = np.asarray(neighbor_images)
    if q_img.dtype != np.uint8 or q_img.ndim != 4 or q_img.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"query_images must be uint8 (Q, H, W, C) with C in 1, 3, 4; got {q_img.dtype} "
            f"of shape {q_img.shape}"
        )
    n_q = q_img.shape[0]
    if (
        n_img.dtype != np.uint8
        or n_img.ndim != 5
        or n_img.shape[0] != n_q
        or (n_img.shape[2:] != q_img.shape[1:])
    ):
        raise ValueError(
            f"neighbor_images must be uint8 (Q, K, H, W, C) = ({n_q}, K, "
            f"{', '.join(map(str, q_img.shape[1:]))}); got {n_img.dtype} of shape {n_img.shape}"
        )
    n_k = n_img.shape[1]
    if n_q == 0 or n_k == 0:
        raise ValueError(f"need at least one query and one neighbour, got Q={n_q}, K={n_k}")
    colors = _frame_colors(correct)
    if np.asarray(correct).shape != (n_q, n_k):
        raise ValueError(f"correct must have shape ({n_q}, {n_k}), got {np.asarray(correct).shape}")
    if query_labels is not None and len(query_labels) != n_q:
        raise ValueError(f"query_labels must have {n_q} entries, got {len(query_labels)}")
    if neighbor_labels is not None and np.shape(neighbor_labels)[:2] != (n_q, n_k):
        raise ValueError(
            f"neighbor_labels must have shape ({n_q}, {n_k}), got {np.shape(neighbor_labels)}"
        )
    ok = np.asarray(correct)

    has_labels = query_labels is not None or neighbor_labels is not None
    cell = 1.25  # inches per image
    row_h = cell + (0.25 if has_labels else 0.0)
    fig = _new_figure(cell * (n_k + 1) + 0.35, row_h * n_q + 1.0)
    # a narrow empty column separates the query from its neighbours
    grid = fig.add_gridspec(n_q, n_k + 2, width_ratios=[1.0, 0.12] + [1.0] * n_k)
    for i in range(n_q):
        ax = fig.add_subplot(grid[i, 0])
        _show_image(ax, q_img[i])
        _frame(ax, colors[i][0])
        if i == 0:
            ax.set_title("query", fontsize=9)
        if query_labels is not None:
            ax.set_xlabel(str(query_labels[i]), fontsize=8)
        for k in range(n_k):
            ax = fig.add_subplot(grid[i, k + 2])
            _show_image(ax, n_img[i, k])
            _frame(ax, colors[i][k + 1])
            if i == 0:
                ax.set_title(f"#{k + 1}", fontsize=9)
            if neighbor_labels is not None:
                ax.set_xlabel(str(neighbor_labels[i][k]), fontsize=8)
            ax.text(
                0.96,
                0.96,
                "\u2713" if ok[i, k] else "\u2717",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=9,
                fontweight="bold",
                color="white",
                bbox={
                    "boxstyle": "circle,pad=0.15",
                    "facecolor": colors[i][k + 1],
                    "edgecolor": "white",
                    "linewidth": 0.8,
                },
            )
    fig.suptitle(title)
    fig.legend(
        handles=[
            Patch(facecolor="white", edgecolor=QUERY_FRAME_COLOR, linewidth=2.5, label="query"),
            Patch(
                facecolor="white",
                edgecolor=CORRECT_FRAME_COLOR,
                linewidth=2.5,
                label="\u2713 same class",
            ),
            Patch(
                facecolor="white",
                edgecolor=WRONG_FRAME_COLOR,
                linewidth=2.5,
                label="\u2717 other class",
            ),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize=8,
        frameon=False,
    )
    return _save(fig, path)


# --------------------------------------------------------------------------------------------
# 6. Training history
# --------------------------------------------------------------------------------------------


def plot_training_history(history: pd.DataFrame, path: PathLike, *, title: str) -> Path:
    """Loss per epoch (left) and the validation mAP (right, when a ``val_map`` column exists).

    Args:
        history: one row per epoch with a ``loss`` column; optional ``epoch`` (else 1, 2, ...),
            ``val_loss`` (drawn with the loss) and ``val_map`` (NaN rows skipped, best marked).
        path: where the PNG goes.
        title: figure title.
    """
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    if "loss" not in history.columns:
        raise ValueError(f"history must have a 'loss' column, got columns {list(history.columns)}")
    if len(history) == 0:
        raise ValueError("history must have at least one row (epoch)")
    epochs = (
        history["epoch"].to_numpy(dtype=np.float64)
        if "epoch" in history.columns
        else np.arange(1, len(history) + 1, dtype=np.float64)
    )
    marker = "o" if len(history) <= 40 else None
    has_val = "val_map" in history.columns and history["val_map"].notna().any()

    fig = _new_figure(10.0 if has_val else 6.0, 4.0)
    axes = fig.subplots(1, 2 if has_val else 1, squeeze=False)[0]
    ax = axes[0]
    ax.plot(
        epochs,
        history["loss"].to_numpy(dtype=np.float64),
        color=TAB10[0],
        marker=marker,
        markersize=4,
        linewidth=1.8,
        label="training loss",
    )
    if "val_loss" in history.columns and history["val_loss"].notna().any():
        sel = history["val_loss"].notna().to_numpy()
        ax.plot(
            epochs[sel],
            history["val_loss"].to_numpy(dtype=np.float64)[sel],
            color=TAB10[1],
            marker=marker,
            markersize=4,
            linewidth=1.8,
            label="validation loss",
        )
        ax.legend(loc="best")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (mean over the epoch's batches)")
    if has_val:  # with one panel the figure title says it all
        ax.set_title("loss", fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)

    if has_val:
        ax = axes[1]
        sel = history["val_map"].notna().to_numpy()
        e, v = epochs[sel], history["val_map"].to_numpy(dtype=np.float64)[sel]
        ax.plot(
            e, v, color=TAB10[2], marker=marker, markersize=4, linewidth=1.8, label="validation mAP"
        )
        best = int(np.argmax(v))
        ax.plot(
            [e[best]],
            [v[best]],
            linestyle="none",
            marker="*",
            markersize=14,
            color=TAB10[3],
            label=f"best: {v[best]:.3f} at epoch {e[best]:g}",
        )
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel("epoch")
        ax.set_ylabel("mAP (0-1)")
        ax.set_title("validation", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right")
        if len(e) == 1:  # one point: keep it off the border
            ax.set_xlim(e[0] - 1, e[0] + 1)
    if len(epochs) == 1:
        axes[0].set_xlim(epochs[0] - 1, epochs[0] + 1)
    fig.suptitle(title)
    return _save(fig, path)


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


# --------------------------------------------------------------------------------------------
# 8. Disparity
# --------------------------------------------------------------------------------------------


def _bad_pixel_mask(
    disparity_pred: np.ndarray, disparity_gt: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(bad, valid) masks, both (H, W) bool.

    ``valid``: ground truth finite and > 0 (KITTI stores 0, Middlebury inf, where unknown).
    ``bad``: valid and ``|pred - gt| > threshold``; a non-finite prediction on a valid pixel is bad.
    """
    gt = np.asarray(disparity_gt, dtype=np.float64)
    pred = np.asarray(disparity_pred, dtype=np.float64)
    valid = np.isfinite(gt) & (np.nan_to_num(gt, nan=0.0, posinf=0.0, neginf=0.0) > 0)
    with np.errstate(invalid="ignore"):
        good = np.abs(pred - gt) <= threshold  # False where pred or gt is NaN/inf
    return valid & ~good, valid


def plot_disparity(
    left: np.ndarray,
    disparity_pred: np.ndarray,
    disparity_gt: np.ndarray,
    path: PathLike,
    *,
    title: str,
    max_disp: float,
    bad_threshold: float = 3.0,
) -> Path:
    """Left image, predicted and ground-truth disparity (one shared colour scale) and bad pixels.

    Args:
        left: (H, W) or (H, W, C) left image, uint8 or float in [0, 1].
        disparity_pred: (H, W) predicted disparity in pixels.
        disparity_gt: (H, W) ground truth in pixels; non-finite or <= 0 means unknown.
        path: where the PNG goes.
        title: figure title.
        max_disp: top of the shared disparity colour scale, in pixels.
        bad_threshold: a pixel is bad when its error exceeds this many pixels.
    """
    img = np.asarray(left)
    pred = np.asarray(disparity_pred, dtype=np.float64)
    gt = np.asarray(disparity_gt, dtype=np.float64)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"left must be (H, W) or (H, W, C) with C in 1, 3, 4; got {img.shape}")
    hw = img.shape[:2]
    if pred.shape != hw:
        raise ValueError(f"disparity_pred must have shape {hw} like left, got {pred.shape}")
    if gt.shape != hw:
        raise ValueError(f"disparity_gt must have shape {hw} like left, got {gt.shape}")
    if not max_disp > 0:
        raise ValueError(f"max_disp must be > 0 pixels, got {max_disp}")
    if not bad_threshold > 0:
        raise ValueError(f"bad_threshold must be > 0 pixels, got {bad_threshold}")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]

    bad, valid = _bad_pixel_mask(pred, gt, bad_threshold)
    n_valid = int(valid.sum())
    bad_pct = 100.0 * bad.sum() / n_valid if n_valid else float("nan")

    h, w = hw
    # inches per panel: 5 wide for landscape images (KITTI, Middlebury); portrait ones get
    # narrower panels, but never under 3 inches, so that the panel titles still fit
    panel_w = 5.0 if w >= h else max(3.0, 4.5 * w / h)
    panel_h = (panel_w - 0.3) * h / w  # the frame and padding take a little of the width
    fig = _new_figure(2 * panel_w + 0.3, 2 * panel_h + 1.9)
    (ax_img, ax_err), (ax_pred, ax_gt) = fig.subplots(2, 2)
    for ax in (ax_img, ax_err, ax_pred, ax_gt):
        # a thin frame shows the image's extent where its border pixels are white (unknown)
        _frame(ax, "0.6", width=0.8)

    if img.ndim == 2:
        vmax = 255 if img.dtype == np.uint8 else 1.0
        ax_img.imshow(img, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
    else:
        ax_img.imshow(img, interpolation="nearest")
    ax_img.set_title("left image", fontsize=10)

    # categorical error map: 0 unknown, 1 within threshold, 2 off by more than threshold
    codes = np.zeros(hw, dtype=np.int8)
    codes[valid] = 1
    codes[bad] = 2
    err_cmap = ListedColormap(["white", ERROR_OK_COLOR, WRONG_FRAME_COLOR])
    ax_err.imshow(codes, cmap=err_cmap, vmin=-0.5, vmax=2.5, interpolation="nearest")
    ax_err.set_title(
        f"error > {bad_threshold:g} px on {bad_pct:.1f}% of the\n"
        f"{n_valid:,} pixels with ground truth"
        if n_valid
        else "no pixel has ground truth",
        fontsize=10,
    )
    ax_err.legend(
        handles=[
            Patch(facecolor=ERROR_OK_COLOR, label=f"|error| \u2264 {bad_threshold:g} px"),
            Patch(facecolor=WRONG_FRAME_COLOR, label=f"|error| > {bad_threshold:g} px"),
            Patch(facecolor="white", edgecolor="0.5", label="no ground truth"),
        ],
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=3,
        fontsize=8,
        frameon=False,
    )

    cmap = colormaps["viridis"].with_extremes(bad="white")  # a copy: no global colormap changes
    norm = Normalize(vmin=0.0, vmax=float(max_disp))
    ax_pred.imshow(np.ma.masked_invalid(pred), cmap=cmap, norm=norm, interpolation="nearest")
    ax_pred.set_title("predicted disparity", fontsize=10)
    im = ax_gt.imshow(np.ma.masked_where(~valid, gt), cmap=cmap, norm=norm, interpolation="nearest")
    ax_gt.set_title("ground-truth disparity (white: unknown)", fontsize=10)
    fig.colorbar(
        im,
        ax=[ax_pred, ax_gt],
        location="bottom",
        label="disparity (px), one scale for both maps",
        shrink=0.5,
        aspect=40,
        extend="max",
    )
    fig.suptitle(title)
    return _save(fig, path)
