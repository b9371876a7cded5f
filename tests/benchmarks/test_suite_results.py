"""The GPU suite's table, and the emulation of the GPU machine's image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from suite_results import append, main, note_from_log, render  # noqa: E402


def test_the_table_has_one_row_per_figure_and_every_step_status(tmp_path: Path) -> None:
    res = tmp_path / "r.jsonl"
    append(res, "simclr", "images/s, eager-bf16", 12345.6, "images/s", "note a")
    append(res, "simclr", "augmentation share", 0.0731, "%")
    main(["status", str(res), "simclr", "ok", "12.3"])
    main(["status", str(res), "stereo", "skipped: not there", "0"])
    append(None, "ignored", "never written", 1.0)  # no path: nothing
    log = tmp_path / "pytest.log"
    log.write_text("....\n3 passed | 1 skipped\n\n")
    note_from_log(res, "pytest", log)
    main(["status", str(res), "pytest", "ok", "4"])
    lines = render(res).splitlines()
    assert lines[0].startswith("| step | figure | value |")
    assert lines[2] == "| simclr | images/s, eager-bf16 | 12,346 | images/s | note a | ok | 12 |"
    assert lines[3] == "| simclr | augmentation share | 0.0731 | % |  |  |  |"
    assert lines[4] == "| stereo | - | - | | | skipped: not there | 0 |"
    assert lines[5] == "| pytest | output | - |  | 3 passed / 1 skipped | ok | 4 |"
    assert len(lines) == 6


@pytest.mark.slow
def test_the_gpu_image_hides_what_the_gpu_machine_lacks() -> None:
    code = (
        "import importlib.util as u, torch, numpy, pandas, sklearn, torchvision;"
        "print([m for m in ('yaml', 'mlflow', 'dvc', 'great_expectations', 'pytest')"
        " if u.find_spec(m)])"
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_image.py"), "-c", code],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
