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

__all__ = ["SimCLRTask", "ViewsAhead"]


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
        self._following: tuple[np.ndarray, int] | None = None  # the batch after the current one
        self._views_ahead: ViewsAhead | None = None

    @property
    def embedder(self) -> Embedder:
        return self.model.embedder

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        out = ((self.train_idx[r], seed) for r, seed in self.sampler.epoch(epoch, rank, world_size))
        if self._ahead is not None:
            yield from self._ahead.iterate(out, lambda b: b[0])
            return
        # in memory: while batch k is yielded, batch k + 1 is known, so that on CUDA its views
        # are made on a side stream during step k (:class:`ViewsAhead`); the batches are the same
        current = next(out, None)
        while current is not None:
            self._following = next(out, None)
            yield current
            current = self._following

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
        v1, v2 = self._views_ahead_get(batch, device)
        z = model(torch.cat([v1, v2])).float()  # one pass: BN sees both views together
        # under torchrun every rank's views are negatives too: one global batch, as in the paper
        z1, z2 = gather_across_ranks(z[: len(rows)]), gather_across_ranks(z[len(rows) :])
        return self.criterion(z1, z2), len(rows)

    def _views_ahead_get(
        self, batch: tuple[np.ndarray, int], device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's views; on CUDA with images in memory, made ahead (:class:`ViewsAhead`)."""
        if device.type != "cuda" or self._ahead is not None:
            return self.views(batch[0], batch[1], device)
        if self._views_ahead is None:
            self._views_ahead = ViewsAhead(lambda b: self.views(b[0], b[1], device), device)
        return self._views_ahead.get(batch, self._following)

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        from simlearn.evaluation.protocol import validation_retrieval

        return validation_retrieval(self.cfg, self.ds, model.embedder, device)


class ViewsAhead:
    """On CUDA, the next batch's two views made on a side stream while the current step runs.

    SimCLR's views are a large share of a step on a GPU (``benchmarks/bench_simclr.py`` prints
    it); made in the training stream they sit on its critical path. :meth:`get` returns the views
    of ``batch`` (those made ahead when they are that batch's, else made now) and queues the views
    of ``following`` on the side stream. A view depends only on the batch's rows and seed
    (:meth:`SimCLRTask.views`), so the views are the same whichever stream makes them. Views
    made ahead are used in the training stream only after it waits for the side stream's event,
    and are marked as used there (``record_stream``), so the allocator never hands their memory
    out early.
    """

    def __init__(self, make: Any, device: torch.device) -> None:
        import torch

        self.make = make
        self.stream = torch.cuda.Stream(device)
        self._waited = False
        self._key: tuple[bytes, int] | None = None
        self._views: tuple[torch.Tensor, torch.Tensor] | None = None
        self._ready: Any = None

    @staticmethod
    def _key_of(batch: tuple[np.ndarray, int]) -> tuple[bytes, int]:
        rows, seed = batch
        return np.asarray(rows).tobytes(), int(seed)

    def get(
        self, batch: tuple[np.ndarray, int], following: tuple[np.ndarray, int] | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        main = torch.cuda.current_stream(self.stream.device)
        if self._views is not None and self._key == self._key_of(batch):
            main.wait_event(self._ready)
            views = self._views
            for v in views:
                v.record_stream(main)
        else:
            views = self.make(batch)
        self._views = self._key = None
        if following is not None:
            if not self._waited:  # the images were copied to the device in the main stream
                self.stream.wait_stream(main)
                self._waited = True
            with torch.cuda.stream(self.stream):
                self._views = self.make(following)
                self._ready = torch.cuda.Event()
                self._ready.record(self.stream)
            self._key = self._key_of(following)
        return views
