"""The ``sbir`` task: sketch-based image retrieval. A sketch is the query, photos the gallery.

Two encoders, one per domain (:mod:`simlearn.models.two_tower`), are trained so that a sketch
lands near the photos of its category; ``model.shared`` makes them one encoder (the ablation).
Two classical baselines are methods of the task (``model.method``), fitted in closed form:

- ``raw``: both domains resized to ``model.raw_size`` greyscale pixels, Euclidean distance;
- ``edge_hog``: photos turned into Canny edge maps (scikit-image), then HOG descriptors
  (``skimage.feature.hog``) of the edge maps and of the sketches, Euclidean distance.

Training (the one engine, :func:`simlearn.engine.fit`, on the engine task
:class:`simlearn.training.sbir.SBIRTask`): each batch is P categories x K training photos of the
seen categories, each photo with one of its own sketches, drawn from (seed, epoch, rank). Losses
(``loss.name``), all from :mod:`simlearn.losses`:

- ``triplet``: cross-domain triplets, anchor a sketch, positive a photo of its category, negative
  a photo of another category; ``loss.mining`` picks them in the batch: ``all``, ``hard``
  (negative closer than positive), ``semihard`` (FaceNet), or ``own`` (the sketch's own photo as
  positive, one random other-category photo as negative: no mining);
- ``supcon``: supervised contrastive loss over sketches and photos together (both domains of a
  category are positives of each other);
- ``ntxent``: InfoNCE between a sketch and its own photo (NT-Xent with the two domains as the
  two views): instance-level, as Sketchy's pairing allows.

``loss.anchor_weight`` adds :func:`simlearn.losses.class_anchor_loss.class_anchor_loss` (both
domains classified by fixed random class vectors) to any of them. ``sampler.recolour`` gives
photos random channel orders and negatives (:func:`simlearn.augment.recolour`).
``photo_model.edges`` appends the photo's Sobel gradient magnitude as an input channel: an
architectural choice of the photo encoder that narrows the gap to line drawings without
pretraining. Measured on an embedded set of 128 photos x 1 sketch per category (300
steps, edges and recolour on): test mAP@all 0.18 with SupCon alone, 0.36 with the anchor term.

Images are streamed from disk in batches by worker threads
(:class:`simlearn.data.sketch_dataset.ImageStream`), never held whole in memory.

Zero-shot (``zero_shot``): categories never seen in training, evaluated apart. Named splits:
``sketchy25`` (Shen et al. 2018, "Zero-Shot Sketch-Image Hashing", CVPR; 25 unseen classes,
reported with mAP@all and P@100), ``sketchy21`` (Yelamarthi et al. 2018, "A Zero-Shot Framework
for Sketch Based Image Retrieval", ECCV; 21 classes outside ImageNet-1k, reported with mAP@200
and P@200), ``synthetic`` (the embedded set's :data:`UNSEEN_CATEGORIES`), ``list`` (the names in
``unseen_classes``) or ``none``.

Evaluation: sketch queries against the photo gallery with the exact metrics of
:mod:`simlearn.evaluation.retrieval` (mAP@all, P@1, P@100, P@200) and
:func:`simlearn.evaluation.map_at_k.map_at_k` (mAP@200). Three protocols: all categories
(test split), ``seen_`` (seen categories, test split) and ``unseen_`` (unseen categories,
every split: they were never trained on, as in the zero-shot literature).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ConfigError, to_dict
from simlearn.config.sbir import ZERO_SHOT_SPLITS, Config, TowerConfig
from simlearn.tasks import Evaluation, Trained, TrainOptions, fit_embedder_task
from simlearn.training.sbir import SBIRTask, embed_rows, unseen_labels

# torch, the streaming loader, the engine, the models, scikit-image and matplotlib are imported
# where they are used, so that loading params (check, describe, report) does not pay for them
if TYPE_CHECKING:
    from torch import nn

    from simlearn.data.sketch_dataset import SketchDataset

__all__ = [
    "Config",
    "KEY_METRICS",
    "ZERO_SHOT_SPLITS",
    "check",
    "check_data",
    "describe",
    "embed",
    "evaluate",
    "example_input",
    "load_data",
    "load_model",
    "train",
]

# ----------------------------------------------------------------------------- check


def check(cfg: Config) -> None:
    """Rules across keys (keys relative to the experiment's section)."""
    m = cfg.model
    if m.shared and m.sketch_model != m.photo_model and m.sketch_model != TowerConfig():
        raise ConfigError(
            f"model.sketch_model={to_dict(m.sketch_model)}: with model.shared the one encoder "
            "is model.photo_model; remove model.sketch_model"
        )
    if cfg.loss.name == "ntxent" and cfg.loss.distance != "euclidean":
        raise ConfigError("loss.distance: ntxent compares cosine similarities; remove the key")


# ----------------------------------------------------------------------------- load


def load_data(data_dir: Path) -> SketchDataset:
    """The canonical sketch dataset's manifest (pixels stay on disk)."""
    from simlearn.data.sketch_dataset import load_sketch_dataset

    return load_sketch_dataset(data_dir)


def check_data(cfg: Config, ds: SketchDataset) -> None:
    """Checks that need the data, before any MLflow run exists: the zero-shot split leaves 2
    seen categories, and a trained model's P x K batches are bounded by what it trains on: the
    training photos of the seen categories that have a training sketch (:func:`training_photos`,
    what :class:`~simlearn.training.sbir.SBIRTask` draws). ConfigError naming the key, its
    value, what the data has and the largest value allowed:

    - ``sampler.classes_per_batch`` (P): at most the categories with such photos
      (:class:`~simlearn.data.samplers.PKSampler` fails beyond them);
    - ``sampler.photos_per_class`` (K): at most the largest category's photos. A smaller
      category is drawn with replacement (legal, kept), but K beyond every category repeats
      photos in every category of every batch while its memory grows;
    - ``sampler.batch_size`` (images per embedding batch) needs no bound: a set smaller than it
      is embedded in one batch. ``sampler.steps_per_epoch`` only sets the epoch's length."""
    unseen = unseen_labels(cfg, ds)
    seen = ds.num_classes - len(unseen)
    if seen < 2:
        raise ConfigError(f"zero_shot={cfg.zero_shot!r}: leaves {seen} seen categories (< 2)")
    if cfg.model.baseline:
        return
    photos = training_photos(ds, unseen)
    if len(photos) == 0:
        raise ConfigError(
            "the training split has no photo of a seen category with one of its sketches"
        )
    s = cfg.sampler
    categories, counts = np.unique(ds.labels[photos], return_counts=True)
    if s.classes_per_batch > len(categories):
        raise ConfigError(
            f"sampler.classes_per_batch={s.classes_per_batch}: the training split has "
            f"{len(categories)} seen categories with photos and their sketches (of {seen} seen); "
            f"use at most {len(categories)}"
        )
    largest = int(counts.max())
    if s.photos_per_class > largest:
        raise ConfigError(
            f"sampler.photos_per_class={s.photos_per_class}: the largest seen category of the "
            f"training split has {largest} photos with sketches, so every category would repeat "
            f"its photos in every batch; use at most {largest}"
        )


def training_photos(ds: SketchDataset, unseen: np.ndarray) -> np.ndarray:
    """Rows of the training photos of the seen categories that have a training sketch: those
    :class:`~simlearn.training.sbir.SBIRTask` pairs with a sketch and samples P x K from."""
    photos = ds.rows("photo", ["train"], exclude=unseen)
    sketches = ds.rows("sketch", ["train"], exclude=unseen)
    return photos[np.isin(ds.photo_ids[photos], ds.photo_ids[sketches])]


# ----------------------------------------------------------------------------- train


def _baseline_spec(cfg: Config) -> dict[str, Any]:
    m = cfg.model
    return {
        "method": m.method,
        "image_size": m.image_size,
        "raw_size": m.raw_size,
        "canny_sigma": m.canny_sigma,
        "hog_cell": m.hog_cell,
    }


def train(cfg: Config, ds: SketchDataset, options: TrainOptions) -> Trained:
    """Fit a baseline (nothing to fit beyond its settings) or train the two towers."""
    if cfg.model.baseline:
        t0 = time.perf_counter()
        spec = _baseline_spec(cfg)
        seconds = time.perf_counter() - t0
        from simlearn.models.two_tower import ClassicalEmbedding

        return Trained.fitted(ClassicalEmbedding(spec), spec, seconds)
    task = SBIRTask(cfg, ds)
    try:
        return fit_embedder_task(task, cfg, options)
    finally:
        task.stream.close()


def example_input(ds: SketchDataset) -> np.ndarray:
    """Two training sketches as the exported model takes them: float32 (2, 1, H, W) in [0, 1]
    at the dataset's own size (the towers resize to theirs)."""
    from PIL import Image

    from simlearn.data.sketch_dataset import ImageStream

    rows = ds.rows("sketch", ["train"])[:2]
    with Image.open(ds.root / ds.paths[rows[0]]) as img:
        size = img.size[0]
    return ImageStream(ds, size, workers=1).load(rows).numpy()


def load_model(model_dir: Path) -> tuple[nn.Module, dict]:
    import torch

    from simlearn.models.two_tower import ClassicalEmbedding, build_two_tower

    blob = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=True)
    spec = blob["spec"]
    model: nn.Module
    if spec["method"] == "two_tower":
        model = build_two_tower(spec)
        model.load_state_dict(blob["state_dict"])
    else:
        model = ClassicalEmbedding(spec)
    return model.eval(), spec


# ----------------------------------------------------------------------------- embed


def embed(cfg: Config, model: nn.Module, ds: SketchDataset, device: Any) -> dict[str, np.ndarray]:
    """Every sketch with the sketch encoder and every photo with the photo encoder, in
    manifest order: embeddings (N, D), labels, ids, split, domain, unseen (bool)."""
    from simlearn.data.sketch_dataset import ImageStream

    model = model.to(device)
    stream = ImageStream(ds, cfg.model.image_size, cfg.sampler.workers)
    try:
        parts = {}
        for d in ("sketch", "photo"):
            rows = ds.rows(d)
            parts[d] = (rows, embed_rows(model, stream, rows, d, device, cfg.sampler.batch_size))
    finally:
        stream.close()
    dim = parts["photo"][1].shape[1]
    emb = np.zeros((len(ds.ids), dim), dtype=np.float32)
    for rows, e in parts.values():
        emb[rows] = e
    unseen = np.isin(ds.labels, unseen_labels(cfg, ds))
    return {
        "embeddings": emb,
        "labels": ds.labels.astype(np.int64),
        "ids": ds.ids.astype(str),
        "split": ds.splits.astype(str),
        "domain": ds.domains.astype(str),
        "unseen": unseen,
    }


# ----------------------------------------------------------------------------- evaluate

_KS = (1, 100, 200)  # P@K cut-offs


def _retrieval(
    q: np.ndarray, yq: np.ndarray, g: np.ndarray, yg: np.ndarray, distance: str
) -> tuple[dict[str, float], Any, np.ndarray, np.ndarray]:
    """Metrics of sketch queries against a photo gallery, the full result, and the top-200."""
    from simlearn.evaluation import retrieval_metrics
    from simlearn.evaluation.map_at_k import map_at_k
    from simlearn.evaluation.retrieval import nearest_neighbors

    res = retrieval_metrics(q, yq, g, yg, distance=distance, ks=_KS)
    s = res.summary()
    k = min(200, len(g))
    idx, dist = nearest_neighbors(q, g, k=k, distance=distance)  # (Q, k)
    ap200 = map_at_k(yg[idx] == yq[:, None], dist)
    metrics = {
        "map": s["map"],
        "precision_at_1": s["precision_at_1"],
        "precision_at_100": s["precision_at_100"],
        "precision_at_200": s["precision_at_200"],
        "map_at_200": float(ap200.mean()),
        "n_queries": float(len(q)),
        "n_gallery": float(len(g)),
    }
    return metrics, res, idx, dist


def evaluate(
    cfg: Config, arrays: dict, ds: SketchDataset, figures_dir: Path, name: str = "sbir"
) -> Evaluation:
    """Sketch -> photo retrieval: all categories and seen ones on the test split, unseen ones
    on every split; the 11-point PR curves; a retrieval grid of the worst test queries."""
    import pandas as pd

    emb, labels = arrays["embeddings"], arrays["labels"]
    split, domain, unseen = arrays["split"], arrays["domain"], arrays["unseen"].astype(bool)
    sk, ph, test = domain == "sketch", domain == "photo", split == "test"
    protocols = {
        "": (sk & test, ph & test),
        "seen_": (sk & test & ~unseen, ph & test & ~unseen),
        "unseen_": (sk & unseen, ph & unseen),
    }
    metrics: dict[str, float] = {}
    curves: dict[str, Any] = {}  # kind -> pandas DataFrame
    figures: list[Path] = []
    for prefix, (qm, gm) in protocols.items():
        if not qm.any() or not gm.any():
            continue
        qi, gi = np.flatnonzero(qm), np.flatnonzero(gm)
        m, res, idx, _ = _retrieval(emb[qi], labels[qi], emb[gi], labels[gi], cfg.eval.distance)
        metrics.update({prefix + k: v for k, v in m.items()})
        curves[f"pr{'_' + prefix.rstrip('_') if prefix else ''}"] = pd.DataFrame(
            {"x": res.recall_levels, "y": res.pr_curve}
        )
        if prefix in ("", "unseen_"):
            figures.append(
                _grid(cfg, ds, res.average_precision, qi, gi, idx, figures_dir, name, prefix)
            )
    summary = tuple(k for k in ("map", "unseen_map", "precision_at_100", "map_at_200")
                    if k in metrics)  # fmt: skip
    return Evaluation(metrics, curves, figures, summary)


def _grid(
    cfg: Config,
    ds: SketchDataset,
    ap: np.ndarray,
    qi: np.ndarray,
    gi: np.ndarray,
    idx: np.ndarray,
    figures_dir: Path,
    name: str,
    prefix: str,
) -> Path:
    """Rows: the ``grid_queries`` lowest-AP sketches, each with its top ``grid_k`` photos."""
    from simlearn.data.sketch_dataset import ImageStream
    from simlearn.plots import plot_retrieval_grid

    k = min(cfg.eval.grid_k, idx.shape[1])
    order = np.lexsort((np.arange(len(ap)), np.nan_to_num(ap, nan=np.inf)))  # worst first
    rows = order[: cfg.eval.grid_queries]
    size = min(cfg.model.image_size, 96)
    stream = ImageStream(ds, size, workers=1)
    q_img = np.repeat(stream.read(qi[rows]), 3, axis=3)  # (Q, S, S, 3)
    nb_rows = gi[idx[rows, :k]]  # (Q, k) dataset rows
    n_img = stream.read(nb_rows.reshape(-1)).reshape(len(rows), k, size, size, 3)
    correct = ds.labels[nb_rows] == ds.labels[qi[rows]][:, None]
    names = np.asarray(ds.class_names)
    what = "unseen categories" if prefix else "test split"
    path = Path(figures_dir) / f"retrieval_grid{'_unseen' if prefix else ''}.png"
    return plot_retrieval_grid(
        q_img, n_img, correct, path,
        title=f"{name}: worst sketch queries ({what}), top {k} photos",
        query_labels=names[ds.labels[qi[rows]]],
        neighbor_labels=names[ds.labels[nb_rows]],
    )  # fmt: skip


# ----------------------------------------------------------------------------- report

KEY_METRICS = (
    "map",
    "unseen_map",
    "seen_map",
    "precision_at_100",
    "map_at_200",
    "precision_at_200",
    "precision_at_1",
    "unseen_precision_at_100",
    "unseen_map_at_200",
    "unseen_precision_at_200",
)


def describe(cfg: Config) -> dict[str, Any]:
    """Labels for the report and the MLflow tags; ``unused``: sections a baseline ignores."""
    m = cfg.model
    if m.baseline:
        model = m.method
    elif m.shared:
        model = f"shared {m.photo_model.name}"
    else:
        model = f"{m.sketch_model.name} + {m.photo_model.name}"
    return {
        "model": model,
        "loss": "-"
        if m.baseline
        else f"{cfg.loss.name}"
        + (f" ({cfg.loss.mining})" if cfg.loss.name == "triplet" else "")
        + (" + class anchors" if cfg.loss.anchor_weight > 0 else ""),
        "baseline": m.baseline,
        "unused": ("loss", "sampler", "train") if m.baseline else (),
    }
