"""The ``metric`` task: an image embedding learned with a pair, triplet or batch loss, or a
shallow fitted baseline (``model.name``: raw | mahalanobis | lda).

What differs from the other tasks lives here: which batches (P x K, balanced pairs, random
triplets), which loss, and which rules tie them together. The engine task that draws them is
:class:`simlearn.training.metric.MetricTask`, and the loop itself :func:`simlearn.engine.fit`;
the evaluation protocol of labelled embeddings (retrieval, pairs, probes, seen/unseen) is
:mod:`simlearn.evaluation.protocol`, shared with the simclr task.

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
from simlearn.evaluation.protocol import KEY_METRICS, check_heldout_evaluation, check_probe
from simlearn.models.pretrained import check_weights_available
from simlearn.tasks import Evaluation, Trained, TrainOptions, fit_embedder_task
from simlearn.training import image_embedder
from simlearn.training.metric import MetricTask

# torch, the engine, the models and scikit-learn are imported where they are used, so that
# loading params (check_params, report) does not pay for them
if TYPE_CHECKING:
    from torch import nn

    from simlearn.models import Embedder

__all__ = ["Config", "KEY_METRICS", "check", "check_data", "embed", "evaluate"]

# ----------------------------------------------------------------------------- config

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


# ----------------------------------------------------------------------------- check


def check(cfg: ExperimentConfig) -> None:
    """The rules across keys of a metric experiment (keys are relative to the section)."""
    if cfg.model.projection_dim:
        raise ConfigError(
            f"model.projection_dim={cfg.model.projection_dim}: only task simclr has a "
            "projection head"
        )
    # an ImageNet backbone whose weights file is not in the torch cache: said before any run
    check_weights_available(cfg.model)
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


# ----------------------------------------------------------------------------- load

load_data = load_image_dataset


def check_data(cfg: ExperimentConfig, ds: ImageDataset) -> None:
    """Checks that need the data, before any MLflow run exists: held-out classes exist and fill
    the few-shot episodes and the OOD reference set, the kNN probe has ``eval.knn_k`` references,
    and every batch the sampler draws is bounded by the training split (:func:`check_sampler`)."""
    holdout = check_holdout(cfg.holdout_classes, ds)
    is_held = np.isin(ds.labels, holdout)
    check_heldout_evaluation(cfg, ds.labels, ds.splits, is_held)
    check_probe(cfg, ds.labels, ds.splits, is_held)
    if cfg.model.shallow:
        check_fitted_size(cfg, ds.shape)
        return
    train = ds.indices("train", exclude=holdout)
    if len(train) == 0:
        raise ConfigError("holdout_classes: the training split is empty once they are removed")
    after = " once holdout_classes are removed" if len(holdout) else ""
    check_sampler(cfg, ds.labels[train], after)


#: values per image (H x W x C) up to which ``mahalanobis`` and ``lda`` are fitted: both build a
#: D x D float64 matrix (2 GiB at D = 16,384; 18 GiB at 128x128 RGB, D = 49,152) and decompose
#: it in O(D^3) time, so a larger D is refused before any run starts, not minutes or hours later
#: in a MemoryError. ``raw`` has no matrix and takes any size.
MAX_FITTED_PIXELS = 16_384


def check_fitted_size(cfg: ExperimentConfig, shape: tuple[int, ...]) -> None:
    """``mahalanobis`` / ``lda`` on images of ``shape`` (H, W, C): at most
    :data:`MAX_FITTED_PIXELS` values per image, else a ConfigError saying what to change."""
    d = int(np.prod(shape))
    if cfg.model.name in ("mahalanobis", "lda") and d > MAX_FITTED_PIXELS:
        h, w, c = shape
        side = int((MAX_FITTED_PIXELS / c) ** 0.5)
        raise ConfigError(
            f"model.name={cfg.model.name!r} fits a {d:,} x {d:,} matrix of the pixels of "
            f"dataset {cfg.dataset!r} ({h}x{w}x{c} = {d:,} values per image; "
            f"{d * d * 8 / 2**30:.1f} GiB, and its decomposition grows as the cube): at most "
            f"{MAX_FITTED_PIXELS:,}. Set datasets.{cfg.dataset}.image_size to {side} or less, "
            "or use model.name: raw (no matrix, any size)"
        )


def check_sampler(cfg: ExperimentConfig, labels: np.ndarray, after: str = "") -> None:
    """The sampler's sizes against the training split's ``labels`` (N,), as the samplers of
    :mod:`simlearn.data.samplers` draw them. ConfigError naming the key, its value, what the
    split has and the largest value allowed; ``after`` ends the phrase "the training split has
    ...". Every bound is one the real sampler needs, or past which a batch only repeats images
    while its memory grows (at 10**9, a MemoryError once the MLflow run exists):

    - pk: P (``classes_per_batch``) at most the classes with training images (``PKSampler``
      fails beyond them); K (``samples_per_class``) at most the largest class's images. A
      smaller class is drawn with replacement (legal, kept), but K beyond every class repeats
      images in every class of every batch. npairs pairs the K samples, so its K is even;
    - pairs, triplets: ``batch_size`` (pairs or triplets per batch) at most the split's images;
      both samplers need 2 classes and a class with 2 images (a positive other than the anchor);
    - ``steps_per_epoch`` only sets the epoch's length: no bound from the data.
    """
    s = cfg.sampler
    classes, counts = np.unique(labels, return_counts=True)
    if s.name == "pk":
        if s.classes_per_batch > len(classes):
            raise ConfigError(
                f"sampler.classes_per_batch={s.classes_per_batch}: the training split has "
                f"{len(classes)} classes{after}; use at most {len(classes)}"
            )
        largest = int(counts.max())
        most = largest - largest % 2 if cfg.loss.name == "npairs" else largest
        if s.samples_per_class > most:
            even = " (even, for the npairs loss)" if most != largest else ""
            raise ConfigError(
                f"sampler.samples_per_class={s.samples_per_class}: the largest class of the "
                f"training split has {largest} images{after}, so every class would repeat its "
                f"images in every batch; use at most {most}{even}"
                if most >= 2
                else f"sampler.samples_per_class={s.samples_per_class}: no class of the training "
                f"split has 2 images{after}: P x K batches have no positive pair"
            )
        return
    what = "pairs" if s.name == "pairs" else "triplets"
    if len(classes) < 2:
        raise ConfigError(
            f"sampler.name={s.name!r}: the training split has {len(classes)} class{after}; "
            f"{what} need a sample of another class"
        )
    if counts.max() < 2:
        raise ConfigError(
            f"sampler.name={s.name!r}: no class of the training split has 2 images{after}; "
            f"{what} need a positive other than the anchor"
        )
    if s.batch_size > len(labels):
        raise ConfigError(
            f"sampler.batch_size={s.batch_size}: the training split has {len(labels)} images"
            f"{after}; use at most {len(labels)}"
        )


# ----------------------------------------------------------------------------- train


def train(cfg: ExperimentConfig, ds: ImageDataset, options: TrainOptions) -> Trained:
    """Fit the baseline, or train the network with :func:`simlearn.engine.fit`."""
    if cfg.model.shallow:
        t0 = time.perf_counter()
        model, spec = fit_baseline(cfg, ds)
        seconds = time.perf_counter() - t0
        from simlearn.evaluation.protocol import validation_retrieval

        return Trained.fitted(model, spec, seconds, **validation_retrieval(cfg, ds, model, "cpu"))
    task = MetricTask(cfg, ds)
    return fit_embedder_task(task, cfg, options)


def fit_baseline(cfg: ExperimentConfig, ds: ImageDataset) -> tuple[Embedder, dict]:
    """Fit a shallow model (raw, mahalanobis, lda) on the training split's seen classes."""
    from simlearn.models import Embedder, PixelEmbedding, fit_shallow, to_input
    from simlearn.models.embedder import model_spec

    holdout = check_holdout(cfg.holdout_classes, ds)
    idx = ds.indices("train", exclude=holdout)
    if cfg.model.name == "raw":  # nothing to fit: no training image is read
        encoder = PixelEmbedding()
    else:
        x = to_input(ds.images[idx]).flatten(1).numpy()  # (N, C*H*W) in [0, 1]
        encoder = fit_shallow(
            cfg.model.name, x, ds.labels[idx], cfg.model.shrinkage, cfg.model.covariance
        )
    c = ds.shape[2]
    spec = model_spec(cfg.model, c, [0.0] * c, [1.0] * c)
    return Embedder(encoder, spec["input_mean"], spec["input_std"]), spec


example_input = image_embedder.example_input
load_model = image_embedder.load_model


# ----------------------------------------------------------------------------- embed


def embed(cfg: ExperimentConfig, model: nn.Module, ds: ImageDataset, device: Any) -> dict:
    """The image-task arrays, plus ``is_query`` and ``is_gallery`` where the manifest has them
    (retrieval ranks the test queries against the test gallery)."""
    from simlearn.evaluation.protocol import query_gallery_arrays
    from simlearn.models.embedder import embed_labelled

    return embed_labelled(cfg, model, ds, device) | query_gallery_arrays(ds.manifest)


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    cfg: ExperimentConfig, arrays: dict, ds: ImageDataset, figures_dir: Path, name: str
) -> Evaluation:
    from simlearn.evaluation.protocol import evaluate_labelled

    metrics, curves, figures = evaluate_labelled(cfg, arrays, ds, figures_dir, name)
    shown = ("map", "map_at_r", "recall_at_1", "nmi", "roc_auc", "unseen_map",
             "fewshot_1shot_accuracy", "fewshot_5shot_accuracy", "ood_knn_auroc")  # fmt: skip
    return Evaluation(metrics, curves, figures, tuple(k for k in shown if k in metrics))


# ----------------------------------------------------------------------------- report

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
