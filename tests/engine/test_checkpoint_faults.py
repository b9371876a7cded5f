"""A checkpoint write that fails for lack of room is one message and keeps the previous
checkpoint; a damaged checkpoint is named. The full disk is real: a child process runs with a
file-size limit (``RLIMIT_FSIZE``), so the kernel refuses the write as it would on a full disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from simlearn.engine import CheckpointError, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # a child process that imports torch
def test_a_write_past_the_size_limit_keeps_the_previous_checkpoint_and_says_why(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.zeros(10)})
    before = path.read_bytes()
    child = textwrap.dedent(
        f"""
        import resource, signal, sys, torch
        sys.path.insert(0, {str(ROOT / "src")!r})
        from pathlib import Path
        from simlearn.engine import CheckpointError, save_checkpoint
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails: EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        try:
            save_checkpoint(Path({str(path)!r}), {{"epoch": 2, "w": torch.zeros(200_000)}})
        except CheckpointError as e:
            print(e)
            sys.exit(3)
        """
    )
    res = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True)
    assert res.returncode == 3, res.stderr[-2000:]
    message = res.stdout
    assert f"cannot write the checkpoint {path}:" in message
    assert "the write stopped short (a full disk, a quota or a file-size limit)" in message
    assert "MiB free in" in message and "the previous checkpoint is kept" in message
    assert path.read_bytes() == before  # untouched
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary file left
    assert load_checkpoint(path)["epoch"] == 1


def test_a_truncated_checkpoint_is_named_with_how_to_start_afresh(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.arange(1000.0)})
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="cannot be read .*Delete it to start"):
        load_checkpoint(path)
