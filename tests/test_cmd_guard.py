"""stages/cmd_guard.py: no params value that is not a plain name reaches the shell of a stage.

The DVC runs (``dvc repro -s``, ``--downstream``, ``dvc exp run``) are in tests/test_dvc_edits.py;
here, what the guard fills in and refuses, and that dvc.yaml puts it first wherever a cmd
interpolates.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("cmd_guard", ROOT / "stages" / "cmd_guard.py")
assert _spec is not None and _spec.loader is not None
cmd_guard = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cmd_guard)

GUARD = "python stages/cmd_guard.py"


@pytest.fixture(scope="module")
def stages() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def params(experiment: str = "triplet", dataset: str = "digits") -> dict[str, Any]:
    return {
        "datasets": {dataset: {"source": "digits"}},
        "experiments": {experiment: {"task": "metric", "dataset": dataset}},
    }


def test_every_cmd_that_fills_in_a_value_runs_the_guard_first(stages):
    guarded = []
    for name, stage in stages.items():
        cmd = stage.get("do", stage)["cmd"]
        commands = [cmd] if isinstance(cmd, str) else cmd
        if not any("${" in c for c in commands):
            continue
        # a list: DVC runs each command on its own and stops at the first that fails; the guard
        # alone in the first (`guard && cmd ${key}` would let the shell parse `;` first)
        assert isinstance(cmd, list) and cmd[0] == GUARD, name
        guarded.append(name)
    assert sorted(guarded) == ["download", "embed", "evaluate", "train", "validate"]


@pytest.mark.parametrize(
    ("stage", "expected"),
    [
        ("train@triplet", ["triplet", "digits", "triplet", "triplet"]),
        ("embed@triplet", ["triplet", "triplet", "digits", "triplet"]),
        ("evaluate@triplet", ["triplet", "triplet", "digits", "triplet", "triplet"]),
        ("download@digits", ["digits", "digits"]),
        ("validate@digits", ["digits", "digits"]),
    ],
)
def test_plain_names_pass_and_are_what_dvc_fills_in(stage, expected, stages):
    # the values in the order of the cmd's ${...}, as DVC fills them in
    assert cmd_guard.filled_values(stage, stages, params()) == expected


@pytest.mark.parametrize(
    "name",
    [
        "x;touch /tmp/pwned;x",
        "x && touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "a'b",
        'a"b',
        "a\ntouch pwned",
        "a b",
        "a|b",
        "../up",
        "",
    ],
)
def test_a_key_that_is_not_a_plain_name_is_refused(name, stages):
    with pytest.raises(cmd_guard.Refused) as e:
        cmd_guard.filled_values(f"train@{name}", stages, params(experiment=name))
    assert f"${{key}}={name!r} is not allowed in a command" in str(e.value)
    with pytest.raises(cmd_guard.Refused, match=r"\$\{key\}="):
        cmd_guard.filled_values(f"download@{name}", stages, params(dataset=name))


def test_a_dataset_value_that_is_not_a_plain_name_is_refused(stages):
    p = params()
    p["experiments"]["triplet"]["dataset"] = "digits;touch pwned"
    with pytest.raises(cmd_guard.Refused, match=r"\$\{item.dataset\}='digits;touch pwned'"):
        cmd_guard.filled_values("train@triplet", stages, p)
    p["experiments"]["triplet"]["dataset"] = ["a", "b"]
    with pytest.raises(cmd_guard.Refused, match=r"\$\{item.dataset\}=\['a', 'b'\] is not a name"):
        cmd_guard.filled_values("embed@triplet", stages, p)


def test_a_stage_unknown_to_dvc_yaml_or_params_is_refused(stages):
    with pytest.raises(cmd_guard.Refused, match="'other' is not in"):
        cmd_guard.filled_values("train@other", stages, params())
    with pytest.raises(cmd_guard.Refused, match="no stage 'nope'"):
        cmd_guard.filled_values("nope@x", stages, params())


def test_dvc_stage_addressing_with_a_dvcfile_path():
    assert cmd_guard.stage_name("train@a") == "train@a"
    assert cmd_guard.stage_name("sub/dvc.yaml:train@a") == "train@a"
    assert cmd_guard.stage_name("train@a:b") == "train@a:b"  # a ':' in the key is kept


def test_outside_dvc_the_guard_refuses_to_guess(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DVC_STAGE"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "cmd_guard.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "DVC_STAGE is not set" in done.stderr
