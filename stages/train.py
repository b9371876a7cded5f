"""train@<exp>: fit a shallow baseline or train an embedding network; log the run to MLflow.

    python stages/train.py <exp> <data_dir> <model_dir> <report_dir>

Writes <model_dir>/model.pt and run.json, <report_dir>/history.csv and training_curves.png.
An interrupted run (Ctrl-C, SIGKILL, preemption) resumes from checkpoints/<exp>/ when started
again with the same params; that folder is removed once training has finished.
Runs unchanged under ``torchrun --nproc_per_node=N`` (rank 0 alone writes and logs).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import pandas as pd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment")
    p.add_argument("data_dir", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("report_dir", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--checkpoints", type=Path, default=Path("checkpoints"))
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    from simlearn.config import experiment_config, load_params, to_dict
    from simlearn.data.image_dataset import load_image_dataset
    from simlearn.engine import fit, init_distributed
    from simlearn.models import save_model
    from simlearn.tasks.metric import MetricTask, fit_baseline, validation_figures
    from simlearn.tasks.simclr import SimCLRTask

    params = load_params(args.params)
    cfg = experiment_config(params, args.experiment)
    section = to_dict(cfg)
    ds = load_image_dataset(args.data_dir)
    info = init_distributed(cfg.train.device)
    ckpt_dir = args.checkpoints / args.experiment

    from simlearn import tracking

    run_id = None
    if info.is_main:
        run_id = _resume_run_id(ckpt_dir, section) or tracking.start_run(
            args.experiment,
            section,
            dataset=cfg.dataset,
            extra_tags={"task": cfg.task, "model": cfg.model.name},
        )
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / "run.json").write_text(json.dumps({"run_id": run_id, "section": section}))
        tracking.log_dataset(
            run_id,
            ds.manifest,
            name=cfg.dataset,
            source=str(args.data_dir.resolve()),
            context="training",
        )

    t0 = time.perf_counter()
    if cfg.model.shallow:
        model, spec = fit_baseline(cfg, ds)
        row = {
            "epoch": 0,
            "loss": float("nan"),
            "lr": 0.0,
            "seconds": time.perf_counter() - t0,
            "samples": 0,
            "samples_per_s": 0.0,
        }
        row.update(validation_figures(cfg, ds, model, "cpu"))
        history, device, samples_per_s = [row], "cpu", 0.0
    else:
        task = SimCLRTask(cfg, ds) if cfg.task == "simclr" else MetricTask(cfg, ds)
        result = fit(
            task,
            cfg.train,
            seed=cfg.seed,
            checkpoint_dir=ckpt_dir,
            fingerprint=tracking.params_hash(section),
            on_epoch_end=(lambda r: tracking.log_metrics(run_id, r, step=int(r["epoch"])))
            if info.is_main
            else None,
            progress=not args.no_progress,
            desc=args.experiment,
        )
        model, spec = task.embedder, task.spec  # simclr: f alone, its projection head dropped
        history, device, samples_per_s = result.history, result.device, result.samples_per_s
    if not info.is_main:
        return {}

    seconds = time.perf_counter() - t0
    args.model_dir.mkdir(parents=True, exist_ok=True)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    save_model(args.model_dir / "model.pt", model, spec)
    tracking.write_run_file(args.model_dir / "run.json", run_id, args.experiment)
    hist = pd.DataFrame(history)
    hist.to_csv(args.report_dir / "history.csv", index=False)
    summary = {
        "train_seconds": seconds,
        "samples_per_s": samples_per_s,
        "epochs": float(len(history)),
    }
    if "val_map" in hist:
        summary["final_val_map"] = float(hist["val_map"].iloc[-1])
    tracking.log_metrics(run_id, summary)
    tracking.set_tags(run_id, {"device": device})
    tracking.log_artifact(run_id, args.report_dir / "history.csv", "train")
    if len(hist) > 1:
        from simlearn.plots import plot_training_history

        fig = plot_training_history(
            hist, args.report_dir / "training_curves.png", title=f"{args.experiment}: training"
        )
        tracking.log_artifact(run_id, fig, "figures")
    example = ds.images[ds.indices("train")[:2]]
    from simlearn.models import to_input

    tracking.log_torch_model(run_id, model, to_input(example).numpy())
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: nothing left to resume
    print(
        f"[{args.experiment}] trained in {seconds:.1f}s on {device}; "
        f"{samples_per_s:.0f} samples/s; MLflow run {run_id}",
        flush=True,
    )
    return summary


def _resume_run_id(ckpt_dir: Path, section: dict) -> str | None:
    """The MLflow run of an interrupted training with the same params, if any."""
    f = ckpt_dir / "run.json"
    if not (ckpt_dir / "checkpoint.pt").exists() or not f.exists():
        return None
    data = json.loads(f.read_text())
    return data["run_id"] if data.get("section") == section else None


if __name__ == "__main__":
    main()
