"""Training throughput of the engine: samples/s of the convnet on 28x28 greyscale images (the
MNIST shape), batch-hard loss, P x K batches, with bf16 autocast on and off.

Run: ``python benchmarks/bench_train.py [--device cuda] [--epochs 3] [--n 12000]``. Data are random
images with random labels made here (throughput does not depend on the pixels). Figures go to
stdout; ``--json PATH`` also appends them as JSON lines for ``benchmarks/gpu_suite.sh``. On CPU,
``amp`` is ignored by the engine, so both rows measure the same thing. The engine's defaults
hold, ``train.deterministic: true`` included.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from suite_results import append  # noqa: E402

from simlearn.data.image_dataset import ImageDataset  # noqa: E402
from simlearn.engine import fit  # noqa: E402
from simlearn.tasks import experiment_config  # noqa: E402
from simlearn.training.metric import MetricTask  # noqa: E402


def fake_dataset(n: int, size: int, classes: int, seed: int) -> ImageDataset:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    return ImageDataset(
        images=rng.integers(0, 256, (n, size, size, 1), dtype=np.uint8),
        labels=labels.astype(np.int64),
        splits=np.array(["train"] * n),
        ids=np.array([f"x{i}" for i in range(n)]),
        class_names=[str(c) for c in range(classes)],
        manifest=pd.DataFrame(),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--n", type=int, default=12_000)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (train.num_threads)"
    )
    ap.add_argument("--json", type=Path, default=None, help="append the figures (JSON lines)")
    ap.add_argument("--step-name", default="train", help="the suite step of the figures")
    args = ap.parse_args()
    ds = fake_dataset(args.n, 28, 10, 0)
    print(f"convnet width {args.width}, 28x28x1, batch 10x16, {args.n} samples/epoch")
    for amp in (False, True):
        section = {
            "task": "metric",
            "dataset": "fake",
            "model": {"name": "convnet", "embedding_dim": 64, "width": args.width},
            "loss": {"name": "batch_hard"},
            "sampler": {"classes_per_batch": 10, "samples_per_class": 16},
            "train": {
                "epochs": args.epochs,
                "device": args.device,
                "amp": amp,
                "num_threads": args.threads,
            },
        }
        cfg = experiment_config({"datasets": {"fake": {}}, "experiments": {"b": section}}, "b")
        task = MetricTask(cfg, ds)
        task.validate = lambda model, device: {}  # throughput of training alone
        with tempfile.TemporaryDirectory() as tmp:
            res = fit(task, cfg.train, seed=0, checkpoint_dir=tmp, progress=False)
        # the first epoch includes warm-up (allocator, kernels); report the later ones
        rates = [r["samples_per_s"] for r in res.history[1:]] or [res.history[0]["samples_per_s"]]
        print(
            f"device={res.device:8s} amp={'bf16' if amp else 'off ':4s} "
            f"samples/s={np.mean(rates):10.0f}  (epochs after the first: {np.round(rates, 0)})"
        )
        note = f"{res.device}; convnet width {args.width}, 28x28x1, P x K = 10 x 16"
        if not res.device.startswith("cuda"):
            note += "; amp is ignored off CUDA"
        append(
            args.json,
            args.step_name,
            f"metric training, bf16 {'on' if amp else 'off'}",
            float(np.mean(rates)),
            "samples/s",
            note,
        )


if __name__ == "__main__":
    main()
