"""Temporary copies of this project, for the tests that run DVC as a user would.

One home for what those tests share: which files make a project (:func:`copy_project`), a user's
environment (:func:`user_env`: git identity, the venv's ``dvc`` first on PATH, the copy's own
``src`` on PYTHONPATH, no inherited MLflow URI), git and DVC commands that fail with their output
(:func:`run`, :func:`dvc`, :func:`git_commit`), and :data:`DIGITS_PARAMS`, the smallest project
with every kind of stage (a fitted baseline and a trained model on digits), which
``tests/conftest.py`` reproduces once per session (``reproduced_digits``) for every test module
that starts from a finished ``dvc repro`` and copies it (:func:`copy_reproduced`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: what a clone of the project holds that the pipeline needs (params.yaml is the test's own)
PROJECT_FILES = ("dvc.yaml", "stages", "src", ".dvc", ".dvcignore", ".gitignore")

#: digits with a fitted baseline (raw) and a trained model (triplet, two steps): every kind of
#: stage of dvc.yaml runs (download, validate, train, embed, evaluate, distances, report, ...)
#: digits with a test split of 30% (539 images), each split's size checked
DIGITS: dict[str, Any] = {
    "source": "digits",
    "test_fraction": 0.3,
    "validation": {"min_rows_per_split": 100},
}
DIGITS_PARAMS: dict[str, Any] = {
    "datasets": {"digits": DIGITS},
    "experiments": {
        "raw": {"task": "metric", "dataset": "digits", "model": {"name": "raw"}},
        "triplet": {  # the distances stage reads triplet and raw
            "task": "metric",
            "dataset": "digits",
            "model": {"name": "convnet", "embedding_dim": 8, "width": 4},
            "loss": {"name": "triplet"},
            "sampler": {"steps_per_epoch": 2},
            "train": {"epochs": 1},
        },
    },
}


def write_params(repo: Path, params: Mapping[str, Any]) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(dict(params), sort_keys=False))


def copy_project(dest: Path, params: Mapping[str, Any] | None = None) -> Path:
    """The project's pipeline files copied into ``dest`` (created), with ``params`` as its
    params.yaml; no outputs, no git, no machine-local DVC config (``.dvc/config.local``)."""
    dest.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "tmp", "config.local")
    for item in PROJECT_FILES:
        src = ROOT / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=ignore)
        else:
            shutil.copy(src, dest / item)
    if params is not None:
        write_params(dest, params)
    return dest


def user_env(repo: Path, **extra: str) -> dict[str, str]:
    """A user's shell in ``repo``: this venv's tools first, ``repo/src`` on PYTHONPATH, a git
    identity, MLflow's URI unset (each project logs to its own ``mlflow.db``), plus ``extra``."""
    env = {
        **os.environ,
        "PATH": str(BIN) + os.pathsep + os.environ["PATH"],
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PYTHONPATH": str(repo / "src"),
        **extra,
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def run(
    cmd: list[str], cwd: Path, env: Mapping[str, str], ok: bool = True, timeout: float = 900
) -> str:
    """``cmd``'s stdout and stderr; asserts its exit status is 0 (``ok``) or not, showing why."""
    res = subprocess.run(
        cmd, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout
    )
    out = res.stdout + res.stderr
    assert (res.returncode == 0) == ok, f"{' '.join(cmd)}: exit {res.returncode}\n{out[-4000:]}"
    return out


def dvc(repo: Path, env: Mapping[str, str], *args: str, ok: bool = True) -> str:
    return run([str(BIN / "dvc"), *args], repo, env, ok)


def git_commit(repo: Path, env: Mapping[str, str], message: str, init: bool = False) -> None:
    """``git add -A`` and commit everything in ``repo`` (``git init`` first with ``init``)."""
    if init:
        run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", message], repo, env)


def reproduce(repo: Path, params: Mapping[str, Any]) -> str:
    """``repo``'s params written, committed, ``dvc repro``, the results committed; DVC's log."""
    write_params(repo, params)
    env = user_env(repo)
    git_commit(repo, env, "init", init=True)
    log = dvc(repo, env, "repro")
    git_commit(repo, env, "repro")  # dvc.lock and the reports git keeps
    return log


def copy_reproduced(template: Path, dest: Path) -> Path:
    """A copy of a reproduced project (outputs, DVC cache, MLflow store, git history), as a user
    gets with ``cp -a``: the tests that change it leave the session's template untouched."""
    shutil.copytree(template, dest, symlinks=True)
    return dest
