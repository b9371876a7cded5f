"""The metric task's engine task: an image embedding trained with a pair, triplet or batch loss.

Batches come from the sampler the config names (P x K classes, balanced pairs, random triplets),
drawn from (seed, epoch, rank); triplets are mined in the batch
(:func:`~simlearn.losses.mine_triplets`), over every rank's batch under torchrun; validation is
retrieval mAP on the validation split's seen classes
(:func:`~simlearn.evaluation.protocol.validation_retrieval`).

Images held in memory are copied to the device once; images that stay on disk (``FileImages``)
are decoded batch by batch (:func:`simlearn.data.image_files.device_images`), the next batch
while the network works on this one (:class:`~simlearn.training.read_ahead.ReadAhead`), and
their channel statistics come from a bounded sample of training rows
(:func:`simlearn.models.embedder.new_embedder`): memory does not grow with the number of images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ExperimentConfig
from simlearn.data.image_dataset import ImageDataset, check_holdout
from simlearn.training.read_ahead import ReadAhead

# torch, the engine and the models are imported where they are used, so that importing this
# module (the task module does, when params load) does not pay for them
if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["MetricTask"]


class MetricTask:
    """Batches, loss and validation for deep metric learning on a labelled-image dataset.

    ``cfg`` is checked (:func:`simlearn.tasks.metric.check`, which
    :func:`simlearn.tasks.experiment_config` runs): the sampler can feed the loss.
    """

    def __init__(self, cfg: ExperimentConfig, ds: ImageDataset) -> None:
        if cfg.model.shallow:
            raise ValueError(
                f"model.name={cfg.model.name!r} is fitted, not trained: use fit_baseline"
            )
        import torch

        from simlearn.data.image_files import device_images
        from simlearn.data.samplers import PairSampler, PKSampler, TripletSampler
        from simlearn.models.embedder import new_embedder

        self.cfg = cfg
        self.ds = ds
        holdout = check_holdout(cfg.holdout_classes, ds)
        self.train_idx = ds.indices("train", exclude=holdout)
        self.val_idx = ds.indices("val", exclude=holdout)
        if len(self.train_idx) == 0:
            raise ValueError("the training split is empty after removing holdout_classes")
        self.model: nn.Module
        self.model, self.spec = new_embedder(cfg.model, ds.images, cfg.seed, self.train_idx)
        # in memory: the whole set copied once to the device; files: each batch's rows decoded,
        # the next batch's while the network works on this one
        self._images: Any = device_images(ds.images)
        self._ahead = None if isinstance(ds.images, np.ndarray) else ReadAhead(self._images)
        if self._ahead is not None:
            self._images = self._ahead
        self._y = torch.from_numpy(np.array(ds.labels, dtype=np.int64))
        self._labels_on: dict[str, torch.Tensor] = {}

        train_labels = ds.labels[self.train_idx]
        s = cfg.sampler
        if s.name == "pk":
            self.sampler: Any = PKSampler(
                train_labels, s.classes_per_batch, s.samples_per_class, cfg.seed, s.steps_per_epoch
            )
        elif s.name == "pairs":
            self.sampler = PairSampler(train_labels, s.batch_size, cfg.seed, s.steps_per_epoch)
        else:
            self.sampler = TripletSampler(train_labels, s.batch_size, cfg.seed, s.steps_per_epoch)
        self.criterion = _build_loss(cfg)

    @property
    def embedder(self) -> nn.Module:
        """The model that is saved and evaluated (here, the trained one itself)."""
        return self.model

    # -- data -------------------------------------------------------------------------------

    def _inputs(self, rows: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Dataset rows -> (float images (B, C, H, W) in [0, 1], labels (B,)) on ``device``."""
        import torch

        key = str(device)
        if key not in self._labels_on:
            self._labels_on[key] = self._y.to(device)
        idx = torch.as_tensor(rows, device=device)
        return self._images(rows, device), self._labels_on[key][idx]

    def _train_inputs(
        self, rows: np.ndarray, device: torch.device
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_inputs`, as one random view per image when ``augment`` is set.

        The views are fixed by the seed and the batch's rows (a SHA-256 of them), so a resumed
        run, or another rank, sees the views an uninterrupted one would have seen.
        """
        x, y = self._inputs(rows, device)
        if self.cfg.augment is None:
            return x, y
        import hashlib

        import torch

        from simlearn.augment import random_view, view_kwargs

        digest = hashlib.sha256(np.ascontiguousarray(rows, dtype=np.int64).tobytes()).digest()
        g = torch.Generator().manual_seed(int.from_bytes(digest[:7], "little") ^ self.cfg.seed)
        return random_view(x, g, **view_kwargs(self.cfg.augment)), y

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        # samplers index the training subset; map to dataset rows
        def rows(b: Any) -> Any:
            if isinstance(b, tuple):
                return tuple(self.train_idx[part] if part.dtype != bool else part for part in b)
            return self.train_idx[b]

        out = (rows(b) for b in self.sampler.epoch(epoch, rank, world_size))
        yield from out if self._ahead is None else self._ahead.iterate(out, self._forward_rows)

    def _forward_rows(self, batch: Any) -> np.ndarray:
        """The dataset rows of a batch in the order of its one forward pass."""
        if self.cfg.sampler.name == "pairs":  # (i, j, same)
            return np.concatenate(batch[:2])
        if self.cfg.sampler.name == "triplets":  # (a, p, n)
            return np.concatenate(batch)
        return batch

    # -- loss -------------------------------------------------------------------------------

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        import torch

        from simlearn.engine import gather_across_ranks

        name, s = self.cfg.loss.name, self.cfg.sampler
        if s.name == "pairs":  # (i, j, same): one forward pass over both sides
            i, j, same = batch
            x, _ = self._train_inputs(self._forward_rows(batch), device)
            e = model(x).float()
            a, b = e[: len(i)], e[len(i) :]
            return self.criterion(a, b, torch.as_tensor(same, device=device)), 2 * len(i)
        if s.name == "triplets":  # (a, p, n)
            rows = self._forward_rows(batch)
            x, _ = self._train_inputs(rows, device)
            e = model(x).float()
            t = len(batch[0])
            return self.criterion(e[:t], e[t : 2 * t], e[2 * t :]), len(rows)
        x, y = self._train_inputs(batch, device)
        e = model(x).float()  # (P*K, D), class by class
        if name == "npairs":  # rows pair up within one rank's batch; ranks may share classes
            k = s.samples_per_class
            e = e.view(-1, k, e.shape[-1])  # (P, K, D)
            losses = [self.criterion(e[:, 2 * t], e[:, 2 * t + 1]) for t in range(k // 2)]
            return torch.stack(losses).mean(), len(batch)
        # under torchrun: mine and compare over every rank's batch (labels decide positives)
        e, y = gather_across_ranks(e), gather_across_ranks(y)
        if name == "contrastive":
            from simlearn.losses import all_pairs

            i, j, same = all_pairs(y)
            return self.criterion(e[i], e[j], same), len(batch)
        if name == "triplet":
            from simlearn.losses import mine_triplets

            a, p, n = mine_triplets(
                e.detach(), y, self.cfg.sampler.mining, self.cfg.loss.margin, self.cfg.loss.distance
            )
            if len(a) == 0:  # nothing to learn from this batch; a zero that keeps the graph
                return e.sum() * 0.0, len(batch)
            return self.criterion(e[a], e[p], e[n]), len(batch)
        return self.criterion(e, y), len(batch)  # batch_hard, snn, supcon

    # -- validation -------------------------------------------------------------------------

    def validate(self, model: nn.Module, device: torch.device) -> dict[str, float]:
        from simlearn.evaluation.protocol import validation_retrieval

        return validation_retrieval(self.cfg, self.ds, model, device)


def _build_loss(cfg: ExperimentConfig) -> nn.Module:
    from simlearn import losses as L

    c = cfg.loss
    if c.name == "contrastive":
        return L.ContrastiveLoss(margin=c.margin, distance=c.distance)
    if c.name == "triplet":
        return L.TripletMarginLoss(margin=c.margin, distance=c.distance, soft=c.soft)
    if c.name == "batch_hard":
        return L.BatchHardTripletLoss(margin=c.margin, distance=c.distance, soft=c.soft)
    if c.name == "npairs":
        return L.NPairLoss(l2_reg=c.l2_reg)
    if c.name == "snn":
        return L.SoftNearestNeighborLoss(temperature=c.temperature)
    return L.SupConLoss(temperature=c.temperature)
