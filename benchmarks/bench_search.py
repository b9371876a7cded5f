"""Speed of :mod:`simlearn.search`, side by side with faiss on the same machine, in one run.

(a) Single-query latency on a 10,000 x 64 gallery, index loaded and warm: the median and 95th
    percentile of one ``GalleryIndex.search`` (k = 10, L2) per backend. Target: under 1 ms.
(b) Throughput of 1,000 queries against 1,000,000 x 128 vectors, k = 10: our torch path
    (``backend="torch"``) against faiss ``IndexFlatL2.search`` called directly. Target: ours
    within 1.5x of faiss. Also the agreement of the two neighbour lists.
(c) L1 and L-infinity, 1,000 queries x 100,000 x 128: chunked ``torch.cdist`` (our torch path)
    against faiss's extra-metric path (``IndexFlat`` with ``METRIC_L1`` / ``METRIC_Linf``); the
    faster one is what ``backend="auto"`` should use (``simlearn.search.FAISS_WINS``).

Both sides run with the same number of threads (``--threads``, default 1: the figures are then
per core and less at the mercy of other processes). Each case runs ``--repeats`` times, the two
sides alternating, and the best time of each is kept.

Run: ``python benchmarks/bench_search.py`` (needs ``pip install -e ".[faiss]"`` for the faiss
columns). ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from simlearn.search import FAISS_WINS, GalleryIndex, faiss_available  # noqa: E402


def gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def case_latency(args: argparse.Namespace) -> dict[str, float]:
    g = gaussian(10_000, 64, 0)
    q = gaussian(args.latency_queries, 64, 1)
    index = GalleryIndex(g)
    out: dict[str, float] = {}
    backends = ["torch"] + (["faiss"] if faiss_available() else [])
    for backend in backends:
        index.prepare("euclidean", backend)
        for i in range(20):  # warm-up
            index.search(q[i], 10, backend=backend)
        times = []
        for i in range(len(q)):
            t0 = time.perf_counter()
            index.search(q[i], 10, backend=backend)
            times.append(time.perf_counter() - t0)
        ms = np.array(times) * 1e3
        out[f"{backend}_median_ms"] = float(np.median(ms))
        out[f"{backend}_p95_ms"] = float(np.percentile(ms, 95))
        print(
            f"(a) single query, 10,000 x 64, L2, k=10, {backend:5s}: median "
            f"{np.median(ms):.3f} ms, p95 {np.percentile(ms, 95):.3f} ms "
            f"({'under' if np.median(ms) < 1 else 'OVER'} 1 ms)",
            flush=True,
        )
    return out


def case_throughput(args: argparse.Namespace) -> dict[str, float]:
    n, d, n_q, k = args.n_large, 128, args.n_queries, 10
    g, q = gaussian(n, d, 2), gaussian(n_q, d, 3)
    index = GalleryIndex(g)
    index.prepare("euclidean", "torch")
    out: dict[str, float] = {}

    def ours():
        return index.search(q, k, backend="torch").positions

    t_ours, t_faiss = float("inf"), float("inf")
    if faiss_available():
        import faiss

        flat = faiss.IndexFlatL2(d)
        flat.add(g)

        def theirs():
            return flat.search(q, k)[1]

        for _ in range(args.repeats):  # alternate, keep the best of each
            t, ours_idx = best_of(ours, 1)
            t_ours = min(t_ours, t)
            t, faiss_idx = best_of(theirs, 1)
            t_faiss = min(t_faiss, t)
        agree = float(np.mean(np.sort(ours_idx, 1) == np.sort(faiss_idx, 1)))
        ratio = t_ours / t_faiss
        out.update(ours_s=t_ours, faiss_s=t_faiss, ratio=ratio, agreement=agree)
        print(
            f"(b) {n_q:,} queries x {n:,} x {d}, L2, k={k}: ours (torch) {t_ours:.2f} s "
            f"({n_q / t_ours:.0f} q/s), faiss IndexFlatL2 {t_faiss:.2f} s ({n_q / t_faiss:.0f} q/s)"
            f": ours / faiss = {ratio:.2f}x ({'within' if ratio <= 1.5 else 'OVER'} 1.5x); "
            f"same neighbours {agree:.4%}",
            flush=True,
        )
    else:
        t_ours, _ = best_of(ours, args.repeats)
        out.update(ours_s=t_ours)
        print(f"(b) ours (torch) {t_ours:.2f} s; faiss not installed: no reference", flush=True)
    return out


def case_extra_metrics(args: argparse.Namespace) -> dict[str, float]:
    n, d, n_q, k = args.n_extra, 128, args.n_queries, 10
    g, q = gaussian(n, d, 4), gaussian(n_q, d, 5)
    index = GalleryIndex(g)
    out: dict[str, float] = {}
    for dist in ("manhattan", "chebyshev"):
        index.prepare(dist, "torch")
        t_torch = t_faiss = float("inf")
        agree = float("nan")
        if faiss_available():
            index.prepare(dist, "faiss")
        for _ in range(args.repeats):
            t, a = best_of(lambda d=dist: index.search(q, k, distance=d, backend="torch"), 1)
            t_torch = min(t_torch, t)
            if faiss_available():
                t, b = best_of(lambda d=dist: index.search(q, k, distance=d, backend="faiss"), 1)
                t_faiss = min(t_faiss, t)
                agree = float(np.mean(a.positions == b.positions))
        out[f"{dist}_torch_s"], out[f"{dist}_faiss_s"] = t_torch, t_faiss
        if faiss_available():
            winner = "faiss" if t_faiss < t_torch else "torch"
            auto = "faiss" if dist in FAISS_WINS else "torch"
            print(
                f"(c) {n_q:,} queries x {n:,} x {d}, {dist}, k={k}: torch.cdist {t_torch:.2f} s, "
                f"faiss extra-metric {t_faiss:.2f} s: {winner} "
                f"{max(t_torch, t_faiss) / min(t_torch, t_faiss):.1f}x faster; auto uses {auto}"
                f"{'' if auto == winner else ' (MISMATCH: update FAISS_WINS)'}; "
                f"same neighbours {agree:.4%}",
                flush=True,
            )
        else:
            print(f"(c) {dist}: torch.cdist {t_torch:.2f} s; faiss not installed", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--n-large", type=int, default=1_000_000)
    p.add_argument("--n-extra", type=int, default=100_000)
    p.add_argument("--n-queries", type=int, default=1000)
    p.add_argument("--latency-queries", type=int, default=500)
    p.add_argument("--skip", nargs="*", default=[], choices=("a", "b", "c"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if faiss_available():
        import faiss

        faiss.omp_set_num_threads(args.threads)
    print(
        f"threads: {args.threads}; faiss: "
        f"{__import__('faiss').__version__ if faiss_available() else 'not installed'}; "
        f"torch {torch.__version__}",
        flush=True,
    )
    figures: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        if "a" not in args.skip:
            figures["latency"] = case_latency(args)
        if "b" not in args.skip:
            figures["throughput"] = case_throughput(args)
        if "c" not in args.skip:
            figures["extra_metrics"] = case_extra_metrics(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
