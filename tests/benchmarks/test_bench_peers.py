"""benchmarks/bench_peers.py: the verdicts, the SGBM peer's post-processing and grid, and a smoke
run of every case with the smallest settings."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_peers import CASES, Row, main, render, sgbm_post, tune_sgbm  # noqa: E402

from simlearn.stereo.matcher import PostProcessing  # noqa: E402


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


def _shifted_pair(d: int, h: int = 48, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A textured right view and the left view it makes at constant disparity ``d``:
    ``left[y, x] = right[y, x - d]``."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 256, (h, (w + d) // 2 + 1, 3)).astype(np.uint8)
    wide = np.repeat(texture, 2, axis=1)[:, : w + d]  # (h, w + d, 3), 2 px wide blobs
    return wide[:, :w].copy(), wide[:, d:].copy()


@pytest.mark.parametrize("pad", [False, True])
def test_sgbm_with_the_post_processing_finds_a_constant_disparity(pad: bool) -> None:
    d = 9
    left, right = _shifted_pair(d)
    p = {"mode": "SGBM_3WAY", "block_size": 3, "colour": True, "pad": pad}
    out = sgbm_post(left, right, 20.0, p, PostProcessing())
    assert np.isfinite(out).all()  # every hole filled
    inner = out[4:-4, 32:-4]  # past the left band OpenCV leaves empty without padding
    assert np.mean(np.abs(inner - d) <= 1.0) > 0.95


def test_the_sgbm_grid_reads_the_training_rows_only() -> None:
    class Pair:
        pass

    left, right = _shifted_pair(7, h=60)
    pair = Pair()
    pair.left, pair.right, pair.max_disp = left, right, 20.0
    pair.disparity = np.full(left.shape[:2], 7.0, np.float32)
    train = np.zeros(left.shape[:2], bool)
    train[:30] = True  # rows 0-29 train; 30-59 are "test"
    grid = {"mode": ("SGBM", "SGBM_3WAY"), "block_size": (3, 5), "colour": (True,), "pad": (True,)}
    best, tried = tune_sgbm(pair, train, PostProcessing(), grid)
    noisy = Pair()
    noisy.__dict__.update(pair.__dict__)
    rng = np.random.default_rng(1)
    noisy.left, noisy.right = left.copy(), right.copy()
    noisy.left[30:] = rng.integers(0, 256, noisy.left[30:].shape)  # the test rows changed
    noisy.disparity = pair.disparity.copy()
    noisy.disparity[30:] = 1.0
    best2, tried2 = tune_sgbm(noisy, train, PostProcessing(), grid)
    assert len(tried) == 4
    assert best == best2 and tried == tried2


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
