import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from simlearn.config import TrainConfig
from simlearn.engine import CHECKPOINT, NonFiniteLossError, fit, load_checkpoint, pick_device

HERE = Path(__file__).parent
TOY = HERE / "toy.py"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parents[1] / "src")])}


def run_toy(tmp, name, epochs, *extra, wait=True):
    cmd = [
        sys.executable,
        str(TOY),
        str(tmp / f"ckpt_{name}"),
        str(tmp / f"{name}.json"),
        str(epochs),
        *extra,
    ]
    if wait:
        subprocess.run(cmd, env=ENV, check=True, timeout=300)
        return json.loads((tmp / f"{name}.json").read_text())
    return subprocess.Popen(cmd, env=ENV)


def test_seeded_cpu_runs_are_reproducible(tmp_path):
    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    results = []
    for i in range(2):
        torch.manual_seed(0)  # the task seeds its own initial weights (MetricTask does)
        task = ToyTask()
        torch.rand(10 + i)  # global RNG state at fit time must not matter: fit reseeds
        res = fit(
            task,
            TrainConfig(epochs=3, lr=0.05, device="cpu"),
            seed=0,
            checkpoint_dir=tmp_path / f"c{i}",
            progress=False,
        )
        results.append((res.history, [p.detach().clone() for p in task.model.parameters()]))
    (h0, p0), (h1, p1) = results
    assert [r["loss"] for r in h0] == [r["loss"] for r in h1]
    for a, b in zip(p0, p1, strict=True):
        assert torch.equal(a, b)
    assert h0[-1]["loss"] < h0[0]["loss"]  # it actually learns
    assert {"epoch", "loss", "lr", "seconds", "samples_per_s", "val_mse"} <= set(h0[0])


@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    reference = run_toy(tmp_path, "ref", 6)
    proc = run_toy(tmp_path, "killed", 6, "--sleep", "0.4", wait=False)
    ckpt = tmp_path / "ckpt_killed" / CHECKPOINT
    deadline = time.time() + 120
    while time.time() < deadline:
        state = load_checkpoint(ckpt) if ckpt.exists() else None
        if state is not None and state["epoch"] >= 1:  # two epochs done
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed.json").exists()  # it really died mid-training
    resumed = run_toy(tmp_path, "killed", 6)
    assert 2 <= resumed["resumed_from_epoch"] < 6
    assert resumed["params"] == reference["params"]
    strip = [
        {k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")}
        for r in reference["history"]
    ]
    assert [
        {k: v for k, v in r.items() if k not in ("seconds", "samples_per_s")}
        for r in resumed["history"]
    ] == strip


def test_non_finite_loss_names_epoch_and_step_and_keeps_checkpoint(tmp_path):
    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    task = ToyTask(nan_at_epoch=3)
    with pytest.raises(NonFiniteLossError, match=r"at epoch 3, step 1"):
        fit(
            task,
            TrainConfig(epochs=5, lr=0.05, device="cpu"),
            seed=0,
            checkpoint_dir=tmp_path,
            progress=False,
        )
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["epoch"] == 1  # the last good epoch (0-based): epochs 1 and 2 completed
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_checkpoint_with_other_fingerprint_is_not_resumed(tmp_path):
    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    cfg = TrainConfig(epochs=2, lr=0.05, device="cpu")
    fit(ToyTask(), cfg, seed=0, checkpoint_dir=tmp_path, fingerprint="a", progress=False)
    res = fit(ToyTask(), cfg, seed=0, checkpoint_dir=tmp_path, fingerprint="b", progress=False)
    assert res.resumed_from_epoch is None and len(res.history) == 2


def test_checkpoint_of_another_architecture_is_not_resumed(tmp_path):
    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    cfg = TrainConfig(epochs=2, lr=0.05, device="cpu")
    fit(ToyTask(), cfg, seed=0, checkpoint_dir=tmp_path, progress=False)
    wider = ToyTask()
    wider.model = torch.nn.Sequential(
        torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    )
    res = fit(wider, cfg, seed=0, checkpoint_dir=tmp_path, progress=False)  # no load error
    assert res.resumed_from_epoch is None and len(res.history) == 2
    # the same architecture and fingerprint does resume
    again = fit(
        ToyTask(),
        TrainConfig(epochs=3, lr=0.05, device="cpu"),
        seed=0,
        checkpoint_dir=tmp_path / "b",
        progress=False,
    )
    assert again.resumed_from_epoch is None
    more = fit(
        ToyTask(),
        TrainConfig(epochs=4, lr=0.05, device="cpu"),
        seed=0,
        checkpoint_dir=tmp_path / "b",
        progress=False,
    )
    assert more.resumed_from_epoch == 3 and len(more.history) == 4


def test_device_choice():
    assert pick_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None:
        with pytest.raises(RuntimeError, match="train.device='cuda'"):
            pick_device("cuda")


@pytest.mark.slow
def test_torchrun_two_gloo_processes(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(TOY),
        str(tmp_path / "ckpt"),
        str(tmp_path / "ddp.json"),
        "3",
    ]
    subprocess.run(cmd, env={**ENV, "OMP_NUM_THREADS": "1"}, check=True, timeout=300)
    r0 = json.loads((tmp_path / "ddp.json.rank0").read_text())
    r1 = json.loads((tmp_path / "ddp.json.rank1").read_text())
    assert r0["world_size"] == r1["world_size"] == 2
    # DDP keeps the replicas identical: same gradients (all-reduced), same updates
    assert r0["params"] == r1["params"]
    # rank 0 alone validates and records history; the others return an empty history
    assert len(r0["history"]) == 3 and r1["history"] == []
    # each rank ran half of the 8 steps of 32 samples; samples are counted globally
    assert r0["history"][0]["samples"] == 8 * 32
    assert (tmp_path / "ckpt" / CHECKPOINT).exists()


@pytest.mark.slow
def test_batch_losses_over_gathered_ranks_match_one_process(tmp_path):
    """2 gloo ranks, each with half the batch: NT-Xent and SupCon over the gathered embeddings,
    after DDP's averaging, give the loss and gradient of one process with the whole batch."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "gather_check.py"),
        str(tmp_path / "g.json"),
    ]
    subprocess.run(cmd, env={**ENV, "OMP_NUM_THREADS": "1"}, check=True, timeout=300)
    for rank in (0, 1):
        res = json.loads((tmp_path / f"g.json.rank{rank}").read_text())
        assert res["world_size"] == 2
        for loss in ("ntxent", "supcon"):
            assert res[loss]["grad_norm"] > 1e-3  # a real gradient, not zeros on both sides
            assert res[loss]["loss_diff"] < 1e-6
            assert res[loss]["grad_diff"] < 1e-6 * max(1.0, res[loss]["grad_norm"])
