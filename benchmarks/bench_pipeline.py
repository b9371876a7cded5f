"""The edit-rerun loop of the full default project: edit one experiment's params, ``dvc repro``,
and see where the time goes: DVC's own share, each stage cold and warm, and the one-process floor.

Run: ``python benchmarks/bench_pipeline.py [--project .] [--experiment batch_hard] [--repeats 3]``.

It copies ``--project`` (every experiment of its params.yaml, with its data, models, DVC cache
and MLflow store; not its .venv) to a temporary folder, runs ``dvc repro`` there once if anything
is stale (printed apart), then ``--repeats`` times: change ``train.lr`` of the experiment (a new
value each time, so DVC's run cache cannot skip the training), ``dvc repro``, timed as a whole:
the loop a user lives in; each stage it reran is timed from DVC's "Running stage" line to the
next (its commands, then DVC caching its outputs, rewriting dvc.lock and checking stages).
Then each command those reruns executed (DVC prints them) is run again
by hand, warm (handed to the warm server, :mod:`simlearn.warm`, as ``dvc repro`` does) and cold
(``SIMLEARN_WARM=0``: a new interpreter importing everything); what ``dvc repro`` takes beyond
the warm commands is DVC's own share (its start-up, hashing, dvc.lock); ``dvc status`` is timed
with the stages depending on each dataset's ``digest.json`` (dvc.yaml) and, side by side, on the
dataset folder, as they did before. Last, the floor that
separate processes cannot beat: the same commands run one after another in ONE interpreter
(``--no-one-process`` skips it).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SKIP = (".venv", "venv", ".git/lfs", "__pycache__", ".pytest_cache", ".ruff_cache", "tmp")


def sh(cmd: list[str] | str, cwd: Path, env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=isinstance(cmd, str)
    )
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"{cmd} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return wall, res.stdout + res.stderr


def repro_timed(repo: Path, env: dict) -> tuple[float, str, list[tuple[str, float]]]:
    """``dvc repro`` in ``repo``: its wall time, output, the seconds to the first stage it runs
    (DVC's start-up and checks), and each stage it ran with the seconds from DVC's "Running
    stage" line to the next one (or to the end): the stage's commands, then
    DVC hashing and caching its outputs, rewriting dvc.lock and checking the stages up to the
    next one that runs."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "dvc"), "repro"], cwd=repo, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, bufsize=1,
    )  # fmt: skip
    lines, marks = [], []
    for line in proc.stdout:
        lines.append(line)
        m = re.match(r"Running stage '([^']+)'", line)
        if m:
            marks.append((m.group(1), time.perf_counter()))
    proc.wait()
    end = time.perf_counter()
    out = "".join(lines)
    if proc.returncode:
        raise SystemExit(f"dvc repro failed:\n{out[-3000:]}")
    spans = [(name, (marks[i + 1][1] if i + 1 < len(marks) else end) - t)
             for i, (name, t) in enumerate(marks)]  # fmt: skip
    return end - t0, out, [("start-up and checks", (marks[0][1] if marks else end) - t0), *spans]


def executed(out: str) -> list[tuple[str, str]]:
    """(stage, command) of every command ``dvc repro`` ran, from its ``> command`` lines."""
    stage, found = "", []
    for line in out.splitlines():
        m = re.match(r"Running stage '([^']+)'", line)
        if m:
            stage = m.group(1)
        elif line.startswith("> ") and stage:
            found.append((stage, line[2:].strip()))
    return found


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # progress shows while it runs
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--project", type=Path, default=ROOT, help="a project after its dvc repro")
    ap.add_argument("--experiment", default="batch_hard")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--no-one-process",
        dest="one_process",
        action="store_false",
        help="skip the run of every command in one interpreter",
    )
    args = ap.parse_args()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("SIMLEARN_WARM", None)
    cold_env = {**env, "SIMLEARN_WARM": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        t0 = time.perf_counter()
        shutil.copytree(args.project, repo, symlinks=True, ignore=shutil.ignore_patterns(*SKIP))
        params = yaml.safe_load((repo / "params.yaml").read_text())
        n_exp = len(params["experiments"])
        print(f"copied {args.project} ({n_exp} experiments) in {time.perf_counter() - t0:.1f} s")
        wall, out = sh([str(BIN / "dvc"), "repro"], repo, env)
        ran = [s for s, _ in executed(out)]
        print(f"first dvc repro: {wall:.1f} s, {len(set(ran))} stages run (stale in the copy)")
        print(f"warm server ready {wait_for_warm_server(repo, env):.1f} s after it")

        loops, commands = [], []
        for i in range(args.repeats):
            p = yaml.safe_load((repo / "params.yaml").read_text())
            train = p["experiments"][args.experiment].setdefault("train", {})
            train["lr"] = float(train.get("lr", 3e-3)) * (1.01 + 0.01 * i)  # new each time
            (repo / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
            wall, out, spans = repro_timed(repo, env)
            commands = executed(out)
            loops.append(wall)
            print(f"edit {i + 1}: dvc repro {wall:.1f} s: "
                  + ", ".join(f"{name} {sec:.1f} s" for name, sec in spans))  # fmt: skip

        print(f"\nthe {len(commands)} commands of the last rerun, by hand:")
        print(f"{'stage':<22}{'command':<44}{'cold s':>8}{'warm s':>8}")
        cold_total = warm_total = 0.0
        for stage, cmd in commands:
            as_dvc = {"DVC_STAGE": stage}  # DVC sets it for a stage's commands (cmd_guard reads it)
            cold = sh(cmd, repo, {**cold_env, **as_dvc})[0]
            hot = sh(cmd, repo, {**env, **as_dvc})[0]
            cold_total += cold
            warm_total += hot
            short = cmd if len(cmd) <= 42 else cmd[:39] + "..."
            print(f"{stage:<22}{short:<44}{cold:>8.2f}{hot:>8.2f}")
        print(f"{'total':<66}{cold_total:>8.2f}{warm_total:>8.2f}")
        mean = sum(loops) / len(loops)
        print(f"\nedit-rerun loop: dvc repro {mean:.1f} s (mean of {len(loops)} edits: "
              f"{', '.join(f'{x:.1f}' for x in loops)})")  # fmt: skip
        print(
            f"its commands by hand: {warm_total:.1f} s warm, {cold_total:.1f} s cold; "
            f"DVC's own share: {mean - warm_total:.1f} s"
        )
        status_seconds(repo, env)
        rt, safe, size = lock_parse_seconds(repo)
        rewrite = lock_rewrite_seconds(repo, commands[-1][0] if commands else None)
        print(
            f"dvc.lock: {size / 1000:.0f} KB; DVC re-reads and rewrites it after every stage it "
            f"runs: {rewrite:.2f} s a rewrite (best of 3), of which one round-trip parse "
            f"{rt:.2f} s (the safe loader: {safe:.2f} s)"
        )
        if args.one_process:
            one_process(repo, cold_env, commands, warm_total)


DIGEST_DEP = "data/${item.dataset}/digest.json"


def wait_for_warm_server(repo: Path, env: dict, timeout: float = 180.0) -> float:
    """Seconds until the warm server the first repro started is listening (its socket appears
    once everything is imported): an edit timed before that would run its stages cold, which is
    not the loop a user lives in (the server stays up between edits)."""
    code = "from simlearn import warm; print(warm.socket_path())"
    done = subprocess.run([str(BIN / "python"), "-c", code], cwd=repo, env=env,
                          capture_output=True, text=True, check=True)  # fmt: skip
    path = Path(done.stdout.strip())
    t0 = time.perf_counter()
    while not path.exists():
        if time.perf_counter() - t0 > timeout:
            raise SystemExit(f"no warm server at {path} after {timeout:.0f} s")
        time.sleep(0.2)
    return time.perf_counter() - t0


def status_seconds(repo: Path, env: dict) -> None:
    """``dvc status`` of the whole project (best of 2), as dvc.yaml has it and with the
    per-experiment stages depending on their dataset's folder instead of its digest.json, which
    DVC walks file by file for each stage that lists it."""
    dvc_yaml = repo / "dvc.yaml"
    text = dvc_yaml.read_text()
    variants = {"dataset digest.json deps (dvc.yaml)": text}
    if DIGEST_DEP in text:
        variants["dataset folder deps instead"] = text.replace(DIGEST_DEP, "data/${item.dataset}")
    try:
        for label, variant in variants.items():
            dvc_yaml.write_text(variant)
            best = min(sh([str(BIN / "dvc"), "status"], repo, env)[0] for _ in range(2))
            print(f"dvc status, {label}: {best:.2f} s")
    finally:
        dvc_yaml.write_text(text)


def lock_parse_seconds(repo: Path) -> tuple[float, float, int]:
    """Seconds to parse ``dvc.lock`` as DVC does before rewriting it (ruamel's round-trip
    loader) and with the safe loader, and its size in bytes."""
    from ruamel.yaml import YAML

    text = (repo / "dvc.lock").read_text()
    times = []
    for typ in ("rt", "safe"):
        t0 = time.perf_counter()
        YAML(typ=typ).load(text)
        times.append(time.perf_counter() - t0)
    return times[0], times[1], len(text.encode())


def lock_rewrite_seconds(repo: Path, stage_name: str | None) -> float:
    """Best of 3 of what DVC spends writing one stage's entry into ``dvc.lock`` after running it
    (``Stage.dump``: read the whole file with the round-trip parser, update, write it back);
    the entry is unchanged, so the file keeps its bytes. NaN without a stage."""
    if stage_name is None:
        return float("nan")
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc_repo:
        (stage,) = [s for s in dvc_repo.index.stages if s.name == stage_name]
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            stage.dump(update_pipeline=False)
            times.append(time.perf_counter() - t0)
    return min(times)


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


def one_process(repo: Path, env: dict, commands: list[tuple[str, str]], warm: float) -> None:
    """Run every command's script, in order, in one interpreter; print each one's wall time."""
    stages = []
    for stage, cmd in commands:
        argv = shlex.split(cmd)
        if argv[0] != "python" or argv[1] == "stages/cmd_guard.py":  # a guard, run by DVC only
            continue
        stages.append((stage, argv[1:]))
    code = f"STAGES = {stages!r}\n{ONE_PROCESS}"
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True,
                         text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"one-process run failed:\n{res.stderr[-3000:]}")
    print("\nthe same commands in ONE process (each library imported once):")
    for line in res.stderr.splitlines():
        if line.startswith("ONE "):
            _, name, sec = line.split()
            print(f"{name:<22}{float(sec):>8.2f}")
    print(f"{'one process':<22}{wall:>8.2f}   (separate warm processes: {warm:.1f} s)")


if __name__ == "__main__":
    main()
