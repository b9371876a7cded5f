"""Speed, agreement and memory of :func:`simlearn.evaluation.retrieval_metrics`.

(a) N = 10,000 queries = gallery, D = 64, 10 classes, CPU: ours vs pytorch-metric-learning's
    ``AccuracyCalculator(k=None)`` (full ranking, ``CustomKNN(LpDistance)``, no faiss), timed side
    by side in this process, with the speed-up and the largest difference of mAP, MAP@R,
    R-precision and P@1.
(b) N = 100,000 (D = 64, 10 classes) in a subprocess, so that its peak memory is its own: time and
    peak RSS (``VmHWM`` of /proc/self/status, else ``resource.getrusage``).
(c) ``--device cuda``: the same N = 10,000 (and ``--large-n``) on the GPU, torch path.

Run: ``python benchmarks/bench_retrieval.py`` (add ``--skip-large`` to leave out (b),
``--device cuda`` for (c)). Figures go to stdout; ``--json PATH`` also appends them as JSON lines
for ``benchmarks/gpu_suite.sh`` (see ``benchmarks/suite_results.py``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from suite_results import append  # noqa: E402

from simlearn.evaluation.retrieval import retrieval_metrics  # noqa: E402

# pytorch-metric-learning key -> our summary key
PML_KEYS = {
    "mean_average_precision": "map",
    "mean_average_precision_at_r": "map_at_r",
    "r_precision": "r_precision",
    "precision_at_1": "precision_at_1",
    "mean_reciprocal_rank": "mrr",
}


def make_data(n: int, dim: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian classes: centres N(0, 1), spread 2, so that the ranking is far from perfect."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, dim))
    emb = centres[labels] + 2.0 * rng.normal(size=(n, dim))
    return emb.astype(np.float32), labels.astype(np.int64)


def run_ours(emb: np.ndarray, labels: np.ndarray, device: str) -> tuple[dict[str, float], float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    summary = retrieval_metrics(emb, labels, device=device).summary()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return summary, time.perf_counter() - t0


def run_pml(emb: np.ndarray, labels: np.ndarray) -> tuple[dict[str, float], float]:
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import CustomKNN

    calc = AccuracyCalculator(
        include=tuple(PML_KEYS),
        k=None,
        device=torch.device("cpu"),
        knn_func=CustomKNN(LpDistance(normalize_embeddings=False)),
    )
    t0 = time.perf_counter()
    acc = calc.get_accuracy(torch.from_numpy(emb), torch.from_numpy(labels))
    return acc, time.perf_counter() - t0


def case_compare(args: argparse.Namespace) -> dict[str, float]:
    emb, labels = make_data(args.n, args.dim, args.classes, args.seed)
    run_ours(emb[:500], labels[:500], "cpu")  # warm-up (imports, thread pool)
    ours, t_ours = run_ours(emb, labels, "cpu")
    pml, t_pml = run_pml(emb, labels)
    out = {"n": args.n, "ours_s": t_ours, "pml_s": t_pml, "speedup": t_pml / t_ours}
    print(
        f"(a) N={args.n} D={args.dim} classes={args.classes}, CPU, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"    ours (numpy sort of packed keys) : {t_ours:8.2f} s")
    print(f"    pml AccuracyCalculator(k=None)   : {t_pml:8.2f} s")
    print(f"    speed-up                         : {t_pml / t_ours:8.1f} x")
    for pml_key, our_key in PML_KEYS.items():
        diff = abs(float(pml[pml_key]) - ours[our_key])
        out[f"absdiff_{our_key}"] = diff
        print(
            f"    {our_key:15s} ours {ours[our_key]:.9f}  pml {float(pml[pml_key]):.9f}  "
            f"|diff| {diff:.2e}"
        )
    return out


def peak_rss_gb() -> float:
    """Peak resident memory of this process: ``VmHWM`` (reset by exec, so a subprocess does not
    inherit its parent's peak as ``ru_maxrss`` does on Linux), else ``ru_maxrss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20  # kB -> GB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def case_large_child(n: int, dim: int, classes: int, seed: int, device: str) -> None:
    """Runs in the subprocess: prints one JSON line with time and memory."""
    emb, labels = make_data(n, dim, classes, seed)
    before = peak_rss_gb()  # interpreter, torch, the embeddings
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    summary, seconds = run_ours(emb, labels, device)
    rec = {
        "n": n,
        "seconds": seconds,
        "peak_rss_gb": peak_rss_gb(),
        "peak_rss_before_gb": before,
        "map": summary["map"],
        "map_at_r": summary["map_at_r"],
    }
    if device.startswith("cuda"):
        rec["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
    print(json.dumps(rec))


def case_large(args: argparse.Namespace, device: str) -> dict[str, float]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(args.large_n),
        "--dim",
        str(args.dim),
        "--classes",
        str(args.classes),
        "--seed",
        str(args.seed),
        "--device",
        device,
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    rec = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"(b) N={rec['n']} D={args.dim} classes={args.classes}, {device}, subprocess")
    print(f"    time                             : {rec['seconds']:8.2f} s")
    print(f"    peak RSS of the process          : {rec['peak_rss_gb']:8.2f} GB")
    print(f"    peak RSS before the call         : {rec['peak_rss_before_gb']:8.2f} GB")
    if "cuda_peak_gb" in rec:
        print(f"    torch.cuda.max_memory_allocated  : {rec['cuda_peak_gb']:8.2f} GB")
    print(f"    mAP {rec['map']:.6f}  MAP@R {rec['map_at_r']:.6f}")
    return rec


def case_gpu(args: argparse.Namespace) -> dict[str, float]:
    emb, labels = make_data(args.n, args.dim, args.classes, args.seed)
    run_ours(emb[:500], labels[:500], args.device)  # warm-up: CUDA context, kernels
    ours, t_gpu = run_ours(emb, labels, args.device)
    cpu, t_cpu = run_ours(emb, labels, "cpu")
    diff = max(abs(ours[k] - cpu[k]) for k in ("map", "map_at_r", "r_precision", "precision_at_1"))
    print(f"(c) N={args.n} D={args.dim}, {args.device} ({torch.cuda.get_device_name()})")
    print(f"    GPU torch path                   : {t_gpu:8.3f} s")
    print(f"    CPU numpy path                   : {t_cpu:8.3f} s")
    print(f"    max |GPU - CPU| of mAP, MAP@R, R-precision, P@1: {diff:.2e}")
    return {"n": args.n, "gpu_s": t_gpu, "cpu_s": t_cpu, "max_absdiff_gpu_cpu": diff}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="queries = gallery for (a) and (c)")
    ap.add_argument("--large-n", type=int, default=100_000, help="size of case (b)")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for case (c)")
    ap.add_argument("--skip-compare", action="store_true", help="leave out case (a)")
    ap.add_argument("--skip-large", action="store_true", help="leave out case (b)")
    ap.add_argument("--json", type=Path, default=None, help="append the figures (JSON lines)")
    ap.add_argument("--step-name", default="retrieval", help="the suite step of the figures")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        case_large_child(args.child, args.dim, args.classes, args.seed, args.device)
        return
    figures: dict[str, dict[str, float]] = {}
    if args.device.startswith("cuda"):
        figures["gpu"] = case_gpu(args)
        if not args.skip_large:
            figures["large_gpu"] = case_large(args, args.device)
    else:
        if not args.skip_compare:
            figures["compare"] = case_compare(args)
        if not args.skip_large:
            figures["large"] = case_large(args, "cpu")
    write_suite_lines(args.json, args.step_name, figures, args.dim)


def write_suite_lines(
    path: Path | None, step: str, figures: dict[str, dict[str, float]], dim: int
) -> None:
    """The figures as ``suite_results`` lines (nothing when ``path`` is None)."""
    if "compare" in figures:
        f = figures["compare"]
        worst = max(v for k, v in f.items() if k.startswith("absdiff"))
        note = f"pml {f['pml_s']:.2f} s; max |diff| {worst:.1e}"
        append(
            path,
            step,
            f"exact metrics, N={f['n']:,}, CPU, speed-up over pml",
            f["speedup"],
            "x",
            note,
        )
    if "gpu" in figures:
        f = figures["gpu"]
        note = f"CPU numpy path {f['cpu_s']:.2f} s; max |GPU - CPU| {f['max_absdiff_gpu_cpu']:.1e}"
        append(
            path, step, f"exact metrics, N={f['n']:,}, D={dim}, on the GPU", f["gpu_s"], "s", note
        )
    for key in ("large", "large_gpu"):
        if key in figures:
            f = figures[key]
            where = "on the GPU" if key == "large_gpu" else "CPU"
            mem = (
                f"cuda peak {f['cuda_peak_gb']:.2f} GB"
                if "cuda_peak_gb" in f
                else f"peak RSS {f['peak_rss_gb']:.2f} GB"
            )
            note = f"{mem}; mAP {f['map']:.4f}, MAP@R {f['map_at_r']:.4f}"
            append(
                path,
                step,
                f"exact metrics, N={f['n']:,}, D={dim}, {where}",
                f["seconds"],
                "s",
                note,
            )


if __name__ == "__main__":
    main()
