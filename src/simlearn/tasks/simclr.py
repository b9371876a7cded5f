"""The ``simclr`` task: self-supervised contrastive learning (Chen et al. 2020, "A Simple
Framework for Contrastive Learning of Visual Representations").

Each training image gives two random views (:mod:`simlearn.augment`); the encoder f embeds them,
an optional MLP projection head g maps the embeddings to the space where NT-Xent compares them:
each view must pick its sibling out of the other 2N - 2 views of the batch. Labels are not used
for training; they are used only to monitor retrieval mAP on the validation split, as in the
metric task. After training g is thrown away: ``model.pt`` holds f alone, and evaluation (kNN,
linear probe, retrieval mAP) runs on f's embeddings.

``holdout_classes`` works as in the metric task: those classes' images are removed from training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from simlearn.augment import random_view
from simlearn.config import ExperimentConfig
from simlearn.data.image_dataset import ImageDataset
from simlearn.data.samplers import RandomBatchSampler
from simlearn.engine import gather_across_ranks
from simlearn.losses import NTXentLoss
from simlearn.models import Embedder
from simlearn.tasks.metric import DeviceImages, check_holdout, new_embedder, validation_figures


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


class SimCLRTask:
    """Random batches, two views per image, NT-Xent; validation as in the metric task."""

    def __init__(self, cfg: ExperimentConfig, ds: ImageDataset) -> None:
        if cfg.task != "simclr":
            raise ValueError(f"task={cfg.task!r}: SimCLRTask runs task simclr")
        self.cfg = cfg
        self.ds = ds
        holdout = check_holdout(cfg, ds)
        self.train_idx = ds.indices("train", exclude=holdout)
        if len(self.train_idx) < 2:
            raise ValueError("the training split has fewer than 2 images after holdout_classes")
        embedder, self.spec = new_embedder(cfg, ds, self.train_idx)
        self.model = SimCLRModel(embedder, cfg.model.embedding_dim, cfg.model.projection_dim)
        self._images = DeviceImages(ds.images)
        s = cfg.sampler
        self.sampler = RandomBatchSampler(
            len(self.train_idx), s.batch_size, cfg.seed, s.steps_per_epoch
        )
        self.criterion = NTXentLoss(temperature=cfg.loss.temperature)
        a = cfg.augment
        self._view_args: dict[str, Any] = {
            "degrees": a.degrees,
            "translate": a.translate,
            "scale_range": (a.scale_min, a.scale_max),
            "flip_p": a.flip_p,
            "brightness": a.brightness,
            "contrast": a.contrast,
        }

    @property
    def embedder(self) -> Embedder:
        return self.model.embedder

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        for rows, view_seed in self.sampler.epoch(epoch, rank, world_size):
            yield self.train_idx[rows], view_seed

    def views(
        self, rows: np.ndarray, view_seed: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two random views (B, C, H, W) in [0, 1] of dataset rows, fixed by ``view_seed``."""
        x = self._images(rows, device)
        g = torch.Generator().manual_seed(view_seed)
        return random_view(x, g, **self._view_args), random_view(x, g, **self._view_args)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        rows, view_seed = batch
        v1, v2 = self.views(rows, view_seed, device)
        z = model(torch.cat([v1, v2])).float()  # one pass: BN sees both views together
        # under torchrun every rank's views are negatives too: one global batch, as in the paper
        z1, z2 = gather_across_ranks(z[: len(rows)]), gather_across_ranks(z[len(rows) :])
        return self.criterion(z1, z2), len(rows)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        return validation_figures(self.cfg, self.ds, model.embedder, device)
