"""The ``train:`` section every trained task shares: optimiser, schedule, device, precision."""

from __future__ import annotations

from dataclasses import dataclass

from simlearn.config.schema import ConfigError, at_least, greater, one_of

__all__ = ["TrainConfig"]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"  # adamw | sgd
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine (to 0 over the run) | none
    device: str = "auto"  # auto: cuda, then mps, then cpu
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU, where it would only slow things down
    grad_clip: float | None = None  # max gradient norm
    num_threads: int | None = None  # torch CPU threads; default: torch's choice
    deterministic: bool = True  # deterministic kernels: same seed, same run (costs speed on GPU)
    # processes of one training: N (DistributedDataParallel, one per GPU, or gloo on the CPU),
    # or auto (every visible GPU; one process without CUDA). The train stage launches itself
    # under torch.distributed.run, so `dvc repro` uses them; rank 0 writes and logs
    devices: int | str = 1

    def __post_init__(self) -> None:
        at_least("epochs", self.epochs, 1)
        greater("lr", self.lr, 0.0)
        at_least("weight_decay", self.weight_decay, 0.0)
        one_of("optimizer", self.optimizer, ("adamw", "sgd"))
        if self.optimizer == "sgd" and not 0.0 < self.momentum < 1.0:
            raise ConfigError(
                f"momentum={self.momentum!r}: optimizer sgd uses Nesterov momentum, "
                "which needs 0 < momentum < 1"
            )
        one_of("scheduler", self.scheduler, ("cosine", "none"))
        one_of("device", self.device, ("auto", "cpu", "cuda", "mps"))
        if self.grad_clip is not None:
            greater("grad_clip", self.grad_clip, 0.0)
        if self.num_threads is not None:
            at_least("num_threads", self.num_threads, 1)
        if isinstance(self.devices, str):
            if self.devices != "auto":
                raise ConfigError(
                    f"devices={self.devices!r}: give a number of processes (1, 2, ...) or auto"
                )
        else:
            at_least("devices", self.devices, 1)

    def processes(self) -> int:
        """How many processes the training runs in (``devices``; auto: the visible GPUs)."""
        if self.devices != "auto":
            return int(self.devices)
        if self.device in ("cpu", "mps"):
            return 1
        import torch

        return max(torch.cuda.device_count(), 1)
