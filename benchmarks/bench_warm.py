"""What the warm server's warm-up (:func:`simlearn.warm.warm_up`) saves the stage that logs a
newly trained model: the report stage, after every edit of an experiment.

Run: ``python benchmarks/bench_warm.py [--repeats 3]``.

Each repeat runs two processes one after the other, in alternating order: each imports the
warm server's libraries (:func:`simlearn.warm.preload`), one of them then runs ``warm_up()``,
and each forks a child, as the server does for a stage. The child logs the digits convnet of
``batch_hard`` (its params from params.yaml, random weights) to a new run in a temporary SQLite
store, as the report stage does after a training (:func:`simlearn.tracking.log_torch_model`:
``torch.export``, MLflow's ``log_model``, registration), twice: the first call is what a stage
pays, the second what each later model in the same process costs. Prints the seconds of both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(warm_up: bool, store: Path) -> dict:
    """Import the preloaded libraries, warm up or not, fork and time two model logs there."""
    import importlib

    sys.path.insert(0, str(ROOT / "src"))
    from simlearn import warm

    for name in warm.preload():
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 (what the server skips)
            continue
    t0 = time.perf_counter()
    done = warm.warm_up() if warm_up else []
    warm_s = time.perf_counter() - t0
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the stage, as the server forks it
        os.close(r)
        try:
            os.write(w, json.dumps(_log_two_models(store)).encode())
        except BaseException:  # noqa: BLE001 (said on stderr; the parent fails on no result)
            import traceback

            traceback.print_exc()
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        times = json.loads(f.read() or "null")
    os.waitpid(pid, 0)
    if times is None:
        raise SystemExit("the forked stage failed (its traceback is above)")
    return {"warm_up": done, "warm_up_s": warm_s, "first": times[0], "second": times[1]}


def _log_two_models(store: Path) -> list[float]:
    """Seconds of two :func:`simlearn.tracking.log_torch_model` calls, each to a new run."""
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    import numpy as np
    import yaml

    from simlearn import tasks, tracking
    from simlearn.config import to_dict
    from simlearn.models import build_model

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = tasks.experiment_config(params, "batch_hard")
    spec = {**to_dict(cfg.model), "in_channels": 1, "input_mean": [0.0],
            "input_std": [1.0]}  # fmt: skip
    example = np.zeros((2, 1, 8, 8), dtype=np.float32)  # the shape of its example.npy
    times = []
    for i in range(2):
        run_id = tracking.start_run(f"bench{i}", {"task": "metric"}, dataset="digits",
                                    root=store)  # fmt: skip
        model = build_model(spec).eval()
        t = time.perf_counter()
        tracking.log_torch_model(run_id, model, example)
        times.append(time.perf_counter() - t)
        tracking.finish_run(run_id)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", choices=("warm", "cold"), help=argparse.SUPPRESS)
    ap.add_argument("--store", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child == "warm", args.store)))
        return
    env = {**os.environ}
    env.pop("SIMLEARN_WARM_PRELOAD", None)
    rows = {"cold": [], "warm": []}
    for i in range(args.repeats):
        for kind in ("cold", "warm") if i % 2 == 0 else ("warm", "cold"):
            with tempfile.TemporaryDirectory() as tmp:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", kind, "--store", tmp], cwd=ROOT,
                    env=env, capture_output=True, text=True, check=True,
                )  # fmt: skip
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rows[kind].append(res)
            print(f"repeat {i + 1}, server {'with' if kind == 'warm' else 'without'} warm-up "
                  f"({', '.join(res['warm_up']) or 'none'}, {res['warm_up_s']:.2f} s in the "
                  f"server): a stage's first model logged in {res['first']:.2f} s, "
                  f"its second in {res['second']:.2f} s", flush=True)  # fmt: skip
    for kind in ("cold", "warm"):
        firsts = [r["first"] for r in rows[kind]]
        print(f"{'with' if kind == 'warm' else 'without'} warm-up: first model "
              f"{sum(firsts) / len(firsts):.2f} s (mean of {len(firsts)}: "
              f"{', '.join(f'{x:.2f}' for x in firsts)})")  # fmt: skip


if __name__ == "__main__":
    main()
