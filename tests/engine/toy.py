"""A tiny regression task for engine tests, runnable as a script:

    python toy.py <checkpoint_dir> <out.json> <epochs> [--nan-at-epoch E] [--sleep S]

Prints nothing but progress; writes the final history and parameters to <out.json> (rank 0) and
<out.json>.rank<R> (every rank).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn

from simlearn.config import TrainConfig
from simlearn.engine import fit


class ToyTask:
    def __init__(self, n: int = 256, nan_at_epoch: int | None = None, sleep: float = 0.0) -> None:
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(n, generator=g)
        self.model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.nan_at_epoch, self.sleep = nan_at_epoch, sleep
        self.epoch = 0

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        self.epoch = epoch
        rng = np.random.default_rng([7, epoch, rank])
        for _ in range(8 // world_size):
            yield rng.choice(len(self.x), size=32, replace=False)

    def loss(self, model, batch, device):
        pred = model(self.x[batch].to(device)).squeeze(1)
        loss = ((pred - self.y[batch].to(device)) ** 2).mean()
        if self.nan_at_epoch is not None and self.epoch + 1 >= self.nan_at_epoch:
            loss = loss * float("nan")
        return loss, len(batch)

    def validate(self, model, device):
        time.sleep(self.sleep)
        with torch.no_grad():
            return {"val_mse": float(((model(self.x).squeeze(1) - self.y) ** 2).mean())}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("out")
    p.add_argument("epochs", type=int)
    p.add_argument("--nan-at-epoch", type=int)
    p.add_argument("--sleep", type=float, default=0.0)
    a = p.parse_args()
    torch.manual_seed(0)
    task = ToyTask(nan_at_epoch=a.nan_at_epoch, sleep=a.sleep)
    cfg = TrainConfig(epochs=a.epochs, lr=0.05, device="cpu", num_threads=1)
    res = fit(task, cfg, seed=0, checkpoint_dir=a.ckpt, fingerprint="toy", progress=False)
    params = torch.cat([q.detach().flatten() for q in task.model.parameters()]).tolist()
    rank = int(os.environ.get("RANK", "0"))
    blob = {
        "history": res.history,
        "params": params,
        "world_size": res.world_size,
        "resumed_from_epoch": res.resumed_from_epoch,
    }
    with open(f"{a.out}.rank{rank}", "w") as f:
        json.dump(blob, f)
    if rank == 0:
        with open(a.out, "w") as f:
            json.dump(blob, f)


if __name__ == "__main__":
    main()
