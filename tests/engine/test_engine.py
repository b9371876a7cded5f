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
from simlearn.engine import (
    CHECKPOINT,
    LOCK,
    NonFiniteLossError,
    TrainerBusyError,
    checkpoint_lock,
    fit,
    load_checkpoint,
    pick_device,
    save_checkpoint,
)

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
    with pytest.raises(NonFiniteLossError, match=r"at epoch 3, step 1") as info:
        fit(
            task,
            TrainConfig(epochs=5, lr=0.05, device="cpu"),
            seed=0,
            checkpoint_dir=tmp_path,
            progress=False,
        )
    assert f"the last good checkpoint, after epoch 2, is kept at {tmp_path / CHECKPOINT}" in str(
        info.value
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


def test_non_finite_loss_in_the_first_epoch_says_no_checkpoint_exists(tmp_path):
    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    cfg = TrainConfig(epochs=3, lr=0.05, device="cpu")
    # a checkpoint of other params is there: it is not this training's, and is not "kept"
    fit(ToyTask(), cfg, seed=0, checkpoint_dir=tmp_path, fingerprint="other", progress=False)
    with pytest.raises(NonFiniteLossError) as info:
        fit(ToyTask(nan_at_epoch=1), cfg, seed=0, checkpoint_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "at epoch 1, step 1" in message
    assert "no checkpoint of this training was written yet" in message
    assert "is kept" not in message


class OverflowingTask:
    """ToyTask whose last step of epoch ``overflow_epoch`` (1-based) has a finite loss but an
    infinite gradient: d/dw sqrt(w - w) = inf at 0, while sqrt(0) adds nothing to the loss."""

    def __init__(self, overflow_epoch: int) -> None:
        sys.path.insert(0, str(HERE))
        from toy import ToyTask

        self.toy = ToyTask()
        self.model = self.toy.model
        self.overflow_epoch = overflow_epoch
        self.steps = 0

    def batches(self, epoch, rank=0, world_size=1):
        self.epoch = epoch
        batches = list(self.toy.batches(epoch, rank, world_size))
        for i, b in enumerate(batches):
            self.last_step = i == len(batches) - 1
            yield b

    def loss(self, model, batch, device):
        loss, n = self.toy.loss(model, batch, device)
        if self.epoch + 1 == self.overflow_epoch and self.last_step:
            w = model[0].weight
            loss = loss + torch.sqrt(w - w.detach()).sum()  # + 0, gradient inf
        return loss, n

    def validate(self, model, device):
        return self.toy.validate(model, device)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_weights_that_overflow_at_the_end_of_an_epoch_are_never_saved(tmp_path, optimizer):
    task = OverflowingTask(overflow_epoch=2)
    cfg = TrainConfig(epochs=4, lr=0.05, device="cpu", optimizer=optimizer)
    with pytest.raises(NonFiniteLossError) as info:
        fit(task, cfg, seed=0, checkpoint_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "non-finite weights after epoch 2 (model.0.weight" in message
    assert "although the loss was finite" in message
    assert f"the last good checkpoint, after epoch 1, is kept at {tmp_path / CHECKPOINT}" in message
    assert not all(torch.isfinite(p).all() for p in task.model.parameters())  # it did overflow
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["epoch"] == 0  # epoch 1 only: epoch 2 was not saved
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert [f.name for f in tmp_path.iterdir() if f.name.endswith(".tmp")] == []


def test_checkpoint_temporary_files_have_unique_names(tmp_path, monkeypatch):
    import simlearn.engine as engine

    written = []
    real_save = torch.save

    def recording_save(obj, f):
        written.append(Path(f))
        real_save(obj, f)

    monkeypatch.setattr(engine.torch, "save", recording_save)
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"epoch": 0})
    save_checkpoint(path, {"epoch": 1})
    assert len(set(written)) == 2 and all(p.parent == tmp_path for p in written)
    assert all(p.name.startswith(".checkpoint.pt.") and p.name.endswith(".tmp") for p in written)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]  # none left behind
    assert load_checkpoint(path) == {"epoch": 1}

    def failing_save(obj, f):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(engine.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]
    assert load_checkpoint(path) == {"epoch": 1}  # the last good one is untouched


def test_checkpoint_lock_is_reentrant_and_records_the_pid(tmp_path):
    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    with checkpoint_lock(tmp_path) as lock:
        assert lock == tmp_path / LOCK
        assert lock.read_text() == f"{os.getpid()}\n"
        # the train stage holds the lock around fit, which takes it again in the same process
        res = fit(ToyTask(), TrainConfig(epochs=1, lr=0.05, device="cpu"), seed=0,
                  checkpoint_dir=tmp_path, progress=False)  # fmt: skip
        assert len(res.history) == 1
    with checkpoint_lock(tmp_path):  # released: it can be taken again
        pass


@pytest.mark.slow
def test_second_trainer_of_one_experiment_fails_at_once_naming_the_holder(tmp_path):
    first = run_toy(tmp_path, "first", 8, "--sleep", "1.0", wait=False)
    lock = tmp_path / "ckpt_first" / LOCK
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.exists() and lock.read_text().strip()):
        time.sleep(0.05)
    assert lock.read_text().strip() == str(first.pid)
    # a second training into the same checkpoint folder, as a second process
    second = subprocess.run(
        [
            sys.executable,
            str(TOY),
            str(tmp_path / "ckpt_first"),
            str(tmp_path / "second.json"),
            "8",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    still_training = first.poll() is None
    assert second.returncode != 0
    assert "TrainerBusyError" in second.stderr
    assert f"process {first.pid} is training this experiment" in second.stderr
    assert f"kill {first.pid}" in second.stderr
    assert still_training  # it failed at once: it did not wait for the first one to finish
    assert not (tmp_path / "second.json").exists()
    assert first.wait(timeout=300) == 0
    result = json.loads((tmp_path / "first.json").read_text())
    assert len(result["history"]) == 8 and result["resumed_from_epoch"] is None
    # the lock went with the first process: a new training of the experiment may start
    again = run_toy(tmp_path, "first", 8)
    assert again["resumed_from_epoch"] == 8


@pytest.mark.slow
def test_lock_of_a_killed_trainer_is_released(tmp_path):
    code = (
        "import sys, time; from simlearn.engine import checkpoint_lock\n"
        "with checkpoint_lock(sys.argv[1]):\n    print('locked', flush=True); time.sleep(600)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TrainerBusyError, match=f"process {holder.pid} is training"):
            with checkpoint_lock(tmp_path):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with checkpoint_lock(tmp_path) as lock:  # the kernel dropped the dead holder's lock
        assert lock.read_text() == f"{os.getpid()}\n"


@pytest.mark.parametrize("every", [3, 8, 50])
def test_losses_read_in_groups_give_the_same_history_as_read_every_step(
    tmp_path, monkeypatch, every
):
    # on CUDA the engine reads the losses every SYNC_EVERY_CUDA steps (no host sync per step);
    # grouped reads on the CPU must give the same epoch losses, bit for bit, and the same weights
    import simlearn.engine as engine

    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    def run(k: int, folder: Path):
        monkeypatch.setattr(engine, "SYNC_EVERY_CPU", k)
        torch.manual_seed(0)
        task = ToyTask()
        cfg = TrainConfig(epochs=3, lr=0.05, device="cpu", num_threads=1)
        res = fit(task, cfg, seed=0, checkpoint_dir=folder, progress=False)
        return [r["loss"] for r in res.history], [
            p.detach().clone() for p in task.model.parameters()
        ]

    (l1, p1), (lk, pk) = run(1, tmp_path / "a"), run(every, tmp_path / "b")
    assert l1 == lk
    assert all(torch.equal(a, b) for a, b in zip(p1, pk, strict=True))


def test_a_non_finite_loss_read_in_a_group_still_stops_naming_its_step(tmp_path, monkeypatch):
    import simlearn.engine as engine

    sys.path.insert(0, str(HERE))
    from toy import ToyTask

    monkeypatch.setattr(engine, "SYNC_EVERY_CPU", 5)  # 8 steps an epoch: read after 5, then 3
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, step 1;") as info:
        fit(
            ToyTask(nan_at_epoch=2),
            TrainConfig(epochs=3, lr=0.05, device="cpu"),
            seed=0,
            checkpoint_dir=tmp_path,
            progress=False,
        )
    assert "the last good checkpoint, after epoch 1, is kept" in str(info.value)
    state = load_checkpoint(tmp_path / CHECKPOINT)
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in state["model"].values())
