"""reports/summary.md reads at a glance: per task, the params that differ between its
experiments as a table (no column the same in every row that sets it), the others listed once;
the metric table's columns are the task's KEY_METRICS, the rest of metrics.json in summary.csv."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
from stages import report

from simlearn import tasks
from simlearn.config import load_params

ROOT = Path(__file__).resolve().parents[1]
NAN = math.nan


def _tables_after(md: str, marker: str) -> list[tuple[list[str], list[list[str]]]]:
    """Every markdown table that follows a line equal to ``marker``: (header, rows of cells)."""
    lines, out = md.splitlines(), []
    for i, line in enumerate(lines):
        if line != marker:
            continue
        j = i + 1
        while not lines[j].startswith("|"):
            j += 1
        table = []
        while j < len(lines) and lines[j].startswith("|"):
            table.append([c.strip() for c in lines[j].strip().strip("|").split(" | ")])
            j += 1
        out.append((table[0], table[2:]))  # table[1]: the |---| line
    return out


def _first_table(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    return _tables_after("\n".join(["@", *lines[start:]]), "@")[0]


def _sections(md: str) -> dict[str, str]:
    """## heading -> its text, up to the next heading."""
    parts = md.split("\n## ")[1:]
    return {p.split("\n", 1)[0]: p.split("\n", 1)[1] for p in parts}


def _unset(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _constant_columns(header: list[str], rows: list[list[str]]) -> list[str]:
    """The columns (not ``experiment``) with fewer than two distinct values that are set."""
    return [
        col
        for k, col in enumerate(header)
        if col != "experiment" and len({r[k] for r in rows} - {report.UNSET}) < 2
    ]


# ----------------------------------------------------------------------------- worked example


def test_param_text_is_short_but_exact():
    assert report.param_text(0.003) == "0.003"  # not 0.0030
    assert report.param_text(1e-5) == "1e-05"  # not 0.0000
    assert report.param_text(15.0) == "15"
    assert report.param_text(4 / 3) == repr(4 / 3)  # %g would round it
    assert report.param_text(None) == report.param_text(NAN) == "-"
    assert report.param_text([7, 8, 9]) == "[7, 8, 9]"
    assert report.param_text(True) == "True" and report.param_text("auto") == "auto"


def test_split_params_worked_example():
    keys = pd.DataFrame(
        {
            "seed": [0, 0, 0],
            "model.name": ["convnet", "convnet", "raw"],
            "loss.name": ["triplet", "supcon", None],  # the baseline has no loss
            "train.lr": [0.003, 0.001, NAN],
            "train.device": ["auto", "auto", NAN],  # the same wherever set: not a column
            "augment.degrees": [NAN, 15.0, NAN],  # set in one row only
            "stereo.paths": [NAN, NAN, NAN],  # nobody's key
        },
        index=["a", "b", "c"],
    )
    table, groups = report.split_params(keys)
    assert list(table.columns) == ["model.name", "loss.name", "train.lr"]
    assert table.loc["c"].tolist() == ["raw", "-", "-"]
    assert table.loc["a"].tolist() == ["convnet", "triplet", "0.003"]
    assert groups == [
        (("a", "b", "c"), [("seed", "0")]),
        (("a", "b"), [("train.device", "auto")]),
        (("b",), [("augment.degrees", "15")]),
    ]
    md = "\n".join(report.params_markdown(keys))
    assert "- every experiment: `seed` 0" in md
    assert "- all but c: `train.device` auto" in md
    assert "- b only: `augment.degrees` 15" in md
    assert "stereo.paths" not in md
    ((header, rows),) = _tables_after(md, "Params that differ:")
    assert header == ["experiment", "model.name", "loss.name", "train.lr"] and len(rows) == 3


def test_one_experiment_or_nothing_different_gives_no_table():
    one = pd.DataFrame({"seed": [0], "loss.name": ["triplet"]}, index=["a"])
    assert report.params_markdown(one) == []
    same = pd.DataFrame({"seed": [0, 0], "lr": [0.1, NAN]}, index=["a", "b"])
    md = "\n".join(report.params_markdown(same))
    assert "Params that differ" not in md
    assert "- every experiment: `seed` 0" in md and "- a only: `lr` 0.1" in md


def test_split_params_against_a_loop_on_random_tables():
    rnd = random.Random(0)
    choices = [None, NAN, 0, 1, 0.5, "x", "y", True, False, [1, 2]]
    for _ in range(200):
        n_rows, n_cols = rnd.randint(1, 6), rnd.randint(1, 8)
        index = [f"e{i}" for i in range(n_rows)]
        data = {f"k{j}": [rnd.choice(choices[: rnd.randint(2, len(choices))]) for _ in index]
                for j in range(n_cols)}  # fmt: skip
        keys = pd.DataFrame(data, index=index, dtype=object)
        table, groups = report.split_params(keys)
        listed = {k: (rows, v) for rows, pairs in groups for k, v in pairs}
        for col in keys.columns:
            values = [keys.at[e, col] for e in index]
            set_rows = tuple(e for e, v in zip(index, values, strict=True) if not _unset(v))
            distinct = {str(v) for v in values if not _unset(v)}
            if len(distinct) > 1:
                assert col in table.columns and col not in listed, (col, values)
            elif distinct:
                assert col not in table.columns, (col, values)
                assert listed[col] == (set_rows, report.param_text(keys.at[set_rows[0], col]))
            else:
                assert col not in table.columns and col not in listed
        for rows, _ in groups:  # one group per set of rows
            assert sum(r == rows for r, _ in groups) == 1


# ----------------------------------------------------------------------------- the stage's output


def _write_run(tmp: Path, name: str, metrics: dict, epochs: int) -> None:
    (tmp / "eval" / name).mkdir(parents=True)
    (tmp / "eval" / name / "metrics.json").write_text(json.dumps(metrics))
    (tmp / "train" / name).mkdir(parents=True)
    history = pd.DataFrame({"epoch": range(epochs), "loss": 1.0, "seconds": 2.0})
    history.to_csv(tmp / "train" / name / "history.csv", index=False)


def test_summary_md_and_csv_of_three_metric_experiments(tmp_path):
    import yaml

    net = {"task": "metric", "dataset": "digits", "model": {"name": "convnet"}}
    params = {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {
            "tri": {**net, "loss": {"name": "triplet"}, "train": {"lr": 0.003}},
            "bh": {**net, "loss": {"name": "batch_hard"}, "train": {"lr": 0.001}},
            "raw": {**net, "model": {"name": "raw"}},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    key = tasks.get("metric").KEY_METRICS
    for i, name in enumerate(params["experiments"]):
        metrics = {k: 0.5 + 0.1 * i for k in key[:3]} | {"mrr": 0.25, "n_queries": 539}
        _write_run(tmp_path, name, metrics, epochs=3)
    loaded = load_params(tmp_path / "params.yaml")
    configs = {n: tasks.experiment_config(loaded, n) for n in loaded["experiments"]}
    summary, keys, sections = report.summarise(configs, tmp_path / "eval", tmp_path / "train")
    md = report.render_markdown(summary, keys, sections, "summary.png")

    # the metric table: KEY_METRICS with a value, in their order; the rest in the CSV only
    header, rows = _first_table(_sections(md)["metric"])
    assert header == ["experiment", "dataset", "model", "loss", *key[:3], "train_seconds"]
    assert [r[0] for r in rows] == ["raw", "bh", "tri"]  # best map first
    assert {"mrr", "n_queries"} <= set(summary.columns) and "mrr" not in md
    assert summary.set_index("experiment").loc["bh", "n_queries"] == 539
    assert summary.set_index("experiment").loc["tri", "train_seconds"] == 6.0

    # the params table: what the three differ in, and only that
    ((header, rows),) = _tables_after(md, "Params that differ:")
    assert header[:1] == ["experiment"] and not _constant_columns(header, rows)
    assert {"model.name", "loss.name", "train.lr"} <= set(header)
    table = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert table["raw"]["loss.name"] == "-" and table["tri"]["train.lr"] == "0.003"
    text = _sections(md)["metric"]
    assert "- every experiment: `dataset` digits" in text
    assert "- all but raw: " in text and "`train.device` auto" in text
    assert "`task`" not in text  # the heading says it
    for line in text.splitlines():  # a key is in the table or in a list, not both
        if line.startswith("- "):
            listed = {p.split("`")[1] for p in line.split(": ", 1)[1].split(", `")}
            assert not listed & set(header), line


def test_the_committed_summary_has_no_constant_params_column():
    md = (ROOT / "reports/summary.md").read_text()
    tables = _tables_after(md, "Params that differ:")
    assert tables  # the file still has them
    for header, rows in tables:
        assert len(rows) > 1 and not _constant_columns(header, rows), header


def test_the_committed_summary_heads_each_task_with_its_key_metrics():
    md = (ROOT / "reports/summary.md").read_text()
    params = load_params(ROOT / "params.yaml")
    task_names = {tasks.experiment_config(params, e).task for e in params["experiments"]}
    sections = _sections(md)
    for name in task_names:
        header, _ = _first_table(sections[name])
        metrics = header[4:-1]  # experiment, dataset, model, loss ... train_seconds
        key = list(tasks.get(name).KEY_METRICS)
        assert metrics and metrics == [k for k in key if k in metrics], (name, metrics)
    csv = pd.read_csv(ROOT / "reports/summary.csv")
    assert {"mrr", "n_queries"} <= set(csv.columns)  # the rest of metrics.json
    assert np.isfinite(csv["map"].dropna()).all()


def test_a_pipe_in_a_value_does_not_split_the_cell():
    text = report.to_markdown(pd.DataFrame({"k": ["a|b"]}))
    assert text.splitlines()[2] == "| a\\|b |"


def test_heldout_table_lists_only_experiments_with_episodes_with_their_intervals():
    summary = pd.DataFrame(
        {
            "experiment": ["raw_unseen", "supcon_unseen", "batch_hard"],
            "task": ["metric", "metric", "metric"],
            "dataset": ["mnist5k", "mnist5k", "digits"],
            "unseen_map": [0.599, 0.730, math.nan],
            "fewshot_way": [3.0, 3.0, math.nan],
            "fewshot_1shot_accuracy": [0.5701, 0.7042, math.nan],
            "fewshot_1shot_ci95": [0.0081, 0.0112, math.nan],
            "fewshot_5shot_accuracy": [0.7712, 0.8369, math.nan],
            "fewshot_5shot_ci95": [0.0061, 0.0054, math.nan],
            "ood_knn_auroc": [0.770, 0.982, math.nan],
            "ood_knn_fpr95": [0.622, 0.062, math.nan],
        }
    )
    lines = report.heldout_markdown(summary)
    table = [ln for part in lines for ln in part.splitlines() if ln.startswith("|")]
    assert table[0] == (
        "| experiment | task | dataset | unseen_map | 3-way 1-shot | 3-way 5-shot | ood_knn_auroc"
        " | ood_knn_fpr95 |"
    )
    assert table[2] == (
        "| supcon_unseen | metric | mnist5k | 0.730 | 0.704 ± 0.011 | 0.837 ± 0.005 | 0.982"
        " | 0.062 |"
    )  # the best unseen_map first
    assert table[3].startswith("| raw_unseen | metric | mnist5k | 0.599 | 0.570 ± 0.008 |")
    assert len(table) == 4  # header, rule, two rows: batch_hard holds no class out
    assert report.heldout_markdown(summary.iloc[2:]) == []


def test_the_report_lists_the_named_experiments_in_order_with_their_params_as_trained(tmp_path):
    import pytest

    from simlearn.config import ConfigError

    params = load_params(ROOT / "params.yaml")
    names = [n for n in params["experiments"] if params["experiments"][n]["task"] == "metric"][:3]
    for n in names:
        (tmp_path / "models" / n).mkdir(parents=True)
        tasks.write_trained_config(tmp_path / "models" / n, params, n)
    listed = tmp_path / "experiments.json"
    listed.write_text(json.dumps({"experiments": names[::-1]}))
    got = report.trained_configs(listed, tmp_path / "models")
    assert list(got) == names[::-1]  # the listed order, not the folders'
    assert got == {n: tasks.experiment_config(params, n) for n in names}
    # as trained: an edit of params.yaml not yet trained does not show in the report
    (tmp_path / "models" / names[0] / "experiment.json").write_text(
        json.dumps(
            {
                "experiment": names[0],
                "params": {**params["experiments"][names[0]], "train": {"lr": 0.5}},
            }
        )  # fmt: skip
    )
    assert report.trained_configs(listed, tmp_path / "models")[names[0]].train.lr == 0.5
    with pytest.raises(ConfigError, match=r"missing: `dvc repro check_params` writes it"):
        report.trained_configs(tmp_path / "nope.json", tmp_path / "models")
    listed.write_text(json.dumps({"experiments": [*names, "untrained"]}))
    with pytest.raises(ConfigError, match=r"run `dvc repro train@untrained`"):
        report.trained_configs(listed, tmp_path / "models")
