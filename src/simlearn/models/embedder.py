"""The model that stages save, MLflow logs and ``embed`` runs: input normalisation + encoder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn


class Embedder(nn.Module):
    """Takes float images in [0, 1], (B, C, H, W); standardises each channel with the training
    split's mean and std (stored as buffers, so the saved model needs no other state); encodes."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        return self.encoder((x - self.mean) / self.std)


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    x = torch.as_tensor(images)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


@torch.no_grad()
def embed_images(
    model: nn.Module, images: np.ndarray, device: torch.device | str = "cpu", batch_size: int = 1024
) -> np.ndarray:
    """Embed uint8 images (N, H, W, C) in batches; returns float32 (N, D)."""
    model = model.to(device).eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = to_input(np.asarray(images[start : start + batch_size])).to(device)
        out.append(model(x).float().cpu())
    if not out:
        raise ValueError("embed_images: no images to embed")
    return torch.cat(out).numpy().astype(np.float32)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, H, W, C), on the [0, 1] scale."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def model_spec(model: Any, in_channels: int, mean: list[float], std: list[float]) -> dict:
    """What ``model.pt`` stores to rebuild a network: the model config section, the input
    channels and the training split's channel statistics."""
    from simlearn.config import to_dict

    return {**to_dict(model), "in_channels": in_channels, "input_mean": mean, "input_std": std}


def new_embedder(model: Any, images: np.ndarray, seed: int) -> tuple[Embedder, dict]:
    """A freshly initialised network for model config ``model`` (its weights depend on ``seed``
    alone) behind the input normalisation of ``images`` (the training rows, uint8 (N, H, W, C));
    and its spec."""
    from simlearn.models.encoders import build_encoder

    mean, std = channel_stats(images)
    spec = model_spec(model, images.shape[3], mean, std)
    torch.manual_seed(seed)
    return Embedder(build_encoder(spec), mean, std), spec


def embed_labelled(cfg: Any, model: Any, ds: Any, device: Any) -> dict[str, np.ndarray]:
    """What ``embed`` writes for an image task: ``embeddings`` float32 (N, D), ``labels`` int64
    (N,), ``ids`` (N,), ``split`` (N,) and ``holdout`` bool (N,) (classes never trained on)."""
    emb = embed_images(model, ds.images, device)
    return {
        "embeddings": emb,
        "labels": ds.labels,
        "ids": ds.ids,
        "split": ds.splits,
        "holdout": np.isin(ds.labels, np.asarray(cfg.holdout_classes, dtype=np.int64)),
    }
