"""Out-of-distribution figure: each score's histograms, in-distribution against OOD."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from simlearn.plots._common import TAB10, PathLike, _as_1d, _new_figure, _save


class ScorePanel(NamedTuple):
    """One OOD score for :func:`plot_ood_scores`: larger means "more likely OOD"."""

    name: str  # e.g. "kNN distance (k = 50)"
    id_scores: np.ndarray  # (N_id,) scores of in-distribution images
    ood_scores: np.ndarray  # (N_ood,) scores of OOD images
    threshold: float  # flagged as OOD at score >= threshold (the 95%-TPR point)
    auroc: float
    fpr95: float


def _bins(a: np.ndarray, b: np.ndarray, log: bool, max_bins: int = 60) -> np.ndarray:
    both = np.concatenate([a, b])
    lo, hi = float(both.min()), float(both.max())
    if lo == hi:
        return np.array([lo - 0.5, hi + 0.5])
    if log:
        return np.geomspace(lo, hi, max_bins + 1)
    edges = np.histogram_bin_edges(both, bins="auto")
    return edges if len(edges) - 1 <= max_bins else np.linspace(lo, hi, max_bins + 1)


def plot_ood_scores(panels: Sequence[ScorePanel], path: PathLike, *, title: str) -> Path:
    """One panel per score: histograms (shared bins, each group's bars summing to 1) of the
    in-distribution and the OOD images' scores, and a dashed line at the threshold that flags
    95% of the OOD images; the ID mass right of it is the FPR@95. A score whose values are
    positive and span more than two decades (squared Mahalanobis distances of raw pixels) is
    drawn on a log axis.

    Args:
        panels: the scores, drawn left to right.
        path: where the PNG goes.
        title: figure title.
    """
    if not panels:
        raise ValueError("panels must not be empty")
    fig = _new_figure(5.2 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, p in zip(axes, panels, strict=True):
        s_id, s_ood = _as_1d("id_scores", p.id_scores), _as_1d("ood_scores", p.ood_scores)
        if s_id.size == 0 or s_ood.size == 0:
            raise ValueError(f"{p.name}: id_scores and ood_scores must not be empty")
        both = np.concatenate([s_id, s_ood])
        log = bool(both.min() > 0 and both.max() / both.min() > 100)
        edges = _bins(s_id, s_ood, log)
        for values, color, label in (
            (s_id, TAB10[0], f"in-distribution (n = {s_id.size:,})"),
            (s_ood, TAB10[3], f"OOD: held-out classes (n = {s_ood.size:,})"),
        ):
            share = np.full(values.size, 1.0 / values.size)  # bars sum to 1 on any axis scale
            ax.hist(values, bins=edges, weights=share, color=color, alpha=0.45, label=label)
            ax.hist(values, bins=edges, weights=share, color=color, histtype="step", linewidth=1.5)
        ax.axvline(
            p.threshold,
            color="black",
            linestyle="--",
            linewidth=1.2,
            label=f"95% of OOD flagged: FPR {p.fpr95:.3f}",
        )
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(f"{p.name} (larger: more likely OOD)")
        ax.set_ylabel("share of the group's images per bin")
        ax.set_ylim(bottom=0)
        ax.set_title(f"{p.name}: AUROC {p.auroc:.3f}")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(title)
    return _save(fig, path)
