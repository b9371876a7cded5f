"""The one training loop every task uses.

A task supplies what differs (its model, its batches, its loss, its validation figure); the
engine does the rest:

- device: CUDA, then MPS, then CPU unless ``train.device`` says otherwise; bf16 autocast on CUDA;
- seeding: one seed fixes the initial weights and (through the samplers) every batch, so a seeded
  CPU run is reproducible;
- a checkpoint after every epoch (written to a temporary file, then renamed, so a kill at any
  moment leaves the last good one intact) and resume from it;
- a progress bar with the loss and samples/s, one history row per epoch, an ``on_epoch_end``
  callback (the stage logs the row to MLflow);
- a non-finite loss stops training with :class:`NonFiniteLossError` naming the epoch and step;
  the last good checkpoint is kept;
- ``torchrun --nproc_per_node=N``: DistributedDataParallel, each rank draws its own share of the
  batches, and rank 0 alone validates, checkpoints and calls back.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from simlearn.config import TrainConfig

CHECKPOINT = "checkpoint.pt"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; training stopped and the last checkpoint was kept."""


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
    """Atomic: a crash while writing leaves the previous checkpoint in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


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
    checkpoint with the same ``fingerprint`` (a hash of the params) is there."""
    info = init_distributed(cfg.device)
    device = pick_device(cfg.device, info.local_rank)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(seed, cfg.deterministic)
    model = task.model.to(device)
    ddp_model: nn.Module = model
    if info.enabled:
        ddp_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = _optimizer(model, cfg)
    steps_per_epoch = _count(task.batches(0, info.rank, info.world_size))
    total_steps = cfg.epochs * steps_per_epoch
    scheduler = _scheduler(optimizer, cfg, total_steps)
    use_amp = cfg.amp and device.type == "cuda"

    ckpt_path = Path(checkpoint_dir) / CHECKPOINT
    history: list[dict[str, float]] = []
    start_epoch, resumed = 0, None
    state = load_checkpoint(ckpt_path)
    # a checkpoint of another architecture is never loaded, whatever fingerprint was passed
    fingerprint = f"{fingerprint}|{_architecture(model)}"
    if state is not None and state.get("fingerprint") == fingerprint:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        history = [dict(r) for r in state["history"]]
        start_epoch = resumed = int(state["epoch"]) + 1
        if info.is_main and progress:
            print(f"[{desc}] resuming after epoch {start_epoch} from {ckpt_path}", flush=True)

    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        t0 = time.perf_counter()
        loss_sum, n_samples, n_steps = 0.0, 0, 0
        bar = _bar(steps_per_epoch, f"{desc} {epoch + 1}/{cfg.epochs}", progress and info.is_main)
        for step, batch in enumerate(task.batches(epoch, info.rank, info.world_size)):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss, n = task.loss(ddp_model, batch, device)
            _check_finite(loss, epoch, step, info)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * n
            n_samples += n
            n_steps += 1
            if bar is not None:
                rate = n_samples * info.world_size / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{loss_sum / max(n_samples, 1):.4f}", samples_s=f"{rate:.0f}")
                bar.update(1)
        if bar is not None:
            bar.close()
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


def _check_finite(loss: torch.Tensor, epoch: int, step: int, info: DistInfo) -> None:
    bad = torch.tensor(float(not torch.isfinite(loss.detach()).all()), device=loss.device)
    if info.enabled:
        dist.all_reduce(bad)  # every rank stops together, none waits forever in a collective
    if bad.item() > 0:
        raise NonFiniteLossError(
            f"non-finite loss ({float(loss.detach())}) at epoch {epoch + 1}, step {step + 1}; "
            "training stopped, the last good checkpoint is kept. Lower train.lr, set "
            "train.grad_clip, or check the inputs."
        )


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
