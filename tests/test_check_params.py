"""stages/check_params.py: the whole params.yaml is checked before any stage reads it.

Every fault is written into a copy of the repository's own params.yaml, as a user would write it,
and must fail with the project's message: the full key, the value and what is allowed.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_params", ROOT / "stages" / "check_params.py")
assert _spec is not None and _spec.loader is not None
check_params = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_params)


@pytest.fixture(scope="module")
def repo_params() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def first_experiment(params: dict[str, Any], task: str = "metric") -> str:
    """The first experiment of ``task`` that trains a network (has a loss)."""
    return next(
        k
        for k, v in params["experiments"].items()
        if v["task"] == task and v.get("model", {}).get("name") not in ("raw", "mahalanobis", "lda")
    )


def run(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, Path]:
    params = tmp_path / "params.yaml"
    params.write_text(text)
    out = tmp_path / "reports" / "params_check.json"
    code = check_params.main([str(out), "--params", str(params)])
    return code, capsys.readouterr().err, out


def test_repo_params_pass_and_the_output_does_not_depend_on_them(
    tmp_path: Path, repo_params: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, err, out = run(tmp_path, (ROOT / "params.yaml").read_text(), capsys)
    assert code == 0, err
    first = out.read_bytes()
    assert json.loads(first) == {"ok": True}
    # edit one experiment: the check reruns, its output is byte for byte the same, so DVC keeps
    # every other experiment's train stage up to date
    edited = json.loads(json.dumps(repo_params))
    name = first_experiment(edited)
    edited["experiments"][name].setdefault("train", {})["lr"] = 0.0123
    code, err, out = run(tmp_path, yaml.safe_dump(edited), capsys)
    assert code == 0, err
    assert out.read_bytes() == first


@pytest.mark.parametrize(
    ("group", "key"),
    [
        ("experiments", "two words"),
        ("experiments", "x;touch pwned;"),
        ("experiments", "a/b"),
        ("datasets", "dig$its"),
        ("experiments", 7),
    ],
)
def test_keys_must_be_plain_names(
    group: str, key: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    params = {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {"ok": {"task": "metric", "dataset": "digits"}},
    }
    params[group][key] = (
        {"source": "digits"} if group == "datasets" else params["experiments"]["ok"]
    )
    errors = check_params.key_errors(params)
    assert errors == [
        f"{group}.{key!r}: not allowed as a name; use only letters, digits, '_' and '-' "
        "(^[A-Za-z0-9_-]+$): names become folder names and command arguments in dvc.yaml"
    ]
    code, err, out = run(tmp_path, yaml.safe_dump(params), capsys)
    assert code == 1 and f"{group}.{key!r}: not allowed as a name" in err
    assert not out.exists()
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()


def test_typo_in_a_dataset_name_gets_the_project_message(
    tmp_path: Path, repo_params: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    params = json.loads(json.dumps(repo_params))
    name = first_experiment(params)
    params["experiments"][name]["dataset"] = "digitz"
    code, err, out = run(tmp_path, yaml.safe_dump(params), capsys)
    assert code == 1 and not out.exists()
    assert f"experiments.{name}.dataset='digitz' is not a dataset in params.yaml" in err
    assert "check_params: 1 error(s)" in err


@pytest.mark.parametrize(
    ("yaml_edit", "expected"),
    [
        # YAML 1.1 reads 1e-3 as a string
        ("lr: 1e-3", "train.lr='1e-3': expected a number; YAML reads 1e-3 as text: write 1.0e-3"),
        ("lr: 1.0e-3", None),  # what the hint says to write is read as a number
        ("lr: .nan", "train.lr=nan: must be a finite number (nan and inf are not allowed)"),
        ("lr: .inf", "train.lr=inf: must be a finite number (nan and inf are not allowed)"),
        ("lr: '0.01'", "train.lr='0.01': expected a number; it is quoted text: write 0.01 without"),
        (
            "epochs: 1e2",
            "train.epochs='1e2': expected an integer; YAML reads 1e2 as text: write 100",
        ),
        ("grad_clip: .inf", "train.grad_clip=inf: must be a finite number"),
    ],
)
def test_numbers_written_in_yaml(
    yaml_edit: str, expected: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = f"""
datasets:
  digits: {{source: digits}}
experiments:
  exp:
    task: metric
    dataset: digits
    train: {{{yaml_edit}}}
"""
    code, err, out = run(tmp_path, text, capsys)
    if expected is None:
        assert code == 0, err
    else:
        assert code == 1 and f"experiments.exp.{expected}" in err


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"loss": {"margin": float("nan")}}, "loss.margin=nan: must be a finite number"),
        ({"loss": {"temperature": float("inf")}}, "loss.temperature=inf: must be a finite number"),
        ({"model": {"shrinkage": float("nan")}}, "model.shrinkage=nan: must be a finite number"),
        ({"train": {"weight_decay": float("-inf")}}, "weight_decay=-inf: must be a finite number"),
        ({"augment": {"degrees": float("nan")}}, "augment.degrees=nan: must be a finite number"),
    ],
)
def test_non_finite_numbers_are_refused_everywhere(section: dict[str, Any], expected: str) -> None:
    params = {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {"exp": {"task": "metric", "dataset": "digits", **section}},
    }
    (error,) = check_params.check(params)
    assert error.startswith("experiments.exp.") and expected in error


def test_dataset_sections_are_checked_too() -> None:
    params = {
        "datasets": {
            "digits": {"source": "digits", "val_fraction": float("nan")},
            "moto": {"source": "motorcycle", "validation": {"min_valid_fraction": "1e-1"}},
            "nope": {"source": "imagenet"},
        },
        "experiments": {},
    }
    errors = check_params.check(params)
    assert len(errors) == 3
    assert "datasets.digits.val_fraction=nan: must be a finite number" in errors[0]
    assert errors[1].startswith(
        "datasets.moto.validation.min_valid_fraction='1e-1': expected a number; "
        "YAML reads 1e-1 as text: write 1.0e-1"
    )
    assert "datasets.nope" in errors[2] and "source='imagenet'" in errors[2]


def test_every_error_is_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = """
datasets:
  digits: {source: digits}
experiments:
  bad key: {task: metric, dataset: digits}
  a: {task: metric, dataset: digitz}
  b: {task: metric, dataset: digits, train: {lr: 3e-4}}
"""
    code, err, out = run(tmp_path, text, capsys)
    assert code == 1 and not out.exists()
    assert "check_params: 3 error(s)" in err
    lines = [line for line in err.splitlines() if line.startswith("  - ")]
    assert lines[0].startswith("  - experiments.'bad key': not allowed as a name")
    assert lines[1].startswith("  - experiments.a.dataset='digitz' is not a dataset")
    assert lines[2].startswith("  - experiments.b.train.lr='3e-4': expected a number; YAML reads")


def test_unreadable_params(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err, out = run(tmp_path, "experiments: {a: [\n", capsys)
    assert code == 1 and "is not valid YAML" in err and "line" in err
    code, err, out = run(tmp_path, "experiments: [a, b]\n", capsys)
    assert code == 1 and "experiments=['a', 'b']: expected a mapping of names to sections" in err
    # a failed check leaves the earlier output in place: train@ and download@ depend on it, and
    # DVC would delete their outputs before failing on its absence (tests/test_dvc_edits.py)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('{"ok": true}\n')
    code, _, _ = run(tmp_path, "experiments: {'a b': {task: metric, dataset: digits}}\n", capsys)
    assert code == 1 and out.read_text() == '{"ok": true}\n'


@pytest.mark.slow
def test_stage_script_runs_from_the_command_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    done = subprocess.run(
        [sys.executable, str(ROOT / "stages" / "check_params.py"), "reports/params_check.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "reports" / "params_check.json").read_text() == '{"ok": true}\n'


def test_local_files_fingerprints_each_dataset_even_when_the_check_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from simlearn.config import dataset_config
    from simlearn.data.sources import local_files_fingerprint

    photos = tmp_path / "photos" / "cat"
    photos.mkdir(parents=True)
    (photos / "a.png").write_bytes(b"a")
    params = {
        "datasets": {
            "mine": {"source": "image_folder", "path": str(tmp_path / "photos")},
            "digits": {"source": "digits"},
            "bad;name": {"source": "digits"},
        },
        "experiments": {"x": {"task": "metric", "dataset": "nowhere"}},  # fails the check
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    folder = tmp_path / "local_files"
    folder.mkdir()
    (folder / "gone.json").write_text("{}\n")  # a dataset no longer declared
    argv = [str(tmp_path / "ok.json"), "--params", str(tmp_path / "params.yaml")]
    code = check_params.main([*argv, "--local-files", str(folder)])
    assert code == 1 and "nowhere" in capsys.readouterr().err
    assert sorted(p.name for p in folder.iterdir()) == ["digits.json", "mine.json"]
    for name in ("mine", "digits"):
        cfg, _ = dataset_config(params, name)
        assert json.loads((folder / f"{name}.json").read_text()) == local_files_fingerprint(cfg)
    before = (folder / "mine.json").read_text()
    (photos / "b.png").write_bytes(b"b")  # a photo added: the download's dependency changes
    check_params.main([*argv, "--local-files", str(folder)])
    assert (folder / "mine.json").read_text() != before


def test_the_experiment_names_follow_params_yaml_and_a_refused_edit_keeps_them(
    tmp_path: Path, repo_params: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # the report lists exactly these, in this order, and depends on this file (dvc.yaml)
    params = tmp_path / "params.yaml"
    names = tmp_path / "reports" / "experiments.json"
    out = tmp_path / "reports" / "params_check.json"
    argv = [str(out), "--params", str(params), "--experiments", str(names)]
    params.write_text((ROOT / "params.yaml").read_text())
    assert check_params.main(argv) == 0, capsys.readouterr().err
    first = names.read_bytes()
    assert json.loads(first) == {"experiments": list(repo_params["experiments"])}
    # an edit inside an experiment: the same bytes, so the report does not rerun for it alone
    edited = json.loads(json.dumps(repo_params))
    edited["experiments"][first_experiment(edited)].setdefault("train", {})["lr"] = 0.0123
    params.write_text(yaml.safe_dump(edited, sort_keys=False))
    assert check_params.main(argv) == 0 and names.read_bytes() == first
    # a removed and a reordered experiment: the list follows
    order = list(reversed(edited["experiments"]))[1:]
    edited["experiments"] = {k: edited["experiments"][k] for k in order}
    params.write_text(yaml.safe_dump(edited, sort_keys=False))
    assert check_params.main(argv) == 0
    assert json.loads(names.read_text()) == {"experiments": order}
    # a refused edit leaves the list as the last valid params wrote it
    kept = names.read_bytes()
    params.write_text("experiments: {'a b': {task: metric, dataset: digits}}\n")
    assert check_params.main(argv) == 1 and names.read_bytes() == kept
