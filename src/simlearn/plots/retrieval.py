"""Retrieval figures: precision-recall, ROC, distance histograms, the retrieval grid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from simlearn.plots._common import (
    CORRECT_FRAME_COLOR,
    DPI,
    QUERY_FRAME_COLOR,
    TAB10,
    WRONG_FRAME_COLOR,
    PathLike,
    PRExample,
    _as_1d,
    _check_unit_interval,
    _new_figure,
    _save,
    _unit_axes,
)

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
        # one artist per outline (``stairs``), not one bar patch per bin as ``ax.hist`` draws:
        # the same picture, drawn in a fraction of the time
        density, _ = np.histogram(values, bins=edges, density=True)
        label = f"{name} (n = {values.size:,})"
        ax.stairs(density, edges, fill=True, color=color, alpha=0.45, label=label)
        ax.stairs(density, edges, color=color, linewidth=1.5)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density (1 / distance unit)")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="best")
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


#: side of an image cell in the grid, in canvas pixels (images are enlarged by a whole factor)
GRID_CELL_PX = 96


def _to_rgb(images: np.ndarray) -> np.ndarray:
    """uint8 (..., H, W, C), C in {1, 3, 4} -> uint8 (..., H, W, 3): grey repeated, alpha dropped.

    No contrast stretch: grey value v becomes (v, v, v), whatever the image's own range.
    """
    if images.shape[-1] == 1:
        return np.repeat(images, 3, axis=-1)
    return images[..., :3]


def retrieval_montage(
    query_images: np.ndarray,
    neighbor_images: np.ndarray,
    colors: Sequence[Sequence[str]],
    *,
    label_px: int = 0,
    top_px: int = 0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """The grid's pixels: one uint8 RGB canvas holding every image inside its coloured frame.

    Row i holds query i, a gap, then its K neighbours. Each image is enlarged by the whole factor
    ``GRID_CELL_PX // max(H, W)`` (at least 1) with nearest-neighbour repetition, framed by
    ``colors[i][j]`` (see :func:`_frame_colors`), on a white background. ``label_px`` leaves room
    under each row for labels, ``top_px`` above the first row for column titles.

    Why one canvas and not one matplotlib axes per image: the grid of 8 queries x 6 neighbours
    drew in 2.4 s as 56 axes and draws in about 0.3 s as one image (digits, 2 CPU cores).

    Returns (canvas (Hc, Wc, 3) uint8, cell origins (Q, K + 1, 2) int as (x, y) of each frame's
    top-left pixel, frame side in pixels).
    """
    from matplotlib.colors import to_rgb

    q_img = _to_rgb(np.asarray(query_images))
    n_img = _to_rgb(np.asarray(neighbor_images))
    n_q, n_k = n_img.shape[:2]
    h, w = q_img.shape[1:3]
    scale = max(1, GRID_CELL_PX // max(h, w))
    ih, iw = h * scale, w * scale
    fw = max(2, max(ih, iw) // 24)  # frame width
    cell_h, cell_w = ih + 2 * fw, iw + 2 * fw
    gap = 2 * fw
    sep = max(gap, cell_w // 4)  # between the query column and the neighbours
    pitch_y = cell_h + gap + label_px
    width = cell_w + sep + n_k * cell_w + (n_k - 1) * gap
    height = top_px + n_q * pitch_y - gap
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    origins = np.zeros((n_q, n_k + 1, 2), dtype=np.int64)

    def up(img: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(img, scale, axis=0), scale, axis=1)

    for i in range(n_q):
        y = top_px + i * pitch_y
        for j in range(n_k + 1):
            x = 0 if j == 0 else cell_w + sep + (j - 1) * (cell_w + gap)
            origins[i, j] = (x, y)
            rgb = np.round(np.asarray(to_rgb(colors[i][j])) * 255).astype(np.uint8)
            canvas[y : y + cell_h, x : x + cell_w] = rgb
            img = q_img[i] if j == 0 else n_img[i, j - 1]
            canvas[y + fw : y + fw + ih, x + fw : x + fw + iw] = up(img)
    return canvas, origins, cell_w


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
    fontsize = 8
    text_px = round(fontsize * 1.9 * DPI / 72)  # a line of 8 pt text, in canvas pixels
    canvas, origins, cell = retrieval_montage(
        q_img, n_img, colors, label_px=text_px if has_labels else 0, top_px=text_px
    )
    height, width = canvas.shape[:2]
    # one canvas pixel per figure pixel, plus room for the title and the legend
    fig = _new_figure(width / DPI + 0.3, height / DPI + 0.9)
    ax = fig.add_subplot()
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()
    for i in range(n_q):
        for j in range(n_k + 1):
            x, y = origins[i, j]
            if i == 0:
                ax.text(x + cell / 2, y - 4, "query" if j == 0 else f"#{j}", ha="center",
                        va="bottom", fontsize=9)  # fmt: skip
            label = None
            if j == 0 and query_labels is not None:
                label = query_labels[i]
            elif j > 0 and neighbor_labels is not None:
                label = neighbor_labels[i][j - 1]
            if label is not None:
                ax.text(x + cell / 2, y + cell + 2, str(label), ha="center", va="top",
                        fontsize=fontsize)  # fmt: skip
            if j == 0:
                continue
            ax.text(
                x + cell - 0.12 * cell,
                y + 0.12 * cell,
                "\u2713" if ok[i, j - 1] else "\u2717",
                ha="center",
                va="center",
                fontsize=9,
                fontweight="bold",
                color="white",
                bbox={
                    "boxstyle": "circle,pad=0.15",
                    "facecolor": colors[i][j],
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
