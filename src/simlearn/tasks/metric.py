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
from simlearn.evaluation.protocol import KEY_METRICS, check_heldout_evaluation
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
    """Checks that need the data: held-out classes exist and fill the few-shot episodes and the
    OOD reference set, P x K batches can be drawn."""
    holdout = check_holdout(cfg.holdout_classes, ds)
    check_heldout_evaluation(cfg, ds.labels, ds.splits, np.isin(ds.labels, holdout))
    if cfg.model.shallow:
        return
    seen = ds.num_classes - len(holdout)
    if cfg.sampler.name == "pk" and cfg.sampler.classes_per_batch > seen:
        raise ConfigError(
            f"sampler.classes_per_batch={cfg.sampler.classes_per_batch}: the training split has "
            f"{seen} classes once holdout_classes are removed; use at most {seen}"
        )
    train = ds.indices("train", exclude=holdout)
    if len(train) == 0:
        raise ConfigError("holdout_classes: the training split is empty once they are removed")
    # batches larger than the data repeat it and, at 10**9, exhaust memory after the run started
    s, after = cfg.sampler, " once holdout_classes are removed" if len(holdout) else ""
    if s.name in ("pairs", "triplets") and s.batch_size > len(train):
        raise ConfigError(
            f"sampler.batch_size={s.batch_size}: the training split has {len(train)} images"
            f"{after}; use at most {len(train)}"
        )
    largest = int(np.unique(ds.labels[train], return_counts=True)[1].max()) if s.name == "pk" else 0
    if s.name == "pk" and s.samples_per_class > largest:
        raise ConfigError(
            f"sampler.samples_per_class={s.samples_per_class}: the largest class of the training "
            f"split has {largest} images{after}, so every class would repeat its images in "
            f"every batch; use at most {largest}"
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
