"""Training of the MC-CNN fast patch network: what :func:`simlearn.engine.fit` needs (the
engine's ``Task``): triplet batches of 9x9 patches (:mod:`simlearn.stereo.sampling`), the triplet
hinge on dot products of the normalised embeddings (:class:`~simlearn.losses.TripletMarginLoss`
with ``distance="dot"``), and patch-level triplet accuracy as the cheap validation figure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from simlearn.data.stereo_dataset import StereoDataset
from simlearn.losses import TripletMarginLoss
from simlearn.models.patchnet import PatchNet
from simlearn.stereo.matcher import image_tensor
from simlearn.stereo.sampling import TripletPatchSampler, gather_patches


class PatchTripletTask:
    """The engine's view of MC-CNN training: triplet batches of 9x9 patches, the triplet hinge on
    dot products, and patch-level triplet accuracy as the validation figure."""

    def __init__(self, cfg: Any, data: StereoDataset, anchors: list[tuple[int, tuple]]) -> None:
        m = cfg.model
        self.cfg = cfg
        self.net = PatchNet(data.channels, m.colour, m.batch_norm, m.features, m.layers)
        self.model: nn.Module = _TrainView(self.net)  # what the engine trains
        self.pairs = [i for i, _ in anchors]
        s = cfg.sampler
        self.sampler = TripletPatchSampler(
            [a for _, a in anchors], s.batch_size, s.steps_per_epoch, cfg.seed,
            s.pos_offset, s.neg_low, s.neg_high,
        )  # fmt: skip
        self.criterion = TripletMarginLoss(margin=cfg.loss.margin, distance="dot")
        self.radius = cfg.model.layers
        # standardised images of the training pairs, padded to one size: (P, c, H, W) per view
        lefts, rights = [], []
        for i in self.pairs:
            pair = data[i]
            lefts.append(self._prepare(pair.left))
            rights.append(self._prepare(pair.right))
        self._left = _stack_padded(lefts)
        self._right = _stack_padded(rights)
        self._on: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        # fixed triplets to measure patch-level accuracy (drawn apart from the training stream)
        self._check = self.sampler.draw(np.random.default_rng([cfg.seed, 2**31 - 1]), 4096)

    def _prepare(self, image: np.ndarray) -> torch.Tensor:
        return self.net.prepare(image_tensor(image))[0]  # (c, H, W) standardised per image

    def _images(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        key = str(device)
        if key not in self._on:
            self._on[key] = (self._left.to(device), self._right.to(device))
        return self._on[key]

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        return self.sampler.epoch(epoch, rank, world_size)

    def _embed(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, ...]:
        left, right = self._images(device)
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        pair, y = t(batch.pair), t(batch.y)
        patches = torch.cat(
            [
                gather_patches(left, pair, y, t(batch.x_anchor), self.radius),
                gather_patches(right, pair, y, t(batch.x_pos), self.radius),
                gather_patches(right, pair, y, t(batch.x_neg), self.radius),
            ]
        )  # (3B, c, 9, 9)
        e = model(patches).float().flatten(1)  # (3B, F)
        b = len(batch.y)
        return e[:b], e[b : 2 * b], e[2 * b :]

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        a, p, n = self._embed(model, batch, device)
        return self.criterion(a, p, n), 3 * len(a)

    @torch.no_grad()
    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        a, p, n = self._embed(model, self._check, device)
        correct = ((a * p).sum(1) > (a * n).sum(1)).float().mean()
        return {"triplet_accuracy": float(correct)}


def _stack_padded(images: list[torch.Tensor]) -> torch.Tensor:
    c = images[0].shape[0]
    h = max(x.shape[1] for x in images)
    w = max(x.shape[2] for x in images)
    out = torch.zeros(len(images), c, h, w)
    for k, x in enumerate(images):
        out[k, :, : x.shape[1], : x.shape[2]] = x
    return out


class _TrainView(nn.Module):
    """The network with the patch path as ``forward`` (what the engine, and DDP, call)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.net.embed_patches(patches)
