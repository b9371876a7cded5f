"""SimCLR views of one batch: :func:`simlearn.augment.random_view` against ``kornia.augmentation``
on the same batch, side by side in one process.

The CIFAR recipe of Chen et al. 2020 (appendix B.9): random resized crop (scale 0.08-1, ratio
3/4-4/3), horizontal flip p = 0.5, colour jitter of strength s = 0.5 with p = 0.8, greyscale
p = 0.2, no blur. Batch 512x3x32x32 by default. Timed: one view of the batch (median of
``--repeat`` runs after a warm-up, the two implementations interleaved so that machine noise
hits both). Also checked: whether the same seed gives the same views twice (ours: a
``torch.Generator``; kornia: ``torch.random.fork_rng`` + ``torch.manual_seed``, as it draws from
the global generator).

Run: ``python benchmarks/bench_augment.py [--device cuda] [--batch 512] [--threads 1]``.
kornia is optional: without it only our figures are printed. ``--json PATH`` appends the
figures as JSON lines (see ``benchmarks/suite_results.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from suite_results import append  # noqa: E402

from simlearn.augment import random_view  # noqa: E402

STRENGTH = 0.5
RECIPE = {
    "degrees": 0.0,
    "translate": 0.0,
    "scale_range": (1.0, 1.0),
    "crop_scale": (0.08, 1.0),
    "crop_ratio": (3 / 4, 4 / 3),
    "flip_p": 0.5,
    "jitter": STRENGTH,
    "jitter_p": 0.8,
    "grey_p": 0.2,
}


def ours(x: torch.Tensor) -> Callable[[int], torch.Tensor]:
    return lambda seed: random_view(x, torch.Generator().manual_seed(seed), **RECIPE)


def kornia_pipeline(x: torch.Tensor, cropping_mode: str) -> Callable[[int], torch.Tensor]:
    import kornia.augmentation as K

    s = STRENGTH
    size = (x.shape[2], x.shape[3])
    aug = torch.nn.Sequential(
        K.RandomResizedCrop(size, scale=(0.08, 1.0), cropping_mode=cropping_mode),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, p=0.8),
        K.RandomGrayscale(p=0.2),
    ).to(x.device)
    devices = [x.device] if x.device.type == "cuda" else []

    def run(seed: int) -> torch.Tensor:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return aug(x)

    return run


def timed(fn: Callable[[int], torch.Tensor], seed: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    fn(seed)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's choice)")
    ap.add_argument("--json", type=Path, default=None, help="append the figures (JSON lines)")
    ap.add_argument("--step-name", default="augment", help="the suite step of the figures")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g).to(device)

    candidates: dict[str, Callable[[int], torch.Tensor]] = {"simlearn": ours(x)}
    try:
        import kornia

        candidates[f"kornia {kornia.__version__} (crop: slice)"] = kornia_pipeline(x, "slice")
        candidates[f"kornia {kornia.__version__} (crop: resample)"] = kornia_pipeline(x, "resample")
    except ImportError:
        print("kornia not installed: timing simlearn.augment alone")

    times: dict[str, list[float]] = {k: [] for k in candidates}
    for fn in candidates.values():
        fn(123)  # warm-up: allocator, kernels, pinned memory
    for r in range(args.repeat):
        for name, fn in candidates.items():
            times[name].append(timed(fn, r, device))
    print(
        f"one view of {args.batch}x3x{args.size}x{args.size}, CIFAR recipe, {device}, "
        f"{torch.get_num_threads()} torch threads, median of {args.repeat}"
    )
    out: dict[str, object] = {"bench": "augment", "device": str(device), "batch": args.batch}
    base = statistics.median(times["simlearn"])
    for name, fn in candidates.items():
        ms = 1000 * statistics.median(times[name])
        same = torch.equal(fn(11), fn(11)) and not torch.equal(fn(11), fn(12))
        print(
            f"  {name:34s} {ms:8.2f} ms   x{ms / (1000 * base):5.2f} of simlearn   "
            f"same seed -> same views: {same}"
        )
        key = "simlearn" if name == "simlearn" else "kornia_" + name.split("crop: ")[1][:-1]
        out[f"{key}_ms"] = ms
        out[f"{key}_deterministic"] = same
        append(
            args.json,
            args.step_name,
            f"one view of {args.batch}x3x{args.size}x{args.size}, {name}",
            ms,
            "ms",
            f"{device}, {torch.get_num_threads()} threads; same seed -> same views: {same}",
        )
    return out


if __name__ == "__main__":
    main()
