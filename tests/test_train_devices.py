"""``train.devices: 2`` through ``dvc repro`` trains in two processes (gloo on the CPU) and gives
the same model and history as the hand-typed ``torchrun --nproc_per_node=2 stages/train.py``."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from tests.projects import BIN, copy_project, git_commit, run, user_env

ROOT = Path(__file__).resolve().parents[1]

SECTION = {
    "task": "metric",
    "dataset": "digits",
    "model": {"name": "convnet", "embedding_dim": 8, "width": 4},
    "loss": {"name": "batch_hard"},
    "sampler": {"name": "pk", "classes_per_batch": 4, "samples_per_class": 4, "steps_per_epoch": 4},
    "train": {"epochs": 2, "num_threads": 1},
}


def _project(root: Path, devices: int | str) -> tuple[Path, dict[str, str]]:
    section = {**SECTION, "train": {**SECTION["train"], "devices": devices}}
    params = {"datasets": {"digits": {"source": "digits"}}, "experiments": {"ddp": section}}
    root = copy_project(root, params)
    env = user_env(root, OMP_NUM_THREADS="1")
    git_commit(root, env, "init", init=True)
    return root, env


@pytest.mark.slow  # two DVC pipelines, two-process trainings
def test_devices_2_through_dvc_repro_equals_a_hand_typed_two_process_torchrun(tmp_path):
    dvc = str(BIN / "dvc")
    auto, env = _project(tmp_path / "auto", devices=2)
    out = run([dvc, "repro", "train@ddp"], auto, env)
    assert "train.devices: 2 processes" in out

    # the same command typed by hand under torchrun, in the same project (WORLD_SIZE is set, so
    # the stage does not launch itself again), into other output folders
    run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "stages/train.py", "ddp", "data/digits", "models/hand", "reports/train/hand"],
        auto, env,
    )  # fmt: skip
    hand = auto
    a = torch.load(auto / "models/ddp/model.pt", weights_only=True)
    b = torch.load(hand / "models/hand/model.pt", weights_only=True)
    sa, sb = a["state_dict"], b["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ha = pd.read_csv(auto / "reports/train/ddp/history.csv")
    hb = pd.read_csv(hand / "reports/train/hand/history.csv")
    assert len(ha) == 2
    for col in ("loss", "val_map", "samples"):
        assert (ha[col] - hb[col]).abs().max() < 1e-6, col
    assert ha["samples"].iloc[0] == 4 * 16  # 4 steps of P x K = 16, counted over both ranks
