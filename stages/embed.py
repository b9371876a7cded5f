"""embed@<exp>: run the experiment's trained model over its dataset.

    python stages/embed.py <exp> <model_dir> <data_dir> <out.npz>

Writes <out.npz>: the arrays the task's ``embed`` returns. The experiment's params are those the
model was trained with, ``<model_dir>/experiment.json`` (written by ``train@``), so that what
the stage reads is what DVC tracks for it: the model folder. For the image tasks, ``embeddings``
float32 (N, D), ``labels`` int64 (N,), ``ids`` (N,), ``split`` (N,) and ``holdout`` bool (N,)
(classes the model never saw in training); other tasks write their own (see simlearn.tasks).

It logs nothing to MLflow: the file holds only what the model computes (the same bytes on a
rerun, so an unchanged model leaves ``evaluate`` up to date), and ``evaluate`` logs the shapes.
Not importing MLflow saves about 2 s of start-up per experiment (MLflow's import and its
SQLite store set-up), out of about 5 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment")
    p.add_argument("model_dir", type=Path)
    p.add_argument("data_dir", type=Path)
    p.add_argument("out", type=Path)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    import numpy as np

    from simlearn import tasks
    from simlearn.engine import pick_device

    # the params the model was trained with (train@ wrote them beside it), not params.yaml's
    cfg = tasks.trained_config(args.model_dir / tasks.TRAINED_CONFIG, args.experiment)
    data = tasks.load(cfg, args.data_dir, check=False)  # train@ checked it
    model, _ = tasks.load_model(cfg, args.model_dir)
    device = pick_device(cfg.train.device)
    t0 = time.perf_counter()
    arrays = tasks.embed(cfg, model, data, device)
    seconds = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=args.out.parent, prefix=f".{args.out.stem}.", suffix=".tmp.npz")
    os.close(fd)  # a unique name: two writers never share a temporary file
    try:
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, args.out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"[{args.experiment}] embed in {seconds:.1f}s -> {args.out}: {shapes}")
    return args.out


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    from simlearn.tasks import one_message

    with one_message(f"embed@{sys.argv[1] if len(sys.argv) > 1 else '?'}"):
        main()
