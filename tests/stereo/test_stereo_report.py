"""The stereo table of reports/summary.md: both columns (winner-takes-all and post-processed) for
every method, and no param shown for a method that does not read it (SGBM has no SGM penalties,
the learned matcher no SGBM block)."""

from __future__ import annotations

import json

import yaml
from stages import report

from simlearn import tasks
from simlearn.config import load_params


def test_stereo_table_has_both_columns_and_only_the_params_each_method_reads(tmp_path):
    base = {"task": "stereo", "dataset": "motorcycle"}
    params = {
        "datasets": {"motorcycle": {"source": "motorcycle"}},
        "experiments": {
            "mccnn": {**base, "model": {"method": "learned"}},
            "sgbm": {**base, "model": {"method": "sgbm", "block_size": 3, "sgbm_pad": True}},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    key = tasks.get("stereo").KEY_METRICS
    for i, name in enumerate(params["experiments"]):
        (tmp_path / "eval" / name).mkdir(parents=True)
        metrics = {k: 0.5 + 0.1 * i for k in key}
        (tmp_path / "eval" / name / "metrics.json").write_text(json.dumps(metrics))
    loaded = load_params(tmp_path / "params.yaml")
    configs = {n: tasks.experiment_config(loaded, n) for n in loaded["experiments"]}
    summary, keys, sections = report.summarise(configs, tmp_path / "eval", tmp_path / "train")
    md = report.render_markdown(summary, keys, sections, "summary.png")
    stereo = md.split("\n## stereo\n", 1)[1].split("\n## ", 1)[0]
    header = stereo.splitlines()[1]
    for a, b in (("accuracy_3px", "wta_accuracy_3px"), ("accuracy_1px", "wta_accuracy_1px"),
                 ("epe", "wta_epe")):  # fmt: skip
        assert f"| {a} |" in header and f"| {b} |" in header
    # the rows: both experiments, every key metric filled in
    cols = [c.strip() for c in header.strip("|").split("|")]
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in stereo.splitlines()
            if ln.startswith("| ") and "| motorcycle |" in ln]  # fmt: skip
    assert sorted(r[0] for r in rows) == ["mccnn", "sgbm"]
    for r in rows:
        assert all(r[cols.index(k)] != "-" for k in key), r
    # the params: SGBM's block under SGBM only; the SGM penalties under the learned one only
    assert "`model.block_size` 3" in stereo and "`model.sgbm_pad` True" in stereo
    lines = {ln.split(":", 1)[0]: ln for ln in stereo.splitlines() if ln.startswith("- ")}
    assert "`post.p1`" in lines["- mccnn only"] and "`model.block_size`" in lines["- sgbm only"]
    assert "`post.p1`" not in lines["- sgbm only"] and "`model.features`" in lines["- mccnn only"]
    assert "`post.median` 5" in lines["- every experiment"]  # the shared post-processing
    assert "## Stereo: winner-takes-all and post-processed" in md
