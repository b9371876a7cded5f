"""The model that stages save, MLflow logs and ``embed`` runs: input normalisation + encoder."""

from __future__ import annotations

from collections.abc import Sequence

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
