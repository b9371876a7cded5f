"""The edit-rerun loop: edit one experiment's params, rerun ``dvc repro``, and see where the time
goes, stage by stage, split into start-up (interpreter and imports) and work.

Run: ``python benchmarks/bench_pipeline.py [--experiment batch_hard] [--repeats 2]``.

In a temporary git repo holding this project's code and a params.yaml reduced to the
experiment's dataset and that one experiment (plus ``raw`` and ``triplet`` when the
distances stage needs them), it runs ``dvc repro`` once to build everything, then ``--repeats``
times: edit ``train.lr`` of the experiment, ``dvc repro``, timed as a whole. Then each stage the
edit reran is run again by hand with ``python -X importtime``: its wall time, the time to start
the interpreter and import what the stage imports (start-up), and the rest (work). What ``dvc
repro`` takes beyond the stages is DVC's own overhead (hashing, lock, its own start-up).

Last, the floor that separate processes cannot beat: the same stages' ``main`` run one after the
other in ONE interpreter (``--no-one-process`` skips it), so every library is imported once. The
gap between that total and the stages run by hand is what the separate processes cost.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return wall, res.stdout + res.stderr


def import_seconds(stderr: str) -> float:
    """Total of the top-level cumulative times that ``python -X importtime`` printed."""
    total = 0
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if m and len(m.group(3)) == 1:  # depth 0: one space after the bar
            total += int(m.group(2))
    return total / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--experiment", default="batch_hard")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument(
        "--no-one-process",
        dest="one_process",
        action="store_false",
        help="skip the run of every stage in one interpreter",
    )
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    exp = params["experiments"][args.experiment]
    keep = {args.experiment, "raw", "triplet"}
    experiments = {k: v for k, v in params["experiments"].items() if k in keep}
    datasets = {k: v for k, v in params["datasets"].items() if k == exp["dataset"]}
    if any(v["dataset"] not in datasets for v in experiments.values()):
        raise SystemExit("raw and triplet must use the experiment's dataset for this benchmark")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        for item in ("dvc.yaml", "stages", "src", ".dvc", ".dvcignore", ".gitignore"):
            src = ROOT / item
            if src.is_dir():
                shutil.copytree(
                    src, repo / item, ignore=shutil.ignore_patterns("__pycache__", "tmp")
                )
            else:
                shutil.copy(src, repo / item)
        params_out = {**params, "datasets": datasets, "experiments": experiments}
        (repo / "params.yaml").write_text(yaml.safe_dump(params_out, sort_keys=False))
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"]):
            sh(cmd, repo, env)
        sh(["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"], repo, env)
        wall, _ = sh([str(BIN / "dvc"), "repro"], repo, env)
        print(f"first dvc repro (download, validate, {len(experiments)} experiments): {wall:.1f} s")

        loops = []
        for i in range(args.repeats):
            p = yaml.safe_load((repo / "params.yaml").read_text())
            train = p["experiments"][args.experiment].setdefault("train", {})
            train["lr"] = float(train.get("lr", 3e-3)) * (1.1 if i % 2 == 0 else 1 / 1.1)
            (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
            wall, out = sh([str(BIN / "dvc"), "repro"], repo, env)
            ran = re.findall(r"Running stage '([^']+)'", out)
            loops.append(wall)
            print(f"edit {i + 1}: dvc repro {wall:.1f} s, reran {', '.join(ran)}")

        dvcfile = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
        cmds = {
            "check_params": dvcfile["check_params"]["cmd"],
            "train": dvcfile["train"]["do"]["cmd"],
            "embed": dvcfile["embed"]["do"]["cmd"],
            "evaluate": dvcfile["evaluate"]["do"]["cmd"],
            "report": dvcfile["report"]["cmd"],
        }
        python_s = min(sh([sys.executable, "-c", "pass"], repo, env)[0] for _ in range(3))
        print(f"\npython start alone: {python_s:.2f} s")
        print(f"{'stage':<14}{'wall s':>8}{'start-up s':>12}{'work s':>8}")
        total = 0.0
        argvs = {}
        for name, cmd in cmds.items():
            cmd = cmd.replace("${key}", args.experiment).replace("${item.dataset}", exp["dataset"])
            argv = argvs[name] = cmd.split()
            t0 = time.perf_counter()
            res = subprocess.run(
                [sys.executable, "-X", "importtime", *argv[1:]],
                cwd=repo,
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.perf_counter() - t0
            if res.returncode:
                raise SystemExit(f"{cmd} failed:\n{res.stderr[-3000:]}")
            startup = python_s + import_seconds(res.stderr)
            total += wall
            print(f"{name:<14}{wall:>8.2f}{startup:>12.2f}{wall - startup:>8.2f}")
        mean = sum(loops) / len(loops)
        print(f"{'stages':<14}{total:>8.2f}")
        print(f"\nedit-rerun loop: dvc repro {mean:.1f} s (mean of {len(loops)} edits)")
        print(f"the same stages by hand: {total:.1f} s; DVC's own share: {mean - total:.1f} s")
        if args.one_process:
            one_process(repo, env, argvs, total)


ONE_PROCESS = r"""
import runpy, sys, time
sys.path.insert(0, "src")
for name, argv in STAGES:
    sys.argv = argv
    t = time.perf_counter()
    try:
        runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise
    print(f"ONE {name} {time.perf_counter() - t:.3f}", file=sys.stderr, flush=True)
"""


def one_process(repo: Path, env: dict, argvs: dict[str, list[str]], by_hand: float) -> None:
    """Run every stage's script, in order, in one interpreter; print each one's wall time."""
    stages = [(name, argv[1:]) for name, argv in argvs.items()]
    code = f"STAGES = {stages!r}\n{ONE_PROCESS}"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True,
                         text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"one-process run failed:\n{res.stderr[-3000:]}")
    print("\nthe same stages in ONE process (each library imported once):")
    for line in res.stderr.splitlines():
        if line.startswith("ONE "):
            _, name, sec = line.split()
            print(f"{name:<14}{float(sec):>8.2f}")
    print(f"{'process':<14}{wall:>8.2f}   (separate processes: {by_hand:.1f} s)")


if __name__ == "__main__":
    main()
