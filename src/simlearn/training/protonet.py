"""The protonet task's engine task: an image embedding trained in few-shot episodes with the
prototypical loss (Snell et al. 2017).

An episode is N classes with K support and Q query images each, all distinct: a P x K batch
of the metric task's sampler (:class:`~simlearn.data.samplers.PKSampler`) with P = N ways and
K + Q images per class, drawn from (seed, epoch, rank) and ordered class by class; the first K
images of each class are its support, the other Q its queries. Everything else is the metric
task's (:class:`~simlearn.training.metric.MetricTask`): the network, the images on the device
or read ahead from disk, the random views of ``augment``, and the validation (retrieval mAP on
the validation split's seen classes). So this module holds what differs: the episodes' shape
and the loss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ExperimentConfig, LossConfig, SamplerConfig
from simlearn.config.protonet import ProtonetConfig
from simlearn.data.image_dataset import ImageDataset
from simlearn.training.metric import MetricTask

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["ProtonetTask", "episode_sampler_config"]


def episode_sampler_config(cfg: ProtonetConfig) -> SamplerConfig:
    """The P x K sampler that draws ``cfg.episode``: P = ways, K = shots + queries."""
    e = cfg.episode
    return SamplerConfig(
        name="pk",
        classes_per_batch=e.ways,
        samples_per_class=e.shots + e.queries,
        steps_per_epoch=e.episodes_per_epoch,
    )


class ProtonetTask(MetricTask):
    """Episodes and the prototypical loss, on the metric task's data, views and validation.

    ``cfg`` is checked (:func:`simlearn.tasks.protonet.check` and ``check_data``): every seen
    training class has ``shots + queries`` images, so no episode repeats an image.
    """

    def __init__(self, cfg: ProtonetConfig, ds: ImageDataset) -> None:
        from simlearn.losses.prototypical_loss import PrototypicalLoss

        # the metric task's section with the episodes as its P x K sampler: its data plumbing,
        # views and validation read only model, seed, holdout_classes, augment, eval, sampler
        as_metric = ExperimentConfig(
            task="protonet",
            dataset=cfg.dataset,
            seed=cfg.seed,
            holdout_classes=cfg.holdout_classes,
            model=cfg.model,
            loss=LossConfig(),  # unused: replaced below
            sampler=episode_sampler_config(cfg),
            train=cfg.train,
            eval=cfg.eval,
            augment=cfg.augment,
        )
        super().__init__(as_metric, ds)
        self.episode = cfg.episode
        self.criterion = PrototypicalLoss(cfg.loss.distance, cfg.loss.temperature)

    def _forward_rows(self, batch: Any) -> np.ndarray:
        return batch  # one episode: N x (K + Q) rows, class by class

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        x, _ = self._train_inputs(batch, device)
        e = model(x).float()  # (N * (K + Q), D), class by class
        k = self.episode.shots
        e = e.view(self.episode.ways, k + self.episode.queries, -1)  # (N, K + Q, D)
        return self.criterion(e[:, :k], e[:, k:]), len(batch)
