"""Training curves: loss, learning rate and the validation figure per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator

from simlearn.plots._common import (
    TAB10,
    PathLike,
    _new_figure,
    _save,
)

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
