"""Pair verification's distances: one scipy ``pdist`` call against the blocked float64 loop.

:func:`simlearn.evaluation.pair_distances` scores every pair ``i < j`` of the test split (or a
uniform sample of 1M pairs). For raw-pixel baselines on a user's own images the embedding is the
image itself (64x64 RGB: D = 12,288), and the blocked loop over pairs (``blocked_pair_distances``,
kept for sampled pairs and for cosine and dot) took most of the ``evaluate`` stage. This prints,
side by side in one process, for each case: both paths' seconds, their ratio, the largest relative
difference of the distances, and the absolute differences of ROC AUC and PR AUC (scikit-learn, on
``-distance``): the two paths sum the squares in another order, so pairs at the same distance
(quantised pixels have many) can come out tied in one and a few ulps apart in the other.

Data: seeded Gaussian classes (10 classes, centres N(0, 1), spread 2) quantised to uint8 and
scaled to [0, 1] as raw pixels are. Run: ``python benchmarks/bench_pairs.py`` (about 1 minute on
2 cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from simlearn import distances  # noqa: E402
from simlearn.evaluation.pairs import (  # noqa: E402
    blocked_pair_distances,
    pair_distances,
    sample_pairs,
)


def make_pixels(n: int, dim: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    centres = rng.normal(size=(classes, dim))
    x = centres[labels] + 2.0 * rng.normal(size=(n, dim))
    x = np.clip((x - x.min()) / (x.max() - x.min()) * 255, 0, 255).astype(np.uint8)
    return (x / 255.0).astype(np.float32), labels


def case(n: int, dim: int, metric: str, seed: int) -> dict[str, float]:
    x, y = make_pixels(n, dim, 10, seed)
    dist = distances.get(metric)
    t0 = time.perf_counter()
    new, same = pair_distances(x, y, distance=dist)
    t_new = time.perf_counter() - t0
    x64 = dist.prepare_numpy(x.astype(np.float64), "emb")
    i, j = sample_pairs(n, 1_000_000)
    t0 = time.perf_counter()
    old = blocked_pair_distances(x64, i, j, dist)
    t_old = time.perf_counter() - t0
    scale = np.maximum(np.abs(old), np.finfo(np.float64).tiny)
    return {
        "blocked_s": t_old,
        "pdist_s": t_new,
        "speedup": t_old / t_new,
        "max_rel_diff": float(np.max(np.abs(new - old) / scale)),
        "roc_auc_diff": abs(roc_auc_score(same, -new) - roc_auc_score(same, -old)),
        "pr_auc_diff": abs(
            average_precision_score(same, -new) - average_precision_score(same, -old)
        ),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="embedded images (all pairs)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print(f"pair distances of all {args.n * (args.n - 1) // 2:,} pairs of {args.n} images")
    print(
        f"{'D':>6} {'distance':>10} {'blocked s':>10} {'pdist s':>8} {'ratio':>6} "
        f"{'max rel diff':>13} {'ROC AUC diff':>13} {'PR AUC diff':>12}"
    )
    for dim in (784, 12_288):
        for metric in ("euclidean", "manhattan"):
            r = case(args.n, dim, metric, args.seed)
            print(
                f"{dim:>6} {metric:>10} {r['blocked_s']:>10.2f} {r['pdist_s']:>8.2f} "
                f"{r['speedup']:>5.1f}x {r['max_rel_diff']:>13.1e} "
                f"{r['roc_auc_diff']:>13.1e} {r['pr_auc_diff']:>12.1e}"
            )


if __name__ == "__main__":
    main()
