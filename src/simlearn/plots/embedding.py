"""The embedding map: a 2-D projection (t-SNE or PCA) of embeddings, coloured by class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from simlearn.plots._common import (
    TAB10,
    TAB20,
    PathLike,
    _new_figure,
    _save,
)

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
