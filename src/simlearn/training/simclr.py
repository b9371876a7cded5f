"""The simclr task's engine task (Chen et al. 2020, "A Simple Framework for Contrastive Learning
of Visual Representations", https://arxiv.org/abs/2002.05709).

Random batches of training images (:class:`~simlearn.data.samplers.RandomBatchSampler`, labels
unused), two random views of each (:func:`simlearn.augment.random_view`, fixed by a per-batch
seed), the encoder f and the projection head g on both views in one pass, and NT-Xent between
them over every rank's views. Validation is retrieval mAP of f on the validation split, as in
the metric task. Only f is exported (``embedder``). Images on disk stream as in the metric
task (decoded batch by batch, one batch ahead).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import AugmentConfig, ExperimentConfig
from simlearn.data.image_dataset import ImageDataset, check_holdout
from simlearn.training.read_ahead import ReadAhead

# torch, the engine and the models are imported where they are used, so that importing this
# module (the task module does, when params load) does not pay for them
if TYPE_CHECKING:
    import torch
    from torch import nn

    from simlearn.models import Embedder

__all__ = ["SimCLRTask"]


class SimCLRTask:
    """Random batches, two views per image, NT-Xent; validation as in the metric task.

    ``cfg`` is checked (:func:`simlearn.tasks.simclr.check`, which
    :func:`simlearn.tasks.experiment_config` runs): a network, loss ntxent, sampler random.
    """

    def __init__(self, cfg: ExperimentConfig, ds: ImageDataset) -> None:
        from simlearn.augment import view_kwargs
        from simlearn.data.image_files import device_images
        from simlearn.data.samplers import RandomBatchSampler
        from simlearn.losses import NTXentLoss
        from simlearn.models.embedder import new_embedder
        from simlearn.models.projection import SimCLRModel

        self.cfg = cfg
        self.ds = ds
        holdout = check_holdout(cfg.holdout_classes, ds)
        self.train_idx = ds.indices("train", exclude=holdout)
        if len(self.train_idx) < 2:
            raise ValueError("the training split has fewer than 2 images after holdout_classes")
        embedder, self.spec = new_embedder(cfg.model, ds.images, cfg.seed, self.train_idx)
        self.model = SimCLRModel(embedder, cfg.model.embedding_dim, cfg.model.projection_dim)
        # in memory: the whole set copied once to the device; files: each batch's rows decoded,
        # the next batch's while the network works on this one
        self._images: Any = device_images(ds.images)
        self._ahead = None if isinstance(ds.images, np.ndarray) else ReadAhead(self._images)
        if self._ahead is not None:
            self._images = self._ahead
        s = cfg.sampler
        self.sampler = RandomBatchSampler(
            len(self.train_idx), s.batch_size, cfg.seed, s.steps_per_epoch
        )
        self.criterion = NTXentLoss(temperature=cfg.loss.temperature)
        self._view_args: dict[str, Any] = view_kwargs(cfg.augment or AugmentConfig())

    @property
    def embedder(self) -> Embedder:
        return self.model.embedder

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        out = ((self.train_idx[r], seed) for r, seed in self.sampler.epoch(epoch, rank, world_size))
        yield from out if self._ahead is None else self._ahead.iterate(out, lambda b: b[0])

    def views(
        self, rows: np.ndarray, view_seed: int, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Two random views (B, C, H, W) in [0, 1] of dataset rows, fixed by ``view_seed``."""
        import torch

        from simlearn.augment import random_view

        x = self._images(rows, device)
        g = torch.Generator().manual_seed(view_seed)
        return random_view(x, g, **self._view_args), random_view(x, g, **self._view_args)

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        import torch

        from simlearn.engine import gather_across_ranks

        rows, view_seed = batch
        v1, v2 = self.views(rows, view_seed, device)
        z = model(torch.cat([v1, v2])).float()  # one pass: BN sees both views together
        # under torchrun every rank's views are negatives too: one global batch, as in the paper
        z1, z2 = gather_across_ranks(z[: len(rows)]), gather_across_ranks(z[len(rows) :])
        return self.criterion(z1, z2), len(rows)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        from simlearn.evaluation.protocol import validation_retrieval

        return validation_retrieval(self.cfg, self.ds, model.embedder, device)
