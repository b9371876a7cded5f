"""embed@<exp>: embed every sample of the experiment's dataset with its trained model.

    python stages/embed.py <exp> <model_dir> <data_dir> <out.npz>

Writes <out.npz> with ``embeddings`` float32 (N, D), ``labels`` int64 (N,), ``ids`` (N,),
``split`` (N,) and ``holdout`` bool (N,) (classes the model never saw in training).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment")
    p.add_argument("model_dir", type=Path)
    p.add_argument("data_dir", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    from simlearn import tracking
    from simlearn.config import experiment_config, load_params
    from simlearn.data.image_dataset import load_image_dataset
    from simlearn.engine import pick_device
    from simlearn.models import embed_images, load_model

    cfg = experiment_config(load_params(args.params), args.experiment)
    ds = load_image_dataset(args.data_dir)
    model, _ = load_model(args.model_dir / "model.pt")
    device = pick_device(cfg.train.device)
    t0 = time.perf_counter()
    emb = embed_images(model, ds.images, device)
    seconds = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.npz")
    np.savez_compressed(
        tmp,
        embeddings=emb,
        labels=ds.labels,
        ids=ds.ids,
        split=ds.splits,
        holdout=np.isin(ds.labels, np.asarray(cfg.holdout_classes, dtype=np.int64)),
    )
    tmp.replace(args.out)
    run_id = tracking.read_run_file(args.model_dir / "run.json")
    tracking.log_metrics(
        run_id,
        {"embed_seconds": seconds, "embedding_dim": emb.shape[1], "embedded_samples": len(emb)},
    )
    print(f"[{args.experiment}] embedded {len(emb)} samples -> {emb.shape[1]}-d in {seconds:.1f}s")
    return args.out


if __name__ == "__main__":
    main()
