"""The ``metric`` task: an image embedding learned with a pair, triplet or batch loss, or a
shallow fitted baseline.

What differs from the other tasks lives here: which batches (P x K, balanced pairs, random
triplets), which loss, and the validation figure (retrieval mAP on the validation split, seen
classes only). The loop itself is :func:`simlearn.engine.fit`.

Held-out classes (``holdout_classes``) are removed from train and val: the model never sees
them, and evaluation reports them apart as "unseen".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from simlearn.config import ExperimentConfig, ModelConfig, to_dict
from simlearn.data.image_dataset import ImageDataset
from simlearn.data.samplers import PairSampler, PKSampler, TripletSampler
from simlearn.engine import gather_across_ranks
from simlearn.models import Embedder, build_encoder, embed_images, fit_shallow, to_input

# which samplers each loss can train on
_COMPATIBLE = {
    "contrastive": ("pairs", "pk"),
    "triplet": ("triplets", "pk"),
    "batch_hard": ("pk",),
    "npairs": ("pk",),
    "snn": ("pk",),
    "supcon": ("pk",),
}


def model_spec(model: ModelConfig, in_channels: int, mean: list[float], std: list[float]) -> dict:
    return {**to_dict(model), "in_channels": in_channels, "input_mean": mean, "input_std": std}


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, H, W, C), on the [0, 1] scale."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def new_embedder(
    cfg: ExperimentConfig, ds: ImageDataset, train_idx: np.ndarray
) -> tuple[Embedder, dict]:
    """A freshly initialised network (its weights depend on ``cfg.seed`` alone) behind the input
    normalisation of the training rows ``train_idx``; and its spec."""
    mean, std = channel_stats(ds.images[train_idx])
    spec = model_spec(cfg.model, ds.shape[2], mean, std)
    torch.manual_seed(cfg.seed)
    return Embedder(build_encoder(spec), mean, std), spec


class DeviceImages:
    """A dataset's uint8 images (N, H, W, C), copied once to each device they are asked on;
    dataset rows -> float images (B, C, H, W) in [0, 1] there."""

    def __init__(self, images: np.ndarray) -> None:
        self._cpu = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self._on_device: dict[str, torch.Tensor] = {}

    def __call__(self, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = self._cpu.to(device)
        return self._on_device[key][torch.as_tensor(rows, device=device)].float().div_(255.0)


def check_holdout(cfg: ExperimentConfig, ds: ImageDataset) -> np.ndarray:
    holdout = np.asarray(cfg.holdout_classes, dtype=np.int64)
    bad = [int(c) for c in holdout if c < 0 or c >= ds.num_classes]
    if bad:
        raise ValueError(
            f"holdout_classes={list(cfg.holdout_classes)}: {bad} out of range; the dataset has "
            f"classes 0..{ds.num_classes - 1}"
        )
    if ds.num_classes - len(holdout) < 2:
        raise ValueError(
            f"holdout_classes={list(cfg.holdout_classes)} leaves fewer than 2 classes to train on"
        )
    return holdout


def fit_baseline(cfg: ExperimentConfig, ds: ImageDataset) -> tuple[Embedder, dict]:
    """Fit a shallow model (raw, mahalanobis, lda) on the training split's seen classes."""
    holdout = check_holdout(cfg, ds)
    idx = ds.indices("train", exclude=holdout)
    x = to_input(ds.images[idx]).flatten(1).numpy()  # (N, C*H*W) in [0, 1]
    encoder = fit_shallow(
        cfg.model.name, x, ds.labels[idx], cfg.model.shrinkage, cfg.model.covariance
    )
    c = ds.shape[2]
    spec = model_spec(cfg.model, c, [0.0] * c, [1.0] * c)
    return Embedder(encoder, spec["input_mean"], spec["input_std"]), spec


class MetricTask:
    """Batches, loss and validation for deep metric learning on a labelled-image dataset."""

    def __init__(self, cfg: ExperimentConfig, ds: ImageDataset) -> None:
        if cfg.model.shallow:
            raise ValueError(
                f"model.name={cfg.model.name!r} is fitted, not trained: use fit_baseline"
            )
        allowed = _COMPATIBLE[cfg.loss.name]
        if cfg.sampler.name not in allowed:
            raise ValueError(
                f"sampler.name={cfg.sampler.name!r} cannot feed loss.name={cfg.loss.name!r}; "
                f"allowed samplers for it: {', '.join(allowed)}"
            )
        if cfg.loss.name == "npairs" and cfg.sampler.samples_per_class % 2:
            raise ValueError(
                f"sampler.samples_per_class={cfg.sampler.samples_per_class}: the npairs loss needs "
                "an even number (samples are paired into anchor/positive)"
            )
        self.cfg = cfg
        self.ds = ds
        holdout = check_holdout(cfg, ds)
        self.train_idx = ds.indices("train", exclude=holdout)
        self.val_idx = ds.indices("val", exclude=holdout)
        if len(self.train_idx) == 0:
            raise ValueError("the training split is empty after removing holdout_classes")
        self.model: nn.Module
        self.model, self.spec = new_embedder(cfg, ds, self.train_idx)
        self._images = DeviceImages(ds.images)
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
        key = str(device)
        if key not in self._labels_on:
            self._labels_on[key] = self._y.to(device)
        idx = torch.as_tensor(rows, device=device)
        return self._images(rows, device), self._labels_on[key][idx]

    def batches(self, epoch: int, rank: int = 0, world_size: int = 1):
        # samplers index the training subset; map to dataset rows
        for b in self.sampler.epoch(epoch, rank, world_size):
            if isinstance(b, tuple):
                yield tuple(self.train_idx[part] if part.dtype != bool else part for part in b)
            else:
                yield self.train_idx[b]

    # -- loss -------------------------------------------------------------------------------

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        name, s = self.cfg.loss.name, self.cfg.sampler
        if s.name == "pairs":  # (i, j, same): one forward pass over both sides
            i, j, same = batch
            x, _ = self._inputs(np.concatenate([i, j]), device)
            e = model(x).float()
            a, b = e[: len(i)], e[len(i) :]
            return self.criterion(a, b, torch.as_tensor(same, device=device)), 2 * len(i)
        if s.name == "triplets":  # (a, p, n)
            rows = np.concatenate(batch)
            x, _ = self._inputs(rows, device)
            e = model(x).float()
            t = len(batch[0])
            return self.criterion(e[:t], e[t : 2 * t], e[2 * t :]), len(rows)
        x, y = self._inputs(batch, device)
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
        return validation_figures(self.cfg, self.ds, model, device)


@torch.no_grad()
def validation_figures(
    cfg: ExperimentConfig, ds: ImageDataset, model: nn.Module, device: torch.device | str
) -> dict[str, float]:
    """Retrieval mAP and P@1 on the validation split, seen classes only (held-out classes are
    kept for the final evaluation, never used to select or tune a model)."""
    idx = ds.indices("val", exclude=np.asarray(cfg.holdout_classes, dtype=np.int64))
    if len(idx) < 2:
        return {}
    from simlearn.evaluation import retrieval_metrics

    emb = embed_images(model, ds.images[idx], device)
    s = retrieval_metrics(emb, ds.labels[idx], distance=cfg.eval.distance).summary()
    return {"val_map": s["map"], "val_precision_at_1": s["precision_at_1"]}


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
