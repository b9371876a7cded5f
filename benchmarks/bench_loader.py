"""The streaming loader of kind "files" beside torchvision's: images/s of one pass over a folder
of JPEGs, decoded, resized and centre-cropped to 224 px, as float batches (B, 3, 224, 224).

- ours: :class:`simlearn.data.image_files.FileImages` through ``device_images`` (what training
  calls), batches of 64 rows, decoded in a pool of W threads;
- torchvision: ``ImageFolder`` + ``DataLoader(num_workers=W, batch_size=64)`` with
  ``Resize(224)``, ``CenterCrop(224)``, ``ToTensor()``: W worker processes, started each pass
  (as each epoch of a training without ``persistent_workers`` does).

Both read the same files in the same order, on the CPU, with the same W. The images are drawn
here (seeded): ``--images`` JPEGs of 256x256 px (shapes on a noisy gradient, about 30 kB each,
quality 90) in 20 class folders of a temporary folder (``--folder`` keeps them). The passes are
interleaved, ours then torchvision's, ``--repeat`` times after one warm-up pass of each, so
that machine noise hits both; the table gives the best and median pass of each and the ratio of
the medians. The first batches of the two are also compared: at 256 -> 224 px no decoding
shortcut applies, so the pixels should be equal.

Run: ``python benchmarks/bench_loader.py [--images 2000] [--workers 2] [--repeat 3]
[--epoch-images 5000 20000] [--epoch-size 64]``. The second part of the table: the peak RSS
(``ru_maxrss``) of one training epoch (``simlearn.tasks.train``, a width-16 convnet,
batch-hard on P x K batches) over each number of generated JPEGs, each in a fresh process,
images read at ``--epoch-size`` px; it should not grow with the number of images (they stay
on disk).
``--json PATH`` appends the figures as JSON lines (see ``benchmarks/suite_results.py``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from suite_results import append  # noqa: E402

from simlearn.data.image_files import FileImages, device_images  # noqa: E402

CLASSES = 20
BATCH = 64


# ----------------------------------------------------------------------------- data


def make_jpegs(folder: Path, n: int, side: int = 256, seed: int = 0) -> list[Path]:
    """``n`` seeded JPEGs of ``side`` px in ImageFolder layout, ``folder/<class>/<i>.jpg``;
    files already there are kept (a second run with ``--folder`` reuses them)."""
    from PIL import Image, ImageDraw

    paths = [folder / f"c{i % CLASSES:02d}" / f"{i:06d}.jpg" for i in range(n)]
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side  # (side, side)
    for i, path in enumerate(paths):
        if path.exists():
            continue
        rng = np.random.default_rng([seed, i])
        a, b, c = rng.uniform(0, 255, (3, 3))  # a colour gradient per channel
        base = a[:, None, None] + b[:, None, None] * xx + c[:, None, None] * yy  # (3, side, side)
        pixels = base.transpose(1, 2, 0) * 0.5 + rng.normal(0, 12, (side, side, 3))
        img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        d = ImageDraw.Draw(img)
        for _ in range(3):
            x0, y0 = rng.integers(0, side - 40, 2)
            x1, y1 = x0 + rng.integers(30, side - x0), y0 + rng.integers(30, side - y0)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (d.ellipse if (i + _) % 2 else d.rectangle)((x0, y0, x1, y1), fill=colour)
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90)
    found = sorted(folder.rglob("*.jpg"))
    if len(found) != n:
        raise SystemExit(f"{folder} holds {len(found)} JPEGs, not {n}: use an empty --folder")
    return found  # ImageFolder's order: class folders sorted, then files sorted


# ----------------------------------------------------------------------------- loaders


def ours_pass(folder: Path, paths: list[Path], size: int, workers: int) -> tuple[float, Any]:
    """(seconds, first batch) of one pass of FileImages + device_images over ``paths``."""
    t0 = time.perf_counter()
    rel = [p.relative_to(folder).as_posix() for p in paths]
    images = FileImages(folder, rel, size, workers=workers)
    load = device_images(images)
    first = None
    for start in range(0, len(paths), BATCH):
        x = load(np.arange(start, min(start + BATCH, len(paths))), "cpu")  # (B, 3, S, S)
        first = x if first is None else first
    images.close()
    return time.perf_counter() - t0, first


def torchvision_pass(folder: Path, size: int, workers: int) -> tuple[float, Any]:
    """(seconds, first batch) of one pass of ImageFolder + DataLoader over ``folder``."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    t0 = time.perf_counter()
    tf = transforms.Compose(
        [transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor()]
    )
    loader = DataLoader(
        datasets.ImageFolder(str(folder), transform=tf), batch_size=BATCH, num_workers=workers
    )
    first = None
    for x, _ in loader:  # (B, 3, S, S)
        first = x if first is None else first
    return time.perf_counter() - t0, first


# ----------------------------------------------------------------------------- measures


def measure_throughput(args: argparse.Namespace, folder: Path, paths: list[Path]) -> list[dict]:
    """The images/s rows of the table: ours and torchvision's, best and median of the passes."""
    n, w = len(paths), args.workers
    # warm-up: imports, the page cache, torch's first allocations
    first = {"ours": ours_pass(folder, paths, args.size, w)[1]}
    first["torchvision"] = torchvision_pass(folder, args.size, w)[1]
    times: dict[str, list[float]] = {"ours": [], "torchvision": []}
    for _ in range(args.repeat):
        times["ours"].append(ours_pass(folder, paths, args.size, w)[0])
        times["torchvision"].append(torchvision_pass(folder, args.size, w)[0])
    diff = (first["ours"] - first["torchvision"]).abs().max().item()
    rate = {k: [n / s for s in v] for k, v in times.items()}
    ratio = statistics.median(rate["ours"]) / statistics.median(rate["torchvision"])
    note = (
        f"{n} JPEGs 256 px -> {args.size} px, batch {BATCH}, {w} workers, {torch.get_num_threads()}"
        f" torch threads; first batch max |diff| {diff:.3g}"
    )
    labels = {"ours": "FileImages + device_images", "torchvision": "ImageFolder + DataLoader"}
    rows = [
        {
            "figure": f"{label}, {args.size} px",
            "value": statistics.median(rate[name]),
            "best": max(rate[name]),
            "unit": "images/s",
            "note": note,
        }
        for name, label in labels.items()
    ]
    rows.append({"figure": "ours / torchvision", "value": ratio, "unit": "x", "note": note})
    return rows


def epoch_child(folder: Path, work: Path, size: int, workers: int) -> None:
    """In a fresh process: build an ``image_folder`` dataset of ``folder`` (copies + manifest),
    train one epoch of a convnet on it through :func:`simlearn.tasks.train` (P x K batches,
    batch-hard), and print the peak RSS after loading the modules and after the epoch, in MiB
    (``ru_maxrss``), as one JSON line."""
    import json
    import resource

    from simlearn import tasks
    from simlearn.config import dataset_config
    from simlearn.data.sources import build_dataset

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)

    params = {
        "datasets": {"bench": {"source": "image_folder", "path": str(folder), "image_size": size,
                               "workers": workers, "split_by": "image"}},
        "experiments": {"e": {
            "task": "metric", "dataset": "bench",
            "model": {"name": "convnet", "embedding_dim": 32, "width": 16},
            "loss": {"name": "batch_hard"},
            "sampler": {"classes_per_batch": 8, "samples_per_class": 8},
            "train": {"epochs": 1, "device": "cpu"},
        }},
    }  # fmt: skip
    cfg_ds, _ = dataset_config(params, "bench")
    before_build = peak()
    t0 = time.perf_counter()
    build_dataset("bench", cfg_ds, work / "data", work / "downloads")
    built = time.perf_counter() - t0
    cfg = tasks.experiment_config(params, "e")
    data = tasks.load(cfg, work / "data")
    before = peak()
    t0 = time.perf_counter()
    trained = tasks.train(cfg, data, checkpoint_dir=work / "checkpoint")
    seconds = time.perf_counter() - t0
    rows = len(data.indices("train"))
    print(json.dumps({"before_build_mib": before_build, "before_epoch_mib": before,
                      "after_epoch_mib": peak(), "epoch_s": seconds, "build_s": built,
                      "train_rows": rows, "loss": float(trained.history[-1]["loss"])
                      if trained.history else None}))  # fmt: skip


def measure_epoch_rss(args: argparse.Namespace, root: Path) -> list[dict]:
    """Peak RSS of one training epoch over each of ``--epoch-images`` generated JPEGs (256 px,
    read at ``--epoch-size`` px), each in a fresh process: flat in the number of images when
    the images stay on disk."""
    import json
    import subprocess

    rows = []
    for n in args.epoch_images:
        folder = root / f"epoch-{n}"
        make_jpegs(folder, n)
        work = root / f"work-{n}"
        out = subprocess.run(
            [sys.executable, __file__, "--epoch-child", str(folder), str(work),
             "--epoch-size", str(args.epoch_size), "--workers", str(args.workers)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if out.returncode:
            raise SystemExit(f"epoch over {n} images failed:\n{out.stderr[-3000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        note = (
            f"{n:,} JPEGs 256 px read at {args.epoch_size} px, {r['train_rows']:,} training rows, "
            f"convnet width 16, P x K 8 x 8, {args.workers} decoding threads; epoch "
            f"{r['epoch_s']:.0f} s ({r['train_rows'] / r['epoch_s']:.0f} images/s), peak before "
            f"the epoch {r['before_epoch_mib']:.0f} MiB"
        )
        rows.append({"figure": f"peak RSS, one epoch over {n:,} images", "unit": "MiB",
                     "value": r["after_epoch_mib"], "note": note})  # fmt: skip
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"{'figure':48s} {'median':>12s} {'best':>12s}  unit")
    for r in rows:
        best = f"{r['best']:12.1f}" if "best" in r else " " * 12
        print(f"{r['figure']:48s} {r['value']:12.2f} {best}  {r['unit']}")
    notes = sorted({r["note"] for r in rows})
    for note in notes:
        print(f"  ({note})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=2_000, help="JPEGs to generate")
    ap.add_argument("--workers", type=int, default=2, help="decoding threads / DataLoader workers")
    ap.add_argument("--size", type=int, default=224, help="output side in px")
    ap.add_argument("--repeat", type=int, default=3, help="timed passes of each loader")
    ap.add_argument("--folder", type=Path, default=None, help="keep the JPEGs here (reused)")
    ap.add_argument("--json", type=Path, default=None, help="append the figures (JSON lines)")
    ap.add_argument("--step-name", default="loader", help="the suite step of the figures")
    ap.add_argument(
        "--epoch-images", type=int, nargs="*", default=[5_000, 20_000],
        help="peak RSS of one training epoch over each of these numbers of JPEGs (none: skip)",
    )  # fmt: skip
    ap.add_argument("--epoch-size", type=int, default=64, help="px the epoch reads images at")
    ap.add_argument("--epoch-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.epoch_child:
        epoch_child(*args.epoch_child, args.epoch_size, args.workers)
        return
    with tempfile.TemporaryDirectory(prefix="bench_loader-") as tmp:
        folder = args.folder or Path(tmp) / "throughput"
        t0 = time.perf_counter()
        paths = make_jpegs(folder, args.images)
        print(f"{len(paths)} JPEGs in {folder} ({time.perf_counter() - t0:.1f} s to make)")
        rows = measure_throughput(args, folder, paths)
        rows += measure_epoch_rss(args, Path(tmp))
        print_table(rows)
        for r in rows:
            append(args.json, args.step_name, r["figure"], float(r["value"]), r["unit"], r["note"])


if __name__ == "__main__":
    main()
