"""benchmarks/bench_simclr.py runs (the GPU suite's SimCLR step), side-stream variant included."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a ResNet-18 step on the CPU
def test_bench_simclr_prints_images_per_s_and_the_views_share_of_every_variant(tmp_path):
    out = tmp_path / "r.jsonl"
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_simclr.py"), "--device", "cpu",
         "--batch", "4", "--size", "8", "--n-images", "16", "--steps", "1", "--warmup", "1",
         "--threads", "1", "--variants", "eager-fp32,eager-bf16-cl-ahead", "--json", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    figures = {r["figure"]: r["value"] for r in rows}
    for name in ("eager-fp32", "eager-bf16-cl-ahead"):
        assert figures[f"images/s, {name}"] > 0
        assert f"augmentation share of the step, {name}" in figures
    assert figures["views alone, 2 x 4"] > 0
