"""train@<exp>: fit a shallow baseline or train an embedding network; log the run to MLflow.

    python stages/train.py <exp> <data_dir> <model_dir> <report_dir>

Writes <model_dir>/model.pt, run.json, example.npy (an input batch for the MLflow model
signature) and experiment.json (the params it was trained with, which ``embed@`` and
``evaluate@`` read: :func:`simlearn.tasks.write_trained_config`), <report_dir>/history.csv and
training_curves.png. The ``report`` stage logs the model
to the run and registers it (:func:`simlearn.tracking.publish_model`).
An interrupted run (Ctrl-C, SIGKILL, preemption) resumes from checkpoints/<exp>/ when started
again with the same params; that folder is removed once training has finished.
Runs unchanged under ``torchrun --nproc_per_node=N`` (rank 0 alone writes and logs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path


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
    from simlearn import tasks
    from simlearn.config import ConfigError, load_params
    from simlearn.engine import TrainerBusyError, checkpoint_lock, init_distributed

    params = load_params(args.params)
    cfg = tasks.experiment_config(params, args.experiment)
    processes = cfg.train.processes()
    if processes > 1 and "WORLD_SIZE" not in os.environ:  # train.devices: run under torchrun
        raise SystemExit(_launch(processes, args.experiment, argv))
    try:  # every check, those that need the data included, before an MLflow run exists
        data = tasks.load(cfg, args.data_dir)
    except ConfigError as e:
        raise ConfigError(f"experiments.{args.experiment}.{e}") from None
    info = init_distributed(cfg.train.device)
    ckpt_dir = args.checkpoints / args.experiment
    try:  # one trainer per experiment: a second one fails here, naming the first one's PID
        with checkpoint_lock(ckpt_dir) if info.is_main else nullcontext():
            return _train(args, cfg, data, info, ckpt_dir, params)
    except TrainerBusyError as e:
        print(f"train@{args.experiment}: {e}", file=sys.stderr)
        raise SystemExit(1) from None


def _train(args, cfg, data, info, ckpt_dir: Path, params: dict) -> dict[str, float]:
    from simlearn import tasks, tracking
    from simlearn.config import to_dict

    section = to_dict(cfg)
    run = nullcontext(None)
    if info.is_main:  # RUNNING now; FINISHED when the block ends, FAILED/KILLED if it raises
        described = tasks.get(cfg.task).describe(cfg)
        run = tracking.training_run(
            args.experiment,
            section,
            dataset=cfg.dataset,
            resume_run_id=_resume_run_id(ckpt_dir, section),
            layout=tracking.config(params).experiment_per,
            description=described.get("description"),
            source="stages/train.py",
            extra_tags=_tags(cfg.task, described),
        )
    with run as run_id:
        return _train_in_run(args, cfg, data, info, ckpt_dir, section, run_id, params)


def _train_in_run(args, cfg, data, info, ckpt_dir, section, run_id, params) -> dict[str, float]:
    import numpy as np
    import pandas as pd

    from simlearn import tasks, tracking

    if info.is_main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        (ckpt_dir / "run.json").write_text(json.dumps({"run_id": run_id, "section": section}))
        tracking.log_dataset(
            run_id,
            data.manifest,
            name=cfg.dataset,
            source=str(args.data_dir.resolve()),
            context="training",
        )

    t0 = time.perf_counter()
    trained = tasks.train(
        cfg,
        data,
        checkpoint_dir=ckpt_dir,
        fingerprint=tracking.params_hash(section),
        on_epoch_end=(lambda r: tracking.log_metrics(run_id, r, step=int(r["epoch"])))
        if info.is_main
        else None,
        progress=not args.no_progress,
        desc=args.experiment,
    )
    if not info.is_main:
        return {}
    tracking.log_missing_epochs(run_id, trained.history)  # an epoch whose log failed, resumed

    seconds = time.perf_counter() - t0
    for out in (args.model_dir, args.report_dir):  # persist outputs (dvc.yaml): DVC kept the
        shutil.rmtree(out, ignore_errors=True)  # old ones through the checks and the training
    args.model_dir.mkdir(parents=True, exist_ok=True)
    args.report_dir.mkdir(parents=True, exist_ok=True)
    from simlearn.models import save_model

    save_model(args.model_dir / "model.pt", trained.model, trained.spec)
    tasks.write_trained_config(args.model_dir, params, args.experiment)  # embed@ and evaluate@
    np.save(args.model_dir / "example.npy", tasks.example_input(cfg, data))
    tracking.write_run_file(args.model_dir / "run.json", run_id, args.experiment)
    hist = pd.DataFrame(trained.history)
    hist.to_csv(args.report_dir / "history.csv", index=False)
    summary = {
        "train_seconds": seconds,
        "samples_per_s": trained.samples_per_s,
        "epochs": float(len(trained.history)),
    }
    if "val_map" in hist:
        summary["final_val_map"] = float(hist["val_map"].iloc[-1])
    tracking.log_metrics(run_id, summary)
    tracking.set_tags(run_id, {"device": trained.device})
    tracking.log_artifact(run_id, args.report_dir / "history.csv", "train")
    if len(hist) > 1:
        from simlearn.plots.training import plot_training_history

        fig = plot_training_history(
            hist, args.report_dir / "training_curves.png", title=f"{args.experiment}: training"
        )
        tracking.log_artifact(run_id, fig, "figures")
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # finished: nothing left to resume
    print(
        f"[{args.experiment}] trained in {seconds:.1f}s on {trained.device}; "
        f"{trained.samples_per_s:.0f} samples/s; MLflow run {run_id}",
        flush=True,
    )
    return summary


def _launch(processes: int, experiment: str, argv: list[str] | None) -> int:
    """This stage again under ``torch.distributed.run`` with ``processes`` processes (one per GPU,
    or gloo on the CPU); its exit status. Rank 0 writes the outputs and logs the MLflow run,
    exactly as a hand-typed ``torchrun --standalone --nproc_per_node=N stages/train.py ...``."""
    import subprocess

    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # one machine; a free port for the rendezvous
        f"--nproc_per_node={processes}",
        str(Path(__file__).resolve()),
        *(sys.argv[1:] if argv is None else argv),
    ]
    print(f"[{experiment}] train.devices: {processes} processes: {' '.join(cmd)}", flush=True)
    return subprocess.call(cmd)  # noqa: S603 (this interpreter, this script, its own arguments)


def _tags(task: str, described: dict) -> dict[str, str]:
    """Run tags for searching and grouping in the MLflow UI: the task, model and loss names."""
    return {"task": task, **{k: str(described[k]) for k in ("model", "loss") if k in described}}


def _resume_run_id(ckpt_dir: Path, section: dict) -> str | None:
    """The MLflow run of an interrupted training with the same params, if any."""
    f = ckpt_dir / "run.json"
    if not (ckpt_dir / "checkpoint.pt").exists() or not f.exists():
        return None
    data = json.loads(f.read_text())
    return data["run_id"] if data.get("section") == section else None


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    from simlearn.tasks import one_message

    with one_message(f"train@{sys.argv[1] if len(sys.argv) > 1 else '?'}"):
        main()
