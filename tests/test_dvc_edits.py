"""Real DVC runs in a copy of the repository: what a careless or hostile params.yaml can do.

- No params value that is not a plain name reaches a shell, whatever subset of stages runs
  (``dvc repro -s``, ``--downstream``, ``dvc exp run -s``): stages/cmd_guard.py runs first.
- A refused edit deletes nothing: after a failed check_params, a stage that refuses its section
  or its data, or a dependency that a typo names, every earlier output is still there, byte for
  byte, and once params.yaml is fixed DVC finds nothing to do.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.projects import DIGITS_PARAMS, copy_reproduced, dvc, user_env

ALWAYS_RUN = {"check_params"}  # dvc.yaml: always_changed, same output
PARAMS = DIGITS_PARAMS


def outputs(repo: Path) -> dict[str, str]:
    """Every file the pipeline wrote, with its MD5."""
    return {
        p.relative_to(repo).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for top in ("data", "models", "reports")
        for p in sorted((repo / top).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def repo(
    reproduced_digits: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str], str]:
    """A copy of the session's reproduced digits project (committed: `dvc exp run` starts from
    that commit), its user's environment and the log of its `dvc repro`."""
    template, log = reproduced_digits
    repo = copy_reproduced(template, tmp_path_factory.mktemp("edits") / "repo")
    return repo, user_env(repo), log


@pytest.mark.slow
def test_plain_names_pass_the_guard_and_every_stage_runs(repo):
    _, _, log = repo
    ran = re.findall(r"Running stage '([^']+)'", log)
    foreach = [s for s in ran if "@" in s]
    assert len(foreach) == 2 + 3 * 2  # download, validate; train, embed, evaluate x 2
    assert log.count("> python stages/cmd_guard.py") == len(foreach)


def _with_params(repo: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    params = json.loads(json.dumps(PARAMS))
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_no_name_reaches_the_shell_whatever_subset_of_stages_runs(repo, tmp_path):
    repo, env, _ = repo
    before = outputs(repo)
    bad_exp = "x;touch pwned_train;x"  # relative: the shell's cwd is the repo
    bad_nl = "n\ntouch pwned_newline"
    bad_ds = "d;touch pwned_download;d"
    bad_value = "digits;touch pwned_dataset;x"

    def hostile(p: dict[str, Any]) -> None:
        exp = p["experiments"]["raw"]
        p["experiments"][bad_exp] = exp
        p["experiments"][bad_nl] = exp
        p["experiments"]["plain"] = {**exp, "dataset": bad_value}
        p["datasets"][bad_ds] = {"source": "digits"}

    _with_params(repo, hostile)
    # the dependencies each stage needs before DVC runs its cmd, so that only the guard stands
    # between the name and the shell
    (repo / f"reports/local_files/{bad_ds}.json").write_text("{}\n")
    (repo / f"data/{bad_value}").mkdir()
    (repo / f"data/{bad_value}/digest.json").write_text("{}\n")  # what train@ depends on
    (repo / f"reports/validation/{bad_value}.json").write_text("{}\n")
    (repo / f"models/{bad_exp}").mkdir()
    (repo / f"models/{bad_exp}/x").write_text("x\n")
    try:
        attempts = [
            ("repro", "-s", f"train@{bad_exp}"),
            ("repro", "-s", f"embed@{bad_exp}"),
            ("repro", "-s", f"train@{bad_nl}"),
            ("repro", "-s", "train@plain"),
            ("repro", "-s", f"download@{bad_ds}"),
            ("repro", "--downstream", "-s", f"download@{bad_ds}"),
            ("repro", "--downstream", f"train@{bad_exp}"),
            ("exp", "run", "-s", f"train@{bad_exp}"),
        ]
        for args in attempts:
            out = dvc(repo, env, *args, ok=False)
            assert "cmd_guard: stage" in out and "is not allowed in a command" in out, out[-3000:]
            assert not list(repo.glob("pwned*")), args
    finally:
        (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
        # (dvc exp run restores the workspace of its baseline commit: some are gone already)
        for folder in (f"data/{bad_value}", f"models/{bad_exp}"):
            shutil.rmtree(repo / folder, ignore_errors=True)
        for f in (f"reports/local_files/{bad_ds}.json", f"reports/validation/{bad_value}.json"):
            (repo / f).unlink(missing_ok=True)
    subprocess.run(["git", "checkout", "--", "."], cwd=repo, env=env, capture_output=True)
    assert outputs(repo) == before


def _typo_in_dataset(p: dict[str, Any]) -> None:
    p["experiments"]["triplet"]["dataset"] = "digitz"


def _text_lr(p: dict[str, Any]) -> None:
    p["experiments"]["triplet"]["train"]["lr"] = "1e-3"


def _too_many_classes(p: dict[str, Any]) -> None:
    p["experiments"]["triplet"]["sampler"]["classes_per_batch"] = 11  # digits has 10


def _typo_in_source(p: dict[str, Any]) -> None:
    p["datasets"]["digits"]["source"] = "digitz"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("edit", "refused_by", "then"),
    [
        # the sequences: check_params refuses, then a subset runs on fixed params
        (_typo_in_dataset, ("repro",), ("repro", "-s", "train@triplet")),
        (_typo_in_dataset, ("repro",), ("repro", "--downstream", "-s", "download@digits")),
        # a subset runs on the refused edit itself: a missing dependency (DVC), the stage's own
        # section, the data (P > classes), the dataset's section
        (_typo_in_dataset, ("repro", "-s", "train@triplet"), ("repro", "-s", "train@triplet")),
        (_text_lr, ("repro", "-s", "train@triplet"), ("repro",)),
        (_too_many_classes, ("repro", "-s", "train@triplet"), ("repro", "-s", "train@triplet")),
        (_typo_in_source, ("repro", "--downstream", "-s", "download@digits"), ("repro",)),
        (
            _typo_in_source,
            ("repro", "-s", "download@digits"),
            ("repro", "--downstream", "-s", "download@digits"),
        ),
    ],
)
def test_a_refused_edit_deletes_nothing(repo, edit, refused_by, then):
    repo, env, _ = repo
    before = outputs(repo)
    _with_params(repo, edit)
    dvc(repo, env, *refused_by, ok=False)
    assert outputs(repo) == before  # nothing deleted, nothing half-written
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    out = dvc(repo, env, *then)
    assert set(re.findall(r"Running stage '([^']+)'", out)) <= ALWAYS_RUN, out[-3000:]
    assert outputs(repo) == before
    status = json.loads(dvc(repo, env, "status", "--json"))
    assert set(status) <= ALWAYS_RUN, status
