"""The ``metric`` task: an image embedding learned with a pair, triplet or batch loss, or a
shallow fitted baseline (``model.name``: raw | mahalanobis | lda).

What differs from the other tasks lives here: which batches (P x K, balanced pairs, random
triplets), which loss, and which rules tie them together. The loop itself is
:func:`simlearn.engine.fit`; the evaluation protocol of labelled embeddings (retrieval, pairs,
probes, seen/unseen) is :mod:`simlearn.evaluation.protocol`, shared with the simclr task.

Held-out classes (``holdout_classes``) are removed from train and val: the model never sees
them, and evaluation reports them apart as "unseen".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ConfigError, ExperimentConfig
from simlearn.data.image_dataset import ImageDataset, check_holdout, load_image_dataset
from simlearn.evaluation.protocol import KEY_METRICS
from simlearn.tasks import Evaluation, Trained, fit_embedder_task

# torch, the engine, the models and scikit-learn are imported where they are used, so that
# loading params (check_params, report) does not pay for them
if TYPE_CHECKING:
    import torch
    from torch import nn

    from simlearn.models import Embedder

__all__ = ["Config", "KEY_METRICS", "MetricTask", "check", "check_data", "embed", "evaluate"]

Config = ExperimentConfig

# which samplers each loss can train on
_COMPATIBLE = {
    "contrastive": ("pairs", "pk"),
    "triplet": ("triplets", "pk"),
    "batch_hard": ("pk",),
    "npairs": ("pk",),
    "snn": ("pk",),
    "supcon": ("pk",),
}


def check(cfg: ExperimentConfig) -> None:
    """The rules across keys of a metric experiment (keys are relative to the section)."""
    if cfg.model.projection_dim:
        raise ConfigError(
            f"model.projection_dim={cfg.model.projection_dim}: only task simclr has a "
            "projection head"
        )
    if cfg.model.shallow:
        return  # fitted in closed form: loss, sampler and train are not used
    if cfg.loss.name == "ntxent" or cfg.sampler.name == "random":
        raise ConfigError(
            f"loss.name={cfg.loss.name!r}, sampler.name={cfg.sampler.name!r}: ntxent and "
            "the random sampler belong to task simclr (they ignore the labels)"
        )
    allowed = _COMPATIBLE[cfg.loss.name]
    if cfg.sampler.name not in allowed:
        raise ConfigError(
            f"sampler.name={cfg.sampler.name!r} cannot feed loss.name={cfg.loss.name!r}; "
            f"allowed samplers for it: {', '.join(allowed)}"
        )
    if cfg.loss.name == "npairs" and cfg.sampler.samples_per_class % 2:
        raise ConfigError(
            f"sampler.samples_per_class={cfg.sampler.samples_per_class}: the npairs loss needs "
            "an even number (samples are paired into anchor/positive)"
        )


#: one line per loss, for the MLflow run description: the loss and its formula
LOSS_FORMULAS = {
    "contrastive": "contrastive (Hadsell et al. 2006): y d^2 + (1 - y) max(0, m - d)^2 per pair",
    "triplet": "triplet (Schroff et al. 2015): max(0, d(a, p) - d(a, n) + m) per mined triplet",
    "batch_hard": "batch-hard triplet (Hermans et al. 2017): "
    "max(0, max_p d(a, p) - min_n d(a, n) + m) per anchor",
    "npairs": "N-pairs (Sohn 2016): log(1 + sum_n exp(f.f_n - f.f_p)) per anchor",
    "snn": "soft nearest neighbour (Frosst et al. 2019): "
    "-log(sum_same exp(-d^2/T) / sum_others exp(-d^2/T))",
    "supcon": "SupCon (Khosla et al. 2020): -mean_p log(exp(z.z_p/T) / sum_(a != i) exp(z.z_a/T))",
}


def describe(cfg: ExperimentConfig) -> dict[str, Any]:
    """Labels for the report and the MLflow tags; ``unused``: sections this experiment ignores;
    ``description``: one line for the MLflow run."""
    if cfg.model.shallow:
        line = f"fitted baseline {cfg.model.name}: L2 after a linear map fitted in closed form"
    else:
        line = LOSS_FORMULAS[cfg.loss.name] + (
            "; softplus instead of the hinge" if cfg.loss.soft else ""
        )
    return {
        "description": line,
        "model": cfg.model.name,
        "loss": "-" if cfg.model.shallow else cfg.loss.name,
        "baseline": cfg.model.shallow,
        "unused": ("loss", "sampler", "train", "augment")
        if cfg.model.shallow
        else (() if cfg.augment else ("augment",)),
    }


load_data = load_image_dataset


def check_data(cfg: ExperimentConfig, ds: ImageDataset) -> None:
    """Checks that need the data: held-out classes exist, P x K batches can be drawn."""
    holdout = check_holdout(cfg.holdout_classes, ds)
    if cfg.model.shallow:
        return
    seen = ds.num_classes - len(holdout)
    if cfg.sampler.name == "pk" and cfg.sampler.classes_per_batch > seen:
        raise ConfigError(
            f"sampler.classes_per_batch={cfg.sampler.classes_per_batch}: the training split has "
            f"{seen} classes once holdout_classes are removed; use at most {seen}"
        )
    if len(ds.indices("train", exclude=holdout)) == 0:
        raise ConfigError("holdout_classes: the training split is empty once they are removed")


def train(
    cfg: ExperimentConfig,
    ds: ImageDataset,
    *,
    checkpoint_dir: Path,
    fingerprint: str | None = None,
    on_epoch_end: Any = None,
    progress: bool = False,
    desc: str = "",
) -> Trained:
    """Fit the baseline, or train the network with :func:`simlearn.engine.fit`."""
    if cfg.model.shallow:
        t0 = time.perf_counter()
        model, spec = fit_baseline(cfg, ds)
        seconds = time.perf_counter() - t0
        from simlearn.evaluation.protocol import validation_retrieval

        return Trained.fitted(model, spec, seconds, **validation_retrieval(cfg, ds, model, "cpu"))
    task = MetricTask(cfg, ds)
    return fit_embedder_task(task, cfg, checkpoint_dir, fingerprint, on_epoch_end, progress, desc)


def example_input(ds: ImageDataset) -> np.ndarray:
    """Two training images as the exported model takes them: float32 (2, C, H, W) in [0, 1]."""
    from simlearn.models import to_input

    return to_input(ds.images[ds.indices("train")[:2]]).numpy()


def load_model(model_dir: Path) -> tuple[nn.Module, dict]:
    from simlearn.models import load_model as _load

    return _load(Path(model_dir) / "model.pt")


def embed(cfg: ExperimentConfig, model: nn.Module, ds: ImageDataset, device: Any) -> dict:
    from simlearn.models.embedder import embed_labelled

    return embed_labelled(cfg, model, ds, device)


def evaluate(
    cfg: ExperimentConfig, arrays: dict, ds: ImageDataset, figures_dir: Path, name: str
) -> Evaluation:
    from simlearn.evaluation.protocol import evaluate_labelled

    metrics, curves, figures = evaluate_labelled(cfg, arrays, ds, figures_dir, name)
    return Evaluation(metrics, curves, figures, ("map", "map_at_r", "precision_at_1", "roc_auc"))


def fit_baseline(cfg: ExperimentConfig, ds: ImageDataset) -> tuple[Embedder, dict]:
    """Fit a shallow model (raw, mahalanobis, lda) on the training split's seen classes."""
    from simlearn.models import Embedder, fit_shallow, to_input
    from simlearn.models.embedder import model_spec

    holdout = check_holdout(cfg.holdout_classes, ds)
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
        check(cfg)
        import torch

        from simlearn.data.image_dataset import DeviceImages
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
        self.model, self.spec = new_embedder(cfg.model, ds.images[self.train_idx], cfg.seed)
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
        for b in self.sampler.epoch(epoch, rank, world_size):
            if isinstance(b, tuple):
                yield tuple(self.train_idx[part] if part.dtype != bool else part for part in b)
            else:
                yield self.train_idx[b]

    # -- loss -------------------------------------------------------------------------------

    def loss(self, model: nn.Module, batch: Any, device: torch.device) -> tuple[torch.Tensor, int]:
        import torch

        from simlearn.engine import gather_across_ranks

        name, s = self.cfg.loss.name, self.cfg.sampler
        if s.name == "pairs":  # (i, j, same): one forward pass over both sides
            i, j, same = batch
            x, _ = self._train_inputs(np.concatenate([i, j]), device)
            e = model(x).float()
            a, b = e[: len(i)], e[len(i) :]
            return self.criterion(a, b, torch.as_tensor(same, device=device)), 2 * len(i)
        if s.name == "triplets":  # (a, p, n)
            rows = np.concatenate(batch)
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
