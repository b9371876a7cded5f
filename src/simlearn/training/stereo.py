"""The stereo task's engine task: training of the MC-CNN fast patch network, what
:func:`simlearn.engine.fit` needs (the engine's ``Task``): triplet batches of 9x9 patches
(:mod:`simlearn.stereo.sampling`), the triplet hinge on dot products of the normalised
embeddings (:class:`~simlearn.losses.TripletMarginLoss` with ``distance="dot"``), and
patch-level triplet accuracy as the cheap validation figure.

A batch of whole rows (``sampler.rows_per_step > 0``) is embedded as 9-row strips of both views,
without padding: column ``j`` of a strip's embedding is exactly the embedding of the 9x9 patch
centred on column ``j + 4`` (the same convolutions, shared between neighbours), so the loss is the
same function of the same patches, computed about 5 times faster. Winner-takes-all test
accuracy at 3 px on the motorcycle pair (2 CPU cores, seed 0, train stage wall time):

- 300 steps of 256 random pixels, one negative each (the paper's form): 0.8867 (24 s);
- 10,000 such steps: 0.9007 (736 s);
- 600 steps of 2 whole rows, the hardest of the 14 negatives: 0.8973 (39 s);
- 1,000 such steps: 0.8991 (68 s, machine shared).

The exported model is the whole matcher (:func:`build_matcher` from :func:`model_spec`), the
trained network inside: what the baselines (``ncc``, ``sgbm``) export too, with no network.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from simlearn.config import to_dict
from simlearn.config.stereo import StereoModelConfig
from simlearn.data.stereo_dataset import StereoDataset
from simlearn.losses import TripletMarginLoss
from simlearn.models.patchnet import PatchNet
from simlearn.stereo.matcher import StereoMatcher, image_tensor, num_disparities
from simlearn.stereo.sampling import TripletPatchSampler, gather_patches

if TYPE_CHECKING:
    from simlearn.config.stereo import Config

__all__ = ["PatchTripletTask", "build_matcher", "model_spec"]


def model_spec(cfg: Config, data: StereoDataset) -> dict[str, Any]:
    """What :func:`build_matcher` needs, saved in ``model.pt``: ``cfg.model``'s keys, the input
    channels, the disparities searched (enough for every pair of ``data``) and the patch side."""
    m = cfg.model
    return {
        **to_dict(m),
        "in_channels": data.channels,
        "num_disp": max(num_disparities(float(x)) for x in data.manifest["max_disp"]),
        "patch": 2 * m.layers + 1,
    }


def build_matcher(spec: Mapping[str, Any]) -> StereoMatcher:
    """The exported model from its spec (see :class:`~simlearn.stereo.matcher.StereoMatcher`);
    ``learned``: a freshly initialised network inside."""
    spec = {**to_dict(StereoModelConfig()), **spec}  # a model.pt saved before a key existed
    net = None
    if spec["method"] == "learned":
        net = PatchNet(
            spec["in_channels"],
            spec["colour"],
            spec["batch_norm"],
            spec["features"],
            spec["layers"],
        )
    sgbm = {
        "block_size": spec["block_size"],
        "p1_scale": spec["sgbm_p1"],
        "p2_scale": spec["sgbm_p2"],
        "uniqueness": spec["uniqueness"],
        "disp12_max_diff": spec["disp12_max_diff"],
        "speckle_window": spec["speckle_window"],
        "speckle_range": spec["speckle_range"],
        "mode": spec["sgbm_mode"],
        "pad": spec["sgbm_pad"],
    }
    return StereoMatcher(
        spec["method"],
        net,
        num_disp=spec["num_disp"],
        colour=spec["colour"],
        patch=spec["patch"],
        sgbm=sgbm,
        dtype=getattr(torch, spec["inference_dtype"]),
    )


class PatchTripletTask:
    """The engine's view of MC-CNN training: triplet batches of 9x9 patches, the triplet hinge on
    dot products, and patch-level triplet accuracy as the validation figure.

    ``anchors``: (pair index, (y, x, d)) of every pair with training pixels, as
    :func:`simlearn.tasks.stereo.training_anchors` chooses them. The network's initial weights
    come from ``cfg.seed``.
    """

    def __init__(self, cfg: Config, data: StereoDataset, anchors: list[tuple[int, tuple]]) -> None:
        m = cfg.model
        self.cfg = cfg
        self.spec = model_spec(cfg, data)
        torch.manual_seed(cfg.seed)
        self.net = PatchNet(data.channels, m.colour, m.batch_norm, m.features, m.layers)
        self.model: nn.Module = _TrainView(self.net)  # what the engine trains
        self.pairs = [i for i, _ in anchors]
        s = cfg.sampler
        self.sampler = TripletPatchSampler(
            [a for _, a in anchors], s.batch_size, s.steps_per_epoch, cfg.seed,
            s.pos_offset, s.neg_low, s.neg_high, s.rows_per_step, s.negatives,
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
        self._check = self.sampler.draw(
            np.random.default_rng([cfg.seed, 2**31 - 1]), 4096, negatives="one"
        )

    @property
    def embedder(self) -> StereoMatcher:
        """The model to export: the matcher of :attr:`spec` with the trained network's weights."""
        matcher = build_matcher(self.spec)
        matcher.net.load_state_dict(self.net.state_dict())  # type: ignore[union-attr]
        return matcher.eval()

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
        self, model: nn.Module, batch: Any, device: torch.device, strips: bool = False
    ) -> tuple[torch.Tensor, ...]:
        """Embeddings of the anchors (B, F), positives (B, F) and negatives (B, F), or (B, K, F)
        when ``batch.x_neg`` holds K candidates; from patches, or from row strips."""
        if strips:
            return self._embed_strips(model, batch, device)
        left, right = self._images(device)
        t = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
        b = len(batch.y)
        k = batch.x_neg.shape[1] if batch.x_neg.ndim == 2 else 1
        pair, y = t(batch.pair), t(batch.y)
        rep = lambda a: a.repeat_interleave(k) if k > 1 else a  # noqa: E731
        patches = torch.cat(
            [
                gather_patches(left, pair, y, t(batch.x_anchor), self.radius),
                gather_patches(right, pair, y, t(batch.x_pos), self.radius),
                gather_patches(right, rep(pair), rep(y), t(batch.x_neg.ravel()), self.radius),
            ]
        )  # (B (2 + K), c, 9, 9)
        e = model(patches).float().flatten(1)  # (B (2 + K), F)
        neg = e[2 * b :]
        return e[:b], e[b : 2 * b], neg.view(b, k, -1) if k > 1 else neg

    def _embed_strips(
        self, model: nn.Module, batch: Any, device: torch.device
    ) -> tuple[torch.Tensor, ...]:
        left, right = self._images(device)
        r = self.radius
        rows, inv = np.unique(np.stack([batch.pair, batch.y]), axis=1, return_inverse=True)
        span = torch.arange(-r, r + 1, device=device)
        ys = torch.as_tensor(rows[1], device=device)[:, None] + span  # (R, 9)
        pp = torch.as_tensor(rows[0], device=device)[:, None].expand_as(ys)
        strip = lambda img: img.permute(0, 2, 1, 3)[pp, ys].permute(0, 2, 1, 3)  # noqa: E731
        e = model(torch.cat([strip(left), strip(right)])).float()[:, :, 0]  # (2R, F, W - 2r)
        e = e.permute(0, 2, 1)  # (2R, W - 2r, F): column j is the patch centred on j + r
        n_rows = rows.shape[1]
        el, er = e[:n_rows], e[n_rows:]
        row = torch.as_tensor(inv.reshape(-1), device=device)
        col = lambda x: torch.as_tensor(x, device=device) - r  # noqa: E731
        neg_row = row[:, None] if batch.x_neg.ndim == 2 else row
        neg = er[neg_row, col(batch.x_neg)]
        return el[row, col(batch.x_anchor)], er[row, col(batch.x_pos)], neg

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        a, p, n = self._embed(model, batch, device, strips=self.sampler.rows_per_step > 0)
        if n.dim() == 3:  # K candidates per anchor: the most similar one is the negative
            with torch.no_grad():
                hardest = torch.einsum("bf,bkf->bk", a, n).argmax(1)
            n = n[torch.arange(len(n), device=n.device), hardest]
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
