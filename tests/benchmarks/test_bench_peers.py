"""benchmarks/bench_peers.py: the verdicts, the table, and a smoke run of every case with the
smallest settings."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_peers import CASES, Row, main, render  # noqa: E402


def test_the_verdict_names_the_winner_and_the_margin() -> None:
    assert Row("c", "samples/s", 300.0, 150.0, "rate").verdict() == "simlearn 2.00x faster"
    assert Row("c", "samples/s", 100.0, 400.0, "rate").verdict() == "peer 4.00x faster"
    assert Row("c", "seconds", 3.0, 1.0, "time").verdict() == "peer 3.00x faster"
    assert Row("c", "seconds", 1.0, 4.0, "time").verdict() == "simlearn 4.00x faster"
    assert Row("c", "mAP", 0.75, 0.70, "higher").verdict() == "simlearn by 0.0500 (7.1%)"
    assert Row("c", "EPE", 0.66, 0.60, "lower", " px").verdict() == "peer by 0.0600 px (10.0%)"
    assert Row("c", "mAP", 0.5, 0.5 + 2e-7, "equal").verdict() == "equal (|diff| 2.0e-07)"
    assert Row("c", "mAP", 0.5, 0.6, "equal").verdict().startswith("DIFFER")
    assert Row("c", "x", 1.0, 1.0, "higher").verdict() == "tie"
    assert Row("c", "x", math.nan, 1.0, "higher").verdict() == "-"


def test_the_table_has_a_header_and_one_line_per_row() -> None:
    rows = [Row("a / b", "mAP", 0.5, 0.25, "higher"), Row("a / b", "seconds", 1.0, 2.0, "time")]
    lines = render(rows).splitlines()
    assert lines[0] == "| case | figure | simlearn | peer | simlearn / peer | verdict |"
    assert lines[2] == "| a / b | mAP | 0.5000 | 0.2500 | 2.000 | simlearn by 0.2500 (100.0%) |"
    assert lines[3] == "| a / b | seconds | 1.000 | 2.000 | 0.500 | simlearn 2.00x faster |"
    assert len(lines) == 4


@pytest.mark.slow
def test_the_quick_run_gives_every_case_both_sides_and_equal_metric_values(capsys) -> None:
    for module in ("pytorch_metric_learning", "lightly", "torchmetrics", "faiss", "cv2"):
        pytest.importorskip(module)  # the [peers] extra
    rows = main(["--quick"])
    out = capsys.readouterr().out
    assert render(rows) in out
    # the cases, in order: metric (2 losses), simclr, retrieval (2 peers), search (2), stereo
    heads = [r.case.split(",")[0].split(" / ")[0] for r in rows]
    assert [h for i, h in enumerate(heads) if h not in heads[:i]] == [
        "batch_hard_unseen", "supcon_unseen", "simclr", "retrieval metrics", "search euclidean",
        "search dot", "stereo_mccnn",
    ]  # fmt: skip
    assert len(CASES) == 5
    for r in rows:
        assert math.isfinite(r.ours) and math.isfinite(r.peer), r
        if r.kind in ("rate", "time"):
            assert r.ours > 0 and r.peer > 0, r
        if r.kind == "higher" and ("accuracy" in r.figure or "mAP" in r.figure):
            assert 0.0 <= r.ours <= 1.0 and 0.0 <= r.peer <= 1.0, r
    # the metric definitions agree with pytorch-metric-learning's and torchmetrics', and the
    # search returns faiss's neighbours
    equal = [r for r in rows if r.kind == "equal"]
    assert len(equal) == 5 + 8 + 2
    assert all(r.verdict().startswith("equal") for r in equal), [r.verdict() for r in equal]
