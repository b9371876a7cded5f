"""The ``simclr`` task: self-supervised contrastive learning (Chen et al. 2020, "A Simple
Framework for Contrastive Learning of Visual Representations").

Each training image gives two random views (:mod:`simlearn.augment`); the encoder f embeds them,
an optional MLP projection head g maps the embeddings to the space where NT-Xent compares them:
each view must pick its sibling out of the other 2N - 2 views of the batch. Labels are not used
for training; they are used only to monitor retrieval mAP on the validation split, as in the
metric task. After training g is thrown away: ``model.pt`` holds f alone, and evaluation (kNN,
linear probe, retrieval mAP) runs on f's embeddings. The engine task is
:class:`simlearn.training.simclr.SimCLRTask`.

``holdout_classes`` works as in the metric task: those classes' images are removed from training.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import DEEP_MODELS, AugmentConfig, ConfigError, ExperimentConfig
from simlearn.data.image_dataset import ImageDataset, check_holdout, load_image_dataset
from simlearn.evaluation.protocol import KEY_METRICS, check_heldout_evaluation, check_probe
from simlearn.models.pretrained import check_weights_available
from simlearn.tasks import Evaluation, Trained, TrainOptions, fit_embedder_task
from simlearn.training import image_embedder
from simlearn.training.simclr import SimCLRTask

# torch, the engine and the models are imported where they are used, so that loading params
# (check_params, report) does not pay for them
if TYPE_CHECKING:
    from torch import nn

__all__ = ["Config", "KEY_METRICS", "check", "check_data", "embed", "evaluate"]

# ----------------------------------------------------------------------------- config

Config = ExperimentConfig


# ----------------------------------------------------------------------------- check


def check(cfg: ExperimentConfig) -> None:
    """SimCLR trains a network with NT-Xent on random batches (keys relative to the section)."""
    if cfg.model.shallow:
        raise ConfigError(
            f"model.name={cfg.model.name!r}: task simclr trains a network; "
            f"allowed: {', '.join(DEEP_MODELS)}"
        )
    if cfg.loss.name != "ntxent":
        raise ConfigError(f"loss.name={cfg.loss.name!r}: task simclr trains with ntxent")
    check_weights_available(cfg.model)  # before any run: the file, its cache path, its URL
    if cfg.sampler.name != "random":
        raise ConfigError(
            f"sampler.name={cfg.sampler.name!r}: task simclr draws random batches; "
            "set sampler.name to random"
        )


# ----------------------------------------------------------------------------- load

load_data = load_image_dataset


def check_data(cfg: ExperimentConfig, ds: ImageDataset) -> None:
    """Checks that need the data, before any MLflow run exists: colour views need colour
    images; held-out classes exist and fill the few-shot episodes and the OOD reference set; the
    kNN probe has ``eval.knn_k`` references; NT-Xent has 2 training images to contrast.

    ``sampler.batch_size`` needs no bound here: :class:`~simlearn.data.samplers.RandomBatchSampler`
    draws distinct images and clamps the batch to the training split, so a larger value trains
    exactly as the split's size does (one batch per epoch), never beyond it.
    ``sampler.steps_per_epoch`` only sets the epoch's length."""
    a = cfg.augment or AugmentConfig()
    if (a.jitter > 0 or a.grey_p > 0) and ds.images.shape[3] != 3:
        raise ConfigError(
            f"augment.jitter={a.jitter}, augment.grey_p={a.grey_p}: colour views need RGB "
            f"images; dataset {cfg.dataset!r} has {ds.images.shape[3]} channel(s)"
        )
    holdout = check_holdout(cfg.holdout_classes, ds)
    is_held = np.isin(ds.labels, holdout)
    check_heldout_evaluation(cfg, ds.labels, ds.splits, is_held)
    check_probe(cfg, ds.labels, ds.splits, is_held)
    if len(ds.indices("train", exclude=holdout)) < 2:
        raise ConfigError(
            "holdout_classes: the training split has fewer than 2 images once they are removed"
        )


# ----------------------------------------------------------------------------- train


def train(cfg: ExperimentConfig, ds: ImageDataset, options: TrainOptions) -> Trained:
    """Train f and g with NT-Xent; export f alone (the projection head is dropped)."""
    task = SimCLRTask(cfg, ds)
    return fit_embedder_task(task, cfg, options)


example_input = image_embedder.example_input
load_model = image_embedder.load_model


# ----------------------------------------------------------------------------- embed


def embed(cfg: ExperimentConfig, model: nn.Module, ds: ImageDataset, device: Any) -> dict:
    """The image-task arrays, plus ``random_embeddings``: the same encoder at its random
    initialisation (the seeded weights training started from), so that evaluation shows what
    self-supervision bought; and ``is_query``, ``is_gallery`` where the manifest has them."""
    from simlearn.evaluation.protocol import query_gallery_arrays
    from simlearn.models.embedder import embed_labelled, new_embedder

    arrays = embed_labelled(cfg, model, ds, device)
    train_idx = ds.indices("train", exclude=np.asarray(cfg.holdout_classes, dtype=np.int64))
    initial, _ = new_embedder(cfg.model, ds.images, cfg.seed, rows=train_idx)
    arrays["random_embeddings"] = embed_labelled(cfg, initial, ds, device)["embeddings"]
    return arrays | query_gallery_arrays(ds.manifest)


# ----------------------------------------------------------------------------- evaluate

#: the frozen-encoder protocol of the SimCLR benchmarks, for the trained and the random encoder
_FROZEN = ("map", "linear_probe_accuracy", "weighted_knn_accuracy", "knn_accuracy")


def weighted_knn(arrays: dict, emb: np.ndarray) -> float | None:
    """The weighted kNN of the SimCLR benchmarks (Wu et al. 2018; k = 200, or the reference size
    if smaller, T = 0.1, cosine), on the probe rows of the protocol
    (:func:`~simlearn.evaluation.protocol.probe_rows`); None where no test class was trained on
    (disjoint train and test classes: not reported)."""
    from simlearn.evaluation import weighted_knn_accuracy
    from simlearn.evaluation.protocol import probe_rows

    split, holdout, labels = arrays["split"].astype(str), arrays["holdout"], arrays["labels"]
    ref, q = probe_rows(labels, split, holdout)
    if not ref.any() or not q.any():
        return None
    k = min(200, int(ref.sum()))
    return float(weighted_knn_accuracy(emb[ref], labels[ref], emb[q], labels[q], k=k))


def evaluate(
    cfg: ExperimentConfig, arrays: dict, ds: ImageDataset, figures_dir: Path, name: str
) -> Evaluation:
    """The image protocol on f, the frozen-encoder figures, and the same for f at random
    initialisation (``random_init_*``)."""
    from simlearn.evaluation.protocol import evaluate_labelled

    metrics, curves, figures = evaluate_labelled(cfg, arrays, ds, figures_dir, name)
    wknn = weighted_knn(arrays, arrays["embeddings"])
    if wknn is not None:
        metrics["weighted_knn_accuracy"] = wknn
    if "random_embeddings" in arrays:
        from simlearn.evaluation.protocol import labelled_metrics

        emb = arrays["random_embeddings"]
        split, holdout = arrays["split"].astype(str), arrays["holdout"]
        roles = {k: arrays[k] for k in ("is_query", "is_gallery") if k in arrays}
        initial, _ = labelled_metrics(emb, arrays["labels"], split, holdout, cfg, **roles)
        initial["weighted_knn_accuracy"] = weighted_knn(arrays, emb)
        metrics.update(
            {f"random_init_{k}": float(initial[k]) for k in _FROZEN if initial.get(k) is not None}
        )
    summary = ("map", "linear_probe_accuracy", "weighted_knn_accuracy", "random_init_map")
    return Evaluation(metrics, curves, figures, summary)


# ----------------------------------------------------------------------------- report

KEY_METRICS = KEY_METRICS + ("weighted_knn_accuracy",) + tuple(f"random_init_{k}" for k in _FROZEN)


def describe(cfg: ExperimentConfig) -> dict[str, Any]:
    """Labels for the report and the MLflow tags; ``unused``: sections this experiment ignores."""
    return {
        "description": "NT-Xent (Chen et al. 2020), labels unused: "
        "-log(exp(sim(z_i, z_j)/T) / sum_(k != i) exp(sim(z_i, z_k)/T)) per view",
        "model": cfg.model.name,
        "loss": cfg.loss.name,
        "baseline": False,
        "unused": (),
    }
