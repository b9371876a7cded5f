"""evaluate@<exp>: the task's metrics, curves and figures for an experiment, from what ``embed``
wrote.

    python stages/evaluate.py <exp> <embeddings.npz> <data_dir> <out_dir> [--config FILE]

Writes <out_dir>/metrics.json, <out_dir>/figures/*.png and reports/curves/<exp>/<kind>.csv
(columns x, y; one file per curve kind, for ``dvc plots``). The experiment's params are those
its model was trained with (``--config``, by default ``models/<exp>/experiment.json``, written
by ``train@``; dvc.yaml lists that file as a dependency). The protocol is the task's: for the
image tasks, see simlearn.evaluation.protocol. The ``report`` stage adds all of it to the
experiment's MLflow run (:func:`simlearn.tracking.publish_evaluation`): this stage imports no
MLflow, which saves about 2 s per experiment.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("experiment")
    p.add_argument("embeddings", type=Path)
    p.add_argument("data_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument(
        "--config",
        type=Path,
        help="the experiment's params as trained (default: models/<exp>/experiment.json)",
    )
    p.add_argument("--curves", type=Path, default=Path("reports/curves"))
    return p.parse_args(argv)


def write_metrics(path: Path, metrics: dict[str, float]) -> None:
    """Sorted keys, NaN written as null (JSON has no NaN)."""
    clean = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in sorted(metrics.items())
    }
    path.write_text(json.dumps(clean, indent=2) + "\n")


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    from simlearn import tasks

    name = args.experiment
    config = args.config or Path("models") / name / tasks.TRAINED_CONFIG
    cfg = tasks.trained_config(config, name)  # as trained (train@ wrote it), not params.yaml's
    from simlearn.data.readers import read_npz

    arrays = read_npz(args.embeddings, remedy=f"`dvc repro embed@{name}` writes it again.")
    data = tasks.load(cfg, args.data_dir, check=False)  # train@ checked it
    figs = args.out_dir / "figures"
    shutil.rmtree(figs, ignore_errors=True)  # a persist output (dvc.yaml): only this run's
    figs.mkdir(parents=True, exist_ok=True)
    result = tasks.evaluate(cfg, arrays, data, figs, name)
    write_metrics(args.out_dir / "metrics.json", result.metrics)
    curve_dir = args.curves / name
    if curve_dir.exists():
        shutil.rmtree(curve_dir)  # only this run's curves
    curve_dir.mkdir(parents=True)
    for kind, table in result.curves.items():
        table.to_csv(curve_dir / f"{kind}.csv", index=False)

    shown = ", ".join(f"{k}={result.metrics[k]:.4f}" for k in result.summary if k in result.metrics)
    print(f"[{name}] {shown}")
    return result.metrics


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    from simlearn.tasks import one_message

    with one_message(f"evaluate@{sys.argv[1] if len(sys.argv) > 1 else '?'}"):
        main()
