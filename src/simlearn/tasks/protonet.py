"""The ``protonet`` task: an image embedding trained in few-shot episodes with the prototypical
loss (Snell, Swersky, Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017).

Each training step is one episode of the training split's seen classes: N classes, K support
and Q query images of each; the queries are classified by a softmax over their distances to
the class prototypes (mean support embeddings) and the loss is its cross-entropy
(:class:`simlearn.losses.prototypical_loss.PrototypicalLoss`). The engine task is
:class:`simlearn.training.protonet.ProtonetTask`; the loop :func:`simlearn.engine.fit`. The
network, what ``embed`` writes and the evaluation are the metric task's
(:mod:`simlearn.evaluation.protocol`), so a protonet experiment lines up with the metric ones:
with ``holdout_classes``, the few-shot episodes and OOD detection on the held-out classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import DEEP_MODELS, ConfigError
from simlearn.config.protonet import ProtonetConfig
from simlearn.data.image_dataset import ImageDataset, check_holdout, load_image_dataset
from simlearn.evaluation.protocol import KEY_METRICS, check_heldout_evaluation, check_probe
from simlearn.models.pretrained import check_weights_available
from simlearn.tasks import Evaluation, Trained, TrainOptions, fit_embedder_task
from simlearn.training import image_embedder
from simlearn.training.protonet import ProtonetTask

# torch, the engine and the models are imported where they are used, so that loading params
# (check_params, report) does not pay for them
if TYPE_CHECKING:
    from torch import nn

__all__ = ["Config", "KEY_METRICS", "check", "check_data", "embed", "evaluate"]

# ----------------------------------------------------------------------------- config

Config = ProtonetConfig


# ----------------------------------------------------------------------------- check


def check(cfg: ProtonetConfig) -> None:
    """A protonet trains a network (keys are relative to the section)."""
    if cfg.model.shallow:
        raise ConfigError(
            f"model.name={cfg.model.name!r}: task protonet trains a network; "
            f"allowed: {', '.join(DEEP_MODELS)}"
        )
    if cfg.model.projection_dim:
        raise ConfigError(
            f"model.projection_dim={cfg.model.projection_dim}: only task simclr has a "
            "projection head"
        )
    check_weights_available(cfg.model)


# ----------------------------------------------------------------------------- load

load_data = load_image_dataset


def check_data(cfg: ProtonetConfig, ds: ImageDataset) -> None:
    """Checks that need the data, before any MLflow run exists: the held-out classes fill the
    evaluation's few-shot episodes and OOD reference set, the kNN probe has ``eval.knn_k``
    references, and training episodes can be drawn from the seen training classes without
    repeating an image (the episode is a P x K batch with P = ways, K = shots + queries, and
    :class:`~simlearn.data.samplers.PKSampler` would draw a smaller class with replacement, so
    an image could be its own class's support and query). ConfigError naming the key, its value,
    what the data has and the largest value allowed. ``episode.episodes_per_epoch`` only sets
    the epoch's length."""
    holdout = check_holdout(cfg.holdout_classes, ds)
    is_held = np.isin(ds.labels, holdout)
    check_heldout_evaluation(cfg, ds.labels, ds.splits, is_held)
    check_probe(cfg, ds.labels, ds.splits, is_held)
    e = cfg.episode
    classes, counts = np.unique(ds.labels[ds.indices("train", exclude=holdout)], return_counts=True)
    after = " once holdout_classes are removed" if len(holdout) else ""
    if e.ways > len(classes):
        raise ConfigError(
            f"episode.ways={e.ways}: the training split has {len(classes)} classes{after}; "
            f"use at most {len(classes)}"
        )
    fewest, c = int(counts.min()), classes[int(np.argmin(counts))]
    if e.shots + e.queries > fewest:
        has = f"training class {c} has {fewest} images, fewer than episode.shots + queries"
        if e.shots >= fewest:  # no query would be left: the shots are the value to lower
            raise ConfigError(
                f"episode.shots={e.shots}: {has} = {e.shots + e.queries}; use at most "
                f"shots = {fewest - 1} (with queries = 1)"
            )
        raise ConfigError(
            f"episode.queries={e.queries}: {has} = {e.shots + e.queries}; use at most "
            f"{fewest - e.shots} (with shots = {e.shots})"
        )


# ----------------------------------------------------------------------------- train


def train(cfg: ProtonetConfig, ds: ImageDataset, options: TrainOptions) -> Trained:
    """Train the network on episodes with :func:`simlearn.engine.fit`."""
    return fit_embedder_task(ProtonetTask(cfg, ds), cfg, options)


example_input = image_embedder.example_input
load_model = image_embedder.load_model


# ----------------------------------------------------------------------------- embed


def embed(cfg: ProtonetConfig, model: nn.Module, ds: ImageDataset, device: Any) -> dict:
    """The image-task arrays, as the metric task writes them."""
    from simlearn.evaluation.protocol import query_gallery_arrays
    from simlearn.models.embedder import embed_labelled

    return embed_labelled(cfg, model, ds, device) | query_gallery_arrays(ds.manifest)


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    cfg: ProtonetConfig, arrays: dict, ds: ImageDataset, figures_dir: Path, name: str
) -> Evaluation:
    """The metric task's evaluation (:func:`simlearn.evaluation.protocol.evaluate_labelled`)."""
    from simlearn.evaluation.protocol import evaluate_labelled

    metrics, curves, figures = evaluate_labelled(cfg, arrays, ds, figures_dir, name)
    shown = ("map", "unseen_map", "fewshot_1shot_accuracy", "fewshot_5shot_accuracy",
             "ood_knn_auroc")  # fmt: skip
    return Evaluation(metrics, curves, figures, tuple(k for k in shown if k in metrics))


# ----------------------------------------------------------------------------- report


def describe(cfg: ProtonetConfig) -> dict[str, Any]:
    """Labels for the report and the MLflow tags."""
    e, loss = cfg.episode, cfg.loss
    line = (
        f"prototypical loss (Snell et al. 2017) on {e.ways}-way {e.shots}-shot episodes, "
        f"{e.queries} queries per class: -log softmax_n(-d(f(q), c_n) / {loss.temperature:g}), "
        f"c_n = mean support embedding, d = {loss.distance}"
    )
    return {
        "description": line,
        "model": cfg.model.name,
        "loss": "prototypical",
        "baseline": False,
        "unused": () if cfg.augment else ("augment",),
    }
