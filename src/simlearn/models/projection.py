"""SimCLR's trained model: the encoder f (an :class:`Embedder`) and the projection head g."""

from __future__ import annotations

import torch
from torch import nn

from simlearn.models.embedder import Embedder


class ProjectionHead(nn.Module):
    """SimCLR's g: Linear - BN - ReLU - Linear (the paper's two-layer MLP)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim_in, dim_in, bias=False),
            nn.BatchNorm1d(dim_in),
            nn.ReLU(inplace=True),
            nn.Linear(dim_in, dim_out),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLRModel(nn.Module):
    """What is trained: ``g(f(x))``. ``embedder`` (f with its input normalisation) is what is
    saved and evaluated."""

    def __init__(self, embedder: Embedder, embedding_dim: int, projection_dim: int) -> None:
        super().__init__()
        self.embedder = embedder
        self.head: nn.Module = (
            ProjectionHead(embedding_dim, projection_dim) if projection_dim else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedder(x))
