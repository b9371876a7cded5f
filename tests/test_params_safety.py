"""params.yaml is parsed safely: :func:`simlearn.config.load_params`, which every stage and
check_params read it with, refuses in milliseconds, naming the line, a document whose aliases
expand past a bound (a YAML "billion laughs"), one that is too large or too deeply nested, and a
key written twice (YAML keeps the last silently; DVC refuses the file).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from simlearn.config import ConfigError, load_params
from simlearn.config.schema import (
    MAX_ALIAS_NODES,
    MAX_PARAMS_BYTES,
    MAX_PARAMS_DEPTH,
    MAX_PARAMS_NODES,
)

ROOT = Path(__file__).resolve().parents[1]

HEAD = """datasets:
  digits: {source: digits}
"""


def _stage(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "stages" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bomb(levels: int = 9, width: int = 9) -> tuple[str, int]:
    """A "billion laughs" under ``holdout_classes`` and the line of the alias at which the nodes
    added by aliases first pass MAX_ALIAS_NODES, counted by expanding each level in full."""
    lines = [*HEAD.splitlines(), "lol:", f"  l0: &l0 [{', '.join(['9'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines += ["experiments:", "  x:", "    task: metric", "    dataset: digits"]
    lines.append(f"    holdout_classes: *l{levels - 1}")

    def expanded(level: int) -> list[Any]:  # the value as the loader would build it
        return [9] * width if level == 0 else [expanded(level - 1)] * width

    def nodes(value: Any) -> int:  # brute force: every list and scalar, nothing shared
        return 1 + sum(nodes(v) for v in value) if isinstance(value, list) else 1

    added, crossing = 0, None
    for lineno, line in enumerate(lines, start=1):
        for level in range(levels):
            count = (
                line.count(f"*l{level}]") + line.count(f"*l{level},") + line.endswith(f"*l{level}")
            )
            if count:  # expanded only up to the crossing: level 8 holds 387 million leaves
                added += count * nodes(expanded(level))
        if added > MAX_ALIAS_NODES:
            crossing = lineno
            break
    assert crossing is not None
    return "\n".join(lines) + "\n", crossing


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def refused(path: Path) -> tuple[str, float]:
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        load_params(path)
    return str(e.value), time.perf_counter() - t0


def test_alias_bomb_is_refused_in_under_a_second_at_the_alias_that_crosses_the_bound(tmp_path):
    text, line = bomb()  # 9**9 = 387 million leaves from 600 bytes
    assert len(text) < 1000
    message, seconds = refused(write(tmp_path, text))
    assert seconds < 1.0
    assert message.startswith(f"{tmp_path / 'params.yaml'}, line {line}: alias *l")
    assert f"past {MAX_ALIAS_NODES:,}" in message and "billion laughs" in message
    assert len(message) < 500


def test_check_params_refuses_the_bomb_in_under_a_second_with_a_short_message(tmp_path, capsys):
    check_params = _stage("check_params")
    text, line = bomb(levels=6)  # today's main took 32 s and printed 522 MB for 9 levels
    params = write(tmp_path, text)
    out = tmp_path / "params_check.json"
    t0 = time.perf_counter()
    code = check_params.main([str(out), "--params", str(params)])
    seconds = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert code == 1 and seconds < 1.0 and not out.exists()
    assert f"line {line}: alias *l" in err and len(err) < 600


@pytest.mark.parametrize(
    ("stage", "args"),
    [
        ("download", ["digits", "data/digits"]),
        ("validate", ["digits", "data/digits", "reports/validation"]),
        ("train", ["x", "data/digits", "models/x", "reports/train/x"]),
    ],
)
def test_every_stage_refuses_the_bomb_before_it_reads_anything_else(stage, args, tmp_path):
    module = _stage(stage)
    text, line = bomb()
    params = write(tmp_path, text)
    argv = [str(tmp_path / a) if "/" in a else a for a in args] + ["--params", str(params)]
    for _ in range(2):  # the first call imports what the stage needs (torch: seconds)
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match=f"line {line}: alias"):
            module.main(argv)
    assert time.perf_counter() - t0 < 1.0
    assert not any(p.name != "params.yaml" for p in tmp_path.rglob("*"))  # nothing written


@pytest.mark.parametrize(
    ("stage", "args"),
    [
        ("embed", ["x", "models/x", "data/digits", "data/embeddings/x.npz"]),
        ("evaluate", ["x", "data/embeddings/x.npz", "data/digits", "reports/eval/x"]),
    ],
)
def test_embed_and_evaluate_read_no_params_yaml_and_refuse_a_missing_trained_config(
    stage, args, tmp_path, monkeypatch
):
    # they read the params as trained (models/<exp>/experiment.json), never params.yaml: a bomb
    # there cannot reach them, and without the trained file they stop first, naming the fix
    monkeypatch.chdir(tmp_path)
    write(tmp_path, bomb()[0])
    with pytest.raises(ConfigError, match=r"experiment\.json is missing: .*`dvc repro train@x`"):
        _stage(stage).main(args)
    assert not any(p.name != "params.yaml" for p in tmp_path.rglob("*"))  # nothing written


def test_the_report_reads_no_params_yaml_and_refuses_a_missing_list_of_experiments(
    tmp_path, monkeypatch
):
    # it lists the experiments check_params named (reports/experiments.json), each with its
    # params as trained: a bomb in params.yaml cannot reach it, and without the list it stops
    # first, naming the stage that writes it
    monkeypatch.chdir(tmp_path)
    write(tmp_path, bomb()[0])
    with pytest.raises(
        ConfigError, match=r"experiments\.json is missing: `dvc repro check_params`"
    ):
        _stage("report").main(["reports/eval", "reports/train", "reports/summary"])
    assert not any(p.name != "params.yaml" for p in tmp_path.rglob("*"))  # nothing written


def test_the_alias_bound_is_exact(tmp_path):
    # an anchor of 100 nodes (the list and its 99 items), then n aliases of it: 100*n added
    shared = f"[{', '.join(['1'] * 99)}]"

    def doc(n: int) -> str:
        refs = "\n".join(f"  r{i}: *a" for i in range(n))
        return f"{HEAD}anchor: &a {shared}\nrefs:\n{refs}\n"

    n = MAX_ALIAS_NODES // 100
    params = load_params(write(tmp_path, doc(n)))
    assert len(params["refs"]) == n and params["refs"]["r0"] == [1] * 99
    message, _ = refused(write(tmp_path, doc(n + 1)))
    assert f"line {len(doc(n + 1).splitlines())}: alias *a at refs.r{n}" in message


def test_shared_sections_within_the_bound_load_as_if_written_out(tmp_path):
    text = f"""{HEAD}base: &base
  task: metric
  dataset: digits
  train: &train {{epochs: 2, lr: 0.01}}
experiments:
  a: {{<<: *base, model: {{name: raw}}}}
  b:
    <<: *base
    dataset: mnist
    train: *train
"""
    written_out = f"""{HEAD}base: {{task: metric, dataset: digits, train: {{epochs: 2, lr: 0.01}}}}
experiments:
  a: {{task: metric, dataset: digits, train: {{epochs: 2, lr: 0.01}}, model: {{name: raw}}}}
  b: {{task: metric, dataset: mnist, train: {{epochs: 2, lr: 0.01}}}}
"""
    assert load_params(write(tmp_path, text)) == yaml.safe_load(written_out)


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path):
    message, _ = refused(write(tmp_path, f"{HEAD}loop: &a\n  - 1\n  - *a\n"))
    assert message.endswith(
        "line 5: alias *a at loop[1] lies inside its own anchor &a (line 3): a recursive "
        "structure that no stage can read; write the values out"
    )


def test_nesting_is_bounded(tmp_path):
    def nested(depth: int) -> str:  # `x:` at the top level, then depth - 1 lists
        return f"{HEAD}x: {'[' * (depth - 1)}{']' * (depth - 1)}\n"

    assert load_params(write(tmp_path, nested(MAX_PARAMS_DEPTH)))["x"] is not None
    message, seconds = refused(write(tmp_path, nested(MAX_PARAMS_DEPTH + 1)))
    assert f"line 3: lists and mappings nested deeper than {MAX_PARAMS_DEPTH} levels" in message
    t0 = time.perf_counter()  # libyaml stops at 1,000 levels, PyYAML's Python parser never
    with pytest.raises((ConfigError, yaml.YAMLError), match="line 3"):  # no RecursionError
        load_params(write(tmp_path, f"{HEAD}x: {'[' * 100_000}{']' * 100_000}\n"))
    assert time.perf_counter() - t0 < 1.0


def test_a_file_over_the_size_limit_is_refused_unread_naming_the_line(tmp_path):
    line = "# a comment line, 32 bytes long\n"
    assert len(line) == 32
    path = write(tmp_path, HEAD + line * (MAX_PARAMS_BYTES // 32))
    size = path.stat().st_size
    assert size > MAX_PARAMS_BYTES
    crossed = 2 + (MAX_PARAMS_BYTES - len(HEAD)) // 32 + 1  # the line holding byte MAX + 1
    message, seconds = refused(path)
    assert seconds < 1.0
    assert message.startswith(
        f"{path}: {size:,} bytes, more than the {MAX_PARAMS_BYTES:,} allowed (crossed on line "
        f"{crossed})"
    )


def test_the_bound_on_values_is_exact(tmp_path):
    # HEAD: the top mapping, `datasets`, its mapping, `digits`, its mapping, `source`, `digits`
    # (7 nodes); then `x` and its list: 9 nodes besides the list's items
    def doc(items: int) -> str:
        return f"{HEAD}x: [{', '.join(['0'] * items)}]\n"

    assert len(load_params(write(tmp_path, doc(MAX_PARAMS_NODES - 9)))["x"]) == (
        MAX_PARAMS_NODES - 9
    )
    message, _ = refused(write(tmp_path, doc(MAX_PARAMS_NODES - 8)))
    assert message.endswith(
        f"line 3: the document holds more than {MAX_PARAMS_NODES:,} values (at "
        f"x[{MAX_PARAMS_NODES - 9}]); params.yaml holds settings, not data"
    )


@pytest.mark.parametrize(
    ("text", "lines", "key", "where"),
    [
        ("a: 1\nb: 2\na: 3\n", "lines 1 and 3", "a", "the top level"),
        (
            "experiments:\n  x:\n    train:\n      lr: 0.1\n      epochs: 2\n      lr: 0.2\n",
            "lines 4 and 6",
            "lr",
            "experiments.x.train",
        ),
        (
            "experiments:\n  x: {task: metric}\n  y: {}\n  x: {task: simclr}\n",
            "lines 2 and 4",
            "x",
            "experiments",
        ),
        ("x:\n  - {a: 1, b: 2, a: 3}\n", "line 2", "a", "x[0]"),  # a flow mapping, one line
        ("flags:\n  yes: 1\n  true: 2\n", "lines 2 and 3", "true", "flags"),  # one bool key
    ],
)
def test_a_key_written_twice_names_both_lines(text, lines, key, where, tmp_path):
    message, _ = refused(write(tmp_path, text))
    assert message == (
        f"{tmp_path / 'params.yaml'}, {lines}: key {key!r} is written twice in the same mapping "
        f"({where}); YAML would keep the last one silently and DVC refuses the file: delete one "
        "of them"
    )


def test_equal_keys_in_different_mappings_and_merge_overrides_are_not_duplicates(tmp_path):
    text = "base: &b {lr: 1, epochs: 2}\na: {lr: 3}\nb: {<<: *b, lr: 4}\nc: {'1': x, 1: y}\n"
    params = load_params(write(tmp_path, text))
    assert params["a"] == {"lr": 3} and params["b"] == {"lr": 4, "epochs": 2}
    assert params["c"] == {"1": "x", 1: "y"}  # a string and an integer: two keys


def test_syntax_errors_still_get_the_loader_s_message_with_line_and_column(tmp_path):
    path = write(tmp_path, "experiments: {a: [\n  b: 1\n")
    with pytest.raises(yaml.YAMLError, match=f'in "{path}", line 1, column 18'):
        load_params(path)


def test_the_project_s_params_load_as_before(tmp_path):
    text = (ROOT / "params.yaml").read_text()
    assert load_params(ROOT / "params.yaml") == yaml.safe_load(text)
