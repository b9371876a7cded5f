"""The one training loop every task uses.

A task supplies what differs (its model, its batches, its loss, its validation figure); the
engine does the rest:

- device: CUDA, then MPS, then CPU unless ``train.device`` says otherwise; bf16 autocast on CUDA;
- seeding: one seed fixes the initial weights and (through the samplers) every batch, so a seeded
  CPU run is reproducible;
- a checkpoint after every epoch (written to a uniquely named temporary file, then renamed, so a
  kill at any moment leaves the last good one intact) and resume from it;
- one trainer per checkpoint folder: :func:`checkpoint_lock` holds an exclusive ``flock`` on
  ``train.lock`` there for the whole training, and a second trainer of the same experiment fails
  at once with :class:`TrainerBusyError` naming the holder's PID;
- a progress bar with the loss and samples/s, one history row per epoch, an ``on_epoch_end``
  callback (the stage logs the row to MLflow);
- a non-finite loss stops training with :class:`NonFiniteLossError` naming the epoch and step,
  and weights that became non-finite in an epoch's last steps stop it before they are saved: no
  checkpoint ever holds non-finite weights. The message says whether a good checkpoint is kept;
- ``torchrun --nproc_per_node=N``: DistributedDataParallel, each rank draws its own share of the
  batches, and rank 0 alone validates, checkpoints and calls back.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from simlearn.config import TrainConfig

CHECKPOINT = "checkpoint.pt"
SYNC_EVERY_CUDA = 25  # steps between two reads of the loss on the host, on CUDA
SYNC_EVERY_CPU = 1  # on a CPU reading it costs nothing
LOCK = "train.lock"  # in the checkpoint folder; holds the PID of the training that owns it


class NonFiniteLossError(RuntimeError):
    """The loss (or the weights) became NaN or infinite; training stopped, and no checkpoint with
    non-finite values was written."""


class CheckpointError(OSError):
    """A checkpoint cannot be written (full disk, quota) or read (damaged); the message names the
    file and what to do."""


class TrainerBusyError(RuntimeError):
    """Another process is training into the same checkpoint folder (it holds the lock)."""


class Task(Protocol):
    """What the engine needs from a task."""

    model: nn.Module

    def batches(self, epoch: int, rank: int, world_size: int) -> Iterable[Any]: ...

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        """The batch loss and the number of input samples it consumed."""
        ...

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]: ...


@dataclass
class FitResult:
    history: list[dict[str, float]]
    device: str
    world_size: int
    resumed_from_epoch: int | None = None  # the last completed epoch found in a checkpoint

    @property
    def train_seconds(self) -> float:
        return float(sum(r["seconds"] for r in self.history))

    @property
    def samples_per_s(self) -> float:
        secs = self.train_seconds
        return float(sum(r["samples"] for r in self.history) / secs) if secs > 0 else 0.0


# ----------------------------------------------------------------------------- setup


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed every generator; with ``deterministic``, also ask torch for deterministic kernels.

    Seeds alone are not enough: the backward pass of indexing with repeated indices (``e[a]``
    for mined triplets) accumulates in a thread-dependent order on CPU, and two seeded runs
    drift apart after a few epochs.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it
        torch.use_deterministic_algorithms(True, warn_only=True)


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device='cuda' but torch sees no CUDA device; use 'auto'")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if name == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("train.device='mps' but MPS is not available; use 'auto'")
    return torch.device(name)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1), else a no-op."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world)
    if not dist.is_initialized():
        use_nccl = torch.cuda.is_available() and device_name in ("auto", "cuda")
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return info


def gather_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` (B, ...) of every rank, concatenated in rank order; the identity outside a
    distributed run. Every rank must pass the same shape.

    Gradients flow back to each rank's own slice. With every rank computing the same loss on the
    gathered batch, the gather's backward sums W equal copies and DDP divides by W, so the update
    is exactly that of one process with the whole global batch (batch norm aside: it still sees
    each rank's share). Batch losses then see every rank's samples as negatives, as SimCLR does.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    if t.requires_grad:
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(t))
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


# ----------------------------------------------------------------------------- checkpoints


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Atomic: a crash while writing leaves the previous checkpoint in place.

    The temporary file has a unique name in the same folder, so two writers never share one (and
    one never renames the other's away), and a failed write removes it. A write that fails (a
    full disk: torch reports it as ``unexpected pos ...``; a quota; a file-size limit) raises
    `CheckpointError` naming the file, the free space and that the previous checkpoint is kept.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(_write_failure(path, err)) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_failure(path: Path, err: BaseException) -> str:
    """What a failed checkpoint write tells the user: the file, the cause in words, the room
    left, and what was kept."""
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**20:,.0f} MiB free"
    except OSError:
        free = "free space unknown"
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC:
        cause = "the disk is full"
    elif "unexpected pos" in str(err) or "failed writing" in str(err):  # torch's words for it
        cause = "the write stopped short (a full disk, a quota or a file-size limit)"
    elif code == errno.EFBIG:
        cause = "the file-size limit (ulimit -f) was reached"
    elif code == errno.EDQUOT:
        cause = "the disk quota is exhausted"
    else:
        cause = f"the write failed ({err})"
    kept = "the previous checkpoint is kept" if path.exists() else "no earlier checkpoint existed"
    return (
        f"cannot write the checkpoint {path}: {cause} ({free} in {path.parent}). Nothing was "
        f"replaced: {kept}. Free some space and rerun: training resumes from the last checkpoint."
    )


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (None when there is none); a damaged one raises
    `CheckpointError` saying how to start afresh."""
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(
            f"the checkpoint {path} cannot be read ({err}): it is truncated or damaged. Delete "
            "it to start this training afresh."
        ) from err


_HELD_LOCKS: dict[str, int] = {}  # lock path -> how many nested checkpoint_lock blocks hold it


@contextlib.contextmanager
def checkpoint_lock(checkpoint_dir: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of ``checkpoint_dir`` for the block: one trainer per experiment.

    The lock is an ``fcntl.flock`` on ``<checkpoint_dir>/train.lock``, which holds the owner's
    PID. The kernel releases it when the owner exits, however it dies (SIGKILL included), so a
    stale file never blocks a rerun. A second process fails at once with `TrainerBusyError`
    naming that PID. Re-entrant within a process: the train stage takes it before it opens the
    MLflow run, and `fit` takes it again.

    Raises:
        TrainerBusyError: another process holds the lock.
    """
    folder = Path(checkpoint_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    key = os.path.abspath(path)
    if _HELD_LOCKS.get(key):
        _HELD_LOCKS[key] += 1
        try:
            yield path
        finally:
            _HELD_LOCKS[key] -= 1
        return
    fd = _acquire(path)
    _HELD_LOCKS[key] = 1
    try:
        yield path
    finally:
        del _HELD_LOCKS[key]
        os.close(fd)  # releases the flock; the file stays (removing it would race a waiter)


def _acquire(path: Path) -> int:
    """Open and flock ``path``, write our PID into it, and return the descriptor."""
    import fcntl  # POSIX; the project runs on Linux and macOS

    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise TrainerBusyError(_busy_message(path)) from None
        try:
            same_file = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            break
        os.close(fd)  # the folder was removed (a finished training) while we waited: retry
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _busy_message(path: Path) -> str:
    pid = ""
    for _ in range(20):  # the holder writes its PID just after it takes the lock
        with contextlib.suppress(OSError):
            pid = path.read_text().strip()
        if pid:
            break
        time.sleep(0.05)
    holder = f"process {pid}" if pid else "another process (its PID was not written yet)"
    return (
        f"{path.parent} is in use: {holder} is training this experiment and holds {path}. "
        "Two trainings of one experiment would overwrite each other's checkpoint and MLflow run. "
        f"Wait for it to finish, or stop it (kill {pid or '<pid>'}) and rerun: with the same "
        "params, the new training resumes from its last checkpoint."
    )


# ----------------------------------------------------------------------------- the loop


def fit(
    task: Task,
    cfg: TrainConfig,
    *,
    seed: int,
    checkpoint_dir: str | Path,
    fingerprint: str = "",
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> FitResult:
    """Train ``task.model`` for ``cfg.epochs`` epochs, resuming from ``checkpoint_dir`` if a
    checkpoint with the same ``fingerprint`` (a hash of the params) is there.

    Rank 0 holds :func:`checkpoint_lock` on ``checkpoint_dir`` throughout.

    Raises:
        TrainerBusyError: another process is training into ``checkpoint_dir``.
        NonFiniteLossError: the loss or the weights became NaN or infinite.
    """
    info = init_distributed(cfg.device)
    device = pick_device(cfg.device, info.local_rank)
    with contextlib.ExitStack() as stack:
        busy: TrainerBusyError | None = None
        if info.is_main:
            try:
                stack.enter_context(checkpoint_lock(checkpoint_dir))
            except TrainerBusyError as err:
                busy = err
        if info.enabled:  # every rank stops together, none waits forever in a collective
            flag = torch.tensor(float(busy is not None), device=device)
            dist.all_reduce(flag)
            if flag.item() > 0 and busy is None:
                raise TrainerBusyError(
                    f"rank 0 could not lock {checkpoint_dir}: another training of this "
                    "experiment is running (rank 0's error names its PID)"
                )
        if busy is not None:
            raise busy
        return _fit(task, cfg, info, device, seed, Path(checkpoint_dir), fingerprint,
                    on_epoch_end, progress, desc)  # fmt: skip


def _fit(
    task: Task,
    cfg: TrainConfig,
    info: DistInfo,
    device: torch.device,
    seed: int,
    checkpoint_dir: Path,
    fingerprint: str,
    on_epoch_end: Callable[[dict[str, float]], None] | None,
    progress: bool,
    desc: str,
) -> FitResult:
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(seed, cfg.deterministic)
    model = task.model.to(device)
    ddp_model: nn.Module = model
    if info.enabled and device.type == "cpu":
        # oneDNN's CPU convolution backward returns weight gradients in a channels-last layout
        # that DDP's gradient buckets copy wrongly on this torch: both gloo ranks of a convnet
        # die of "corrupted double-linked list" in the first backward (tests/test_train_devices.py);
        # torch's own CPU kernels give standard strides
        torch.backends.mkldnn.enabled = False
    if info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = _optimizer(model, cfg)
    steps_per_epoch = _count(task.batches(0, info.rank, info.world_size))
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = _scheduler(optimizer, cfg, total_steps)
    use_amp = cfg.amp and device.type == "cuda"
    # on CUDA, reading the loss on the host every step stalls the queue of kernels: the losses
    # are read (and checked finite) every SYNC_EVERY_CUDA steps instead; on a CPU it costs
    # nothing, and each loss is checked before its step, as the epoch's numbers always were
    every = SYNC_EVERY_CUDA if device.type == "cuda" else SYNC_EVERY_CPU

    ckpt_path = checkpoint_dir / CHECKPOINT
    history: list[dict[str, float]] = []
    start_epoch, resumed = 0, None
    saved: int | None = None  # epochs completed in this training's last checkpoint
    state = load_checkpoint(ckpt_path)
    # a checkpoint of another architecture is never loaded, whatever fingerprint was passed
    fingerprint = f"{fingerprint}|{_architecture(model)}"
    if state is not None and state.get("fingerprint") == fingerprint:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history = [dict(r) for r in state["history"]]
        start_epoch = resumed = saved = int(state["epoch"]) + 1
        if info.is_main and progress:
            print(f"[{desc}] resuming after epoch {start_epoch} from {ckpt_path}", flush=True)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, n_samples, n_steps = 0.0, 0, 0
        bar = _bar(steps_per_epoch, f"{desc} {epoch + 1}/{cfg.epochs}", progress and info.is_main)
        pending: list[tuple[torch.Tensor, int, int]] = []  # losses not yet read on the host
        for step, batch in enumerate(task.batches(epoch, info.rank, info.world_size)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, n = task.loss(ddp_model, batch, device)
            if every == 1:  # on the host anyway: stop before a non-finite loss is stepped on
                _check_finite(loss, epoch, step, info, _kept(ckpt_path, saved))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            pending.append((loss.detach(), n, step))
            n_samples += n
            n_steps += 1
            if len(pending) >= every:
                for x in _read_losses(pending, epoch, info, _kept(ckpt_path, saved)):
                    loss_sum += x  # one step at a time, as when each loss was read at once
                pending = []
                if bar is not None:
                    rate = n_samples * info.world_size / max(time.perf_counter() - t0, 1e-9)
                    shown = f"{loss_sum / max(n_samples, 1):.4f}"
                    bar.set_postfix(loss=shown, samples_s=f"{rate:.0f}")
            if bar is not None:
                bar.update(1)
        if pending:
            for x in _read_losses(pending, epoch, info, _kept(ckpt_path, saved)):
                loss_sum += x
        if bar is not None:
            bar.close()
        # the loss was finite, but the epoch's last updates may still have overflowed
        _check_finite_state(model, optimizer, epoch, info, device, _kept(ckpt_path, saved))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        mean_loss = _mean_across_ranks(loss_sum, n_samples, info, device)
        row: dict[str, float] = {
            "epoch": epoch + 1,
            "loss": mean_loss,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": seconds,
            "samples": n_samples * info.world_size,
            "samples_per_s": n_samples * info.world_size / seconds if seconds > 0 else 0.0,
        }
        if info.is_main:
            model.eval()
            row.update(task.validate(model, device))
            history.append(row)
            save_checkpoint(
                ckpt_path,
                {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                },
            )
            saved = epoch + 1
            if on_epoch_end is not None:
                on_epoch_end(row)
            if progress:
                shown = ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch")
                print(f"[{desc}] epoch {epoch + 1}: {shown}", flush=True)
        if info.enabled:
            dist.barrier()
    model.eval()
    return FitResult(history, str(device), info.world_size, resumed)


def _architecture(model: nn.Module) -> str:
    """A short hash of the model's parameter and buffer names and shapes."""
    shapes = sorted((k, tuple(v.shape)) for k, v in model.state_dict().items())
    return hashlib.sha256(repr(shapes).encode()).hexdigest()[:16]


def _count(it: Iterable[Any]) -> int:
    return sum(1 for _ in it)


def _bar(total: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, mininterval=0.5)


def _kept(ckpt_path: Path, saved: int | None) -> str:
    """What a stopped training leaves to resume from, for the error message."""
    if saved is None:
        return (
            "no checkpoint of this training was written yet (one is saved after each epoch), "
            "so a rerun starts from scratch"
        )
    return f"the last good checkpoint, after epoch {saved}, is kept at {ckpt_path}"


def _check_finite(
    loss: torch.Tensor, epoch: int, step: int, info: DistInfo, kept: str = ""
) -> None:
    bad = torch.tensor(float(not torch.isfinite(loss.detach()).all()), device=loss.device)
    if info.enabled:
        dist.all_reduce(bad)  # every rank stops together, none waits forever in a collective
    if bad.item() > 0:
        raise NonFiniteLossError(
            f"non-finite loss ({float(loss.detach())}) at epoch {epoch + 1}, step {step + 1}; "
            f"training stopped; {kept}. Lower train.lr, set train.grad_clip, or check the inputs."
        )


def _check_finite_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    info: DistInfo,
    device: torch.device,
    kept: str,
) -> None:
    """Stop before a checkpoint with non-finite weights (or optimizer state) could be written.

    A finite loss does not make the update after it finite: an overflowing gradient in an epoch's
    last step turns the weights into inf or NaN, and only the next loss would show it.
    """
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for i, state in enumerate(optimizer.state.values()):
        tensors.update({f"optimizer.state[{i}].{k}": v for k, v in state.items()})
    named = [(k, v) for k, v in tensors.items() if torch.is_tensor(v) and v.is_floating_point()]
    finite = torch.stack([torch.isfinite(v).all().to(device) for _, v in named]).cpu()  # (T,)
    bad = [k for (k, _), ok in zip(named, finite.tolist(), strict=True) if not ok]
    flag = torch.tensor(float(bool(bad)), device=device)
    if info.enabled:
        dist.all_reduce(flag)  # every rank stops together
    if flag.item() > 0:
        shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise NonFiniteLossError(
            f"non-finite weights after epoch {epoch + 1} ({shown or 'on another rank'}): an "
            "update overflowed although the loss was finite. Training stopped and this epoch "
            f"was not saved; {kept}. Lower train.lr, set train.grad_clip, or check the inputs."
        )


def _read_losses(
    pending: list[tuple[torch.Tensor, int, int]], epoch: int, info: DistInfo, kept: str
) -> list[float]:
    """``float(loss) * n`` of each ``pending`` step, read in one host sync; a non-finite loss
    among them stops training, naming the first such step. The caller adds them one at a time,
    so the epoch's mean loss is the same number whether losses are read each step or in groups.
    """
    losses = torch.stack([t.float().reshape(()) for t, _, _ in pending])
    finite = torch.isfinite(losses)
    bad = (~finite).any().to(torch.float32).reshape(1)
    if info.enabled:
        dist.all_reduce(bad)  # every rank stops together, none waits forever in a collective
    values = losses.double().cpu().tolist()  # the one host sync
    if bad.item() > 0:
        i = next((k for k, v in enumerate(values) if not math.isfinite(v)), None)
        where = f"step {pending[i][2] + 1}" if i is not None else "a step on another rank"
        raise NonFiniteLossError(
            f"non-finite loss ({values[i] if i is not None else 'nan'}) at epoch {epoch + 1}, "
            f"{where}; training stopped; {kept}. Lower train.lr, set train.grad_clip, or check "
            "the inputs."
        )
    return [v * n for v, (_, n, _) in zip(values, pending, strict=True)]


def _mean_across_ranks(total: float, n: int, info: DistInfo, device: torch.device) -> float:
    if not info.enabled:
        return total / max(n, 1)
    t = torch.tensor([total, float(n)], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t[0] / max(t[1].item(), 1.0))


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _scheduler(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps))
        )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
