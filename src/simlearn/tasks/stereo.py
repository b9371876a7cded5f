"""The ``stereo`` task: dense stereo matching with learned patch embeddings (MC-CNN fast, Zbontar &
LeCun 2016, https://arxiv.org/abs/1510.05970), and its classical baselines.

- ``model.method: learned`` trains :class:`~simlearn.models.patchnet.PatchNet` on triplets of 9x9
  patches (:mod:`simlearn.stereo.sampling`) with the triplet hinge on dot products of the
  normalised embeddings, in the one training loop :func:`simlearn.engine.fit` (the engine task
  is :class:`simlearn.training.stereo.PatchTripletTask`);
- ``ncc`` (raw 9x9 normalised cross-correlation) and ``sgbm`` (OpenCV StereoSGBM) fit nothing;
  they still export a ``model.pt`` that :func:`load_model` rebuilds.

Every method then runs the same inference (:func:`simlearn.stereo.matcher.predict`): cost volume,
winner-takes-all, and the switchable post-processing (``post:``). SGBM computes its own costs and
aggregation; its holes get the same filling (``post.lr_check``, ``fill``, ``border``) and its map
the same median, so no method is scored on holes another gets filled. Metrics
(:mod:`simlearn.evaluation.stereo`) are computed on the same pixels for every method.

The split is honest:

- a dataset with training pairs (KITTI, Middlebury, your own ``stereo_folder``): the model trains
  on the ``train`` pairs and is tested on the others (``val``/``test``);
- a dataset of one pair (``motorcycle``, a ``stereo_folder`` of one pair): the bottom
  ``split.holdout_rows`` of its rows are the test block; training anchors lie above it,
  ``split.row_gap`` rows away (more than a patch, so no training patch overlaps a test patch).
  Inference runs on the whole pair; the metrics count the test block only (``test``) and the
  training rows (``train_*``, for the ablation table).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ConfigError
from simlearn.config.stereo import Config
from simlearn.data.stereo_dataset import StereoDataset
from simlearn.tasks import Evaluation, Trained, TrainOptions, fit_embedder_task

if TYPE_CHECKING:  # torch and pandas load where used: reading params stays fast
    import pandas as pd
    import torch
    from torch import nn


# ----------------------------------------------------------------------------- check


def check(cfg: Config) -> None:
    """Rules across keys."""
    if cfg.model.method != "learned" and cfg.model.batch_norm:
        raise ConfigError(
            f"model.batch_norm=true: only model.method learned has a network, not "
            f"{cfg.model.method!r}"
        )


# ----------------------------------------------------------------------------- load

# region codes of the ``region/<pair>`` arrays that embed writes
UNUSED, TRAIN, TEST = 0, 1, 2


def load_data(data_dir: Path) -> StereoDataset:
    return StereoDataset(data_dir)


def check_data(cfg: Config, data: StereoDataset) -> None:
    """Checks that need the data, before any MLflow run exists: colour patches need colour
    images; a learned model has training anchors (pixels with ground truth whose three patches
    fit, :func:`training_anchors`) and its batches are bounded by them. ConfigError naming the
    key, its value, what the data has and the largest value allowed:

    - ``sampler.rows_per_step`` (k > 0): at most the rows that hold anchors, since
      :class:`~simlearn.stereo.sampling.TripletPatchSampler` draws k distinct rows (it fails
      beyond them);
    - ``sampler.batch_size`` (triplets per step, rows_per_step 0): at most the anchors. Anchors
      are drawn with replacement, so a larger batch only repeats them while its memory grows
      (at 10**9, a MemoryError once the MLflow run exists). With rows_per_step > 0 the batch is
      k whole rows and batch_size is not used;
    - ``sampler.steps_per_epoch`` only sets the epoch's length."""
    if cfg.model.colour and data.channels != 3:
        raise ConfigError(
            f"model.colour=true but dataset {cfg.dataset!r} has {data.channels} channel(s); set "
            "model.colour to false"
        )
    if cfg.model.method != "learned":
        return
    anchors = training_anchors(cfg, data)
    n = sum(len(a[0]) for _, a in anchors)
    if n == 0:
        raise ConfigError(
            f"dataset {cfg.dataset!r}: no pixel with ground truth can anchor a training triplet "
            "(its patch, 2 model.layers + 1 pixels wide, and every positive and negative "
            "patch inside the images, in the training rows): lower model.layers or "
            "sampler.neg_high, or give training more rows (one pair: split.holdout_rows, row_gap)"
        )
    s = cfg.sampler
    rows = sum(len(np.unique(a[0])) for _, a in anchors)  # the sampler's (pair, row) groups
    if s.rows_per_step > rows:
        raise ConfigError(
            f"sampler.rows_per_step={s.rows_per_step}: dataset {cfg.dataset!r} has {rows} "
            f"training rows with ground truth to anchor triplets; use at most {rows}"
        )
    if s.rows_per_step == 0 and s.batch_size > n:
        raise ConfigError(
            f"sampler.batch_size={s.batch_size}: dataset {cfg.dataset!r} has {n} training "
            f"pixels with ground truth to anchor triplets; use at most {n}"
        )


@dataclass(frozen=True)
class Region:
    """Where one pair's pixels belong: (H, W) int8 of UNUSED / TRAIN / TEST."""

    index: int
    codes: np.ndarray


def regions(cfg: Config, data: StereoDataset) -> list[Region]:
    """The pairs evaluated, with their train / test pixels (see the module docstring)."""
    splits = data.splits
    if "train" in splits:  # whole pairs are held out
        out = []
        n_train = 0
        for i, s in enumerate(splits):
            h, w = int(data.manifest["height"].iloc[i]), int(data.manifest["width"].iloc[i])
            if s == "train":
                if n_train >= cfg.eval.train_pairs:
                    continue
                n_train += 1
            code = TRAIN if s == "train" else TEST
            out.append(Region(i, np.full((h, w), code, dtype=np.int8)))
        return out
    out = []
    for i in range(len(data)):  # one-pair datasets: a held-out block of rows
        h, w = int(data.manifest["height"].iloc[i]), int(data.manifest["width"].iloc[i])
        codes = np.zeros((h, w), dtype=np.int8)
        first_test = h - int(round(cfg.split.holdout_rows * h))
        codes[first_test:] = TEST
        codes[: max(0, first_test - cfg.split.row_gap)] = TRAIN
        out.append(Region(i, codes))
    return out


def training_anchors(cfg: Config, data: StereoDataset) -> list[tuple[int, tuple]]:
    """(pair index, (y, x, d)) of every pair that holds training pixels."""
    from simlearn.evaluation.stereo import occlusion_from_disparity
    from simlearn.stereo.sampling import candidate_anchors

    s = cfg.sampler
    radius = cfg.model.layers  # 3x3 convolutions: one pixel of radius each
    out = []
    if "train" in data.splits:
        chosen = [(i, None) for i in data.indices("train")]
    else:
        chosen = [(r.index, r.codes == TRAIN) for r in regions(cfg, data)]
    for i, allowed in chosen:
        pair = data[i]
        mask = np.ones(pair.disparity.shape, bool) if allowed is None else allowed
        if s.nonoccluded:
            mask = mask & ~occlusion_from_disparity(pair.disparity)
        out.append(
            (
                i,
                candidate_anchors(
                    pair.disparity, mask, radius, s.pos_offset, s.neg_high, pair.right.shape[1]
                ),
            )
        )
    return out


# ----------------------------------------------------------------------------- train


def train(cfg: Config, data: StereoDataset, options: TrainOptions) -> Trained:
    """Train the patch network (``learned``), or build a baseline that fits nothing; either way
    the exported model is the whole matcher (:func:`simlearn.training.stereo.build_matcher`)."""
    from simlearn.training.stereo import PatchTripletTask, build_matcher, model_spec

    if cfg.model.method != "learned":
        spec = model_spec(cfg, data)
        return Trained.fitted(build_matcher(spec), spec)
    task = PatchTripletTask(cfg, data, training_anchors(cfg, data))
    return fit_embedder_task(task, cfg, options)


def example_input(data: StereoDataset) -> np.ndarray:
    """The top 16 rows of the first pair, stacked as the exported model takes it:
    (1, 2C, 16, W); the whole width, so that OpenCV's SGBM can search every disparity."""
    pair = data[0]
    crop = lambda im: im[:16].transpose(2, 0, 1).astype(np.float32) / 255.0  # noqa: E731
    return np.concatenate([crop(pair.left), crop(pair.right)])[None]


def load_model(model_dir: Path) -> tuple[nn.Module, dict]:
    """``model_dir/model.pt`` as :func:`simlearn.models.save_model` writes it."""
    import torch

    from simlearn.training.stereo import build_matcher

    blob = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=True)
    model = build_matcher(blob["spec"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["spec"]


# ----------------------------------------------------------------------------- embed


def post_processing(cfg: Config):
    from simlearn.stereo.matcher import PostProcessing

    p = cfg.post
    return PostProcessing(
        p.sgm, p.paths, p.p1, p.p2, p.lr_check, p.fill, p.border, p.subpixel, p.median
    )


def embed(
    cfg: Config, model: nn.Module, data: StereoDataset, device: str | torch.device
) -> dict[str, np.ndarray]:
    """Disparity maps of every evaluated pair. Keys: ``ids`` (N,), ``split`` (N,); per pair
    ``wta/<id>``, ``post/<id>`` float32 (H, W) (NaN = no prediction), ``lr_labels/<id>`` int8
    and ``region/<id>`` int8 (0 unused, 1 train, 2 test).

    No timing in the file: the same model gives the same bytes, so DVC skips ``evaluate`` when
    they did not change. Inference time is ``benchmarks/bench_stereo.py``'s figure."""
    from simlearn.stereo.matcher import predict

    model = model.to(device).eval()
    post = post_processing(cfg)
    out: dict[str, np.ndarray] = {}
    ids, splits = [], []
    for r in regions(cfg, data):
        pair = data[r.index]
        maps = predict(model, pair.left, pair.right, pair.max_disp, post, device)
        for k, v in maps.items():
            out[f"{k}/{pair.id}"] = v
        out[f"region/{pair.id}"] = r.codes
        ids.append(pair.id)
        splits.append(pair.split)
    out["ids"] = np.asarray(ids)
    out["split"] = np.asarray(splits)
    return out


# ----------------------------------------------------------------------------- evaluate


def evaluate(
    cfg: Config,
    arrays: Mapping[str, np.ndarray],
    data: StereoDataset,
    figures_dir: Path,
    name: str = "stereo",
) -> Evaluation:
    """Metrics on the test pixels (post-processed: unprefixed; winner-takes-all: ``wta_``), on
    their non-occluded part (``noc_``), and on the training pixels (``train_``); the accuracy
    against the error threshold, 0 to 10 px, of both maps on the test pixels (curves
    ``accuracy`` and ``accuracy_wta``); figures of the
    first test pair."""
    import pandas as pd

    from simlearn.evaluation.stereo import (
        CURVE_THRESHOLDS,
        DisparityCounts,
        disparity_counts,
        occlusion_from_disparity,
        within_counts,
    )

    index = {pid: i for i, pid in enumerate(data.ids)}
    counts: dict[str, DisparityCounts] = {}
    within = {prefix: np.zeros(len(CURVE_THRESHOLDS), np.int64) for prefix in ("", "wta_")}

    def add(key: str, c: DisparityCounts) -> None:
        counts[key] = counts.get(key, DisparityCounts()) + c

    ids = [str(x) for x in arrays["ids"]]
    for pid in ids:
        gt = data[index[pid]].disparity
        region = arrays[f"region/{pid}"]
        noc = ~occlusion_from_disparity(gt) if cfg.eval.nonoccluded else None
        for kind, prefix in (("post", ""), ("wta", "wta_")):
            pred = arrays[f"{kind}/{pid}"]
            add(prefix, disparity_counts(pred, gt, region == TEST))
            within[prefix] += within_counts(pred, gt, region == TEST)[0]
            add("train_" + prefix, disparity_counts(pred, gt, region == TRAIN))
            if noc is not None:
                add("noc_" + prefix, disparity_counts(pred, gt, (region == TEST) & noc))
    metrics: dict[str, float] = {}
    for prefix, c in counts.items():
        if c.pixels:
            metrics.update(c.metrics(prefix))
    # accuracy against the error threshold on the test pixels: reports/curves/<exp>/accuracy*.csv
    curves = {
        f"accuracy_{prefix}".rstrip("_"): pd.DataFrame(
            {"x": CURVE_THRESHOLDS, "y": w / counts[prefix].pixels}
        )
        for prefix, w in within.items()
        if counts[prefix].pixels
    }

    figures = []
    test_ids = [pid for pid in ids if (arrays[f"region/{pid}"] == TEST).any()]
    if test_ids:
        from simlearn.plots.stereo import plot_disparity

        pid = test_ids[0]
        pair = data[index[pid]]
        figures_dir = Path(figures_dir)
        figures_dir.mkdir(parents=True, exist_ok=True)
        left = pair.left[..., 0] if pair.channels == 1 else pair.left
        post_label = (
            "post-processed"
            if post_processing(cfg).changes_map
            else "no post-processing (= winner-takes-all)"
        )
        for kind, label in (("wta", "winner-takes-all"), ("post", post_label)):
            figures.append(
                plot_disparity(
                    left,
                    arrays[f"{kind}/{pid}"],
                    pair.disparity,
                    figures_dir / f"disparity_{kind}.png",
                    title=f"{name} on {pid}: {label}",
                    max_disp=pair.max_disp,
                    mask=arrays[f"region/{pid}"] == TEST,
                )
            )
    return Evaluation(metrics=metrics, curves=curves, figures=figures, summary=KEY_METRICS)


# ----------------------------------------------------------------------------- report

#: post-processed, then winner-takes-all (for sgbm: OpenCV's map, holes filled), side by side
KEY_METRICS = ("accuracy_3px", "wta_accuracy_3px", "accuracy_1px", "wta_accuracy_1px", "d1",
               "epe", "wta_epe", "density")  # fmt: skip

#: the reference ablation (Zbontar & LeCun 2016, KITTI, accuracy at 3 px without
#: post-processing): (colour, batch norm) -> (train, test)
REFERENCE_ABLATION = {
    (False, False): (0.8499, 0.8232),
    (False, True): (0.7451, 0.7161),
    (True, False): (0.8550, 0.8284),
    (True, True): (0.7440, 0.7133),
}


#: the model keys only the sgbm baseline reads, and those only a network reads
SGBM_KEYS = ("model.block_size", "model.sgbm_p1", "model.sgbm_p2", "model.uniqueness",
             "model.disp12_max_diff", "model.sgbm_mode", "model.sgbm_pad", "model.speckle_window",
             "model.speckle_range")  # fmt: skip
NETWORK_KEYS = ("model.batch_norm", "model.features", "model.layers", "model.inference_dtype")


def describe(cfg: Config) -> dict[str, Any]:
    """Labels for the report and the MLflow tags; ``unused``: sections (``loss``) and keys
    (``post.sgm``) this experiment ignores."""
    m = cfg.model
    learned = m.method == "learned"
    if learned:
        name = (
            f"mccnn-fast ({'colour' if m.colour else 'grey'}, BN {'on' if m.batch_norm else 'off'})"
        )
    else:
        name = {"ncc": "raw NCC 9x9", "sgbm": "OpenCV SGBM"}[m.method]
    unused: tuple[str, ...] = () if learned else ("loss", "sampler", "train")
    if m.method == "sgbm":  # OpenCV aggregates its own costs, to 1/16 px
        unused += (*NETWORK_KEYS, "post.sgm", "post.paths", "post.p1", "post.p2", "post.subpixel")
    else:
        unused += SGBM_KEYS
        if not learned:
            unused += tuple(k for k in NETWORK_KEYS if k != "model.layers")  # ncc: patch side
    return {
        "model": name,
        "loss": f"triplet hinge, dot, margin {cfg.loss.margin:g}" if learned else "-",
        "baseline": not learned,
        "unused": unused,
    }


def ablation_table(experiments: Mapping[str, tuple[Config, Mapping[str, float]]]) -> pd.DataFrame:
    """The ablation table of the learned stereo experiments: one row per experiment with its
    input (grey / colour), batch norm, dataset, train and test accuracy at 3 px without
    post-processing (``train_wta_accuracy_3px``, ``wta_accuracy_3px``), and the figures of
    Zbontar & LeCun 2016 (KITTI) for the same input and batch norm.

    Args:
        experiments: experiment key -> (its Config, its metrics.json); baselines are skipped.
    """
    import pandas as pd

    rows = []
    for key, (cfg, m) in experiments.items():
        if cfg.task != "stereo" or cfg.model.method != "learned":
            continue
        colour, bn = cfg.model.colour, cfg.model.batch_norm
        ref_train, ref_test = REFERENCE_ABLATION[(colour, bn)]
        rows.append(
            {
                "experiment": key,
                "dataset": cfg.dataset,
                "input": "colour" if colour else "grey",
                "batch norm": "on" if bn else "off",
                "steps": cfg.train.epochs * cfg.sampler.steps_per_epoch,
                "train": m.get("train_wta_accuracy_3px", math.nan),
                "test": m.get("wta_accuracy_3px", math.nan),
                "reference train (KITTI)": ref_train,
                "reference test (KITTI)": ref_test,
            }
        )
    cols = ["experiment", "dataset", "input", "batch norm", "steps", "train", "test",
            "reference train (KITTI)", "reference test (KITTI)"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def report_section(experiments: Mapping[str, tuple[Config, Mapping[str, float]]]) -> str | None:
    """The report's stereo section: what the two columns of the stereo table are, and the
    ablation table (accuracy at 3 px, winner-takes-all) when a learned experiment ran, as
    markdown; None when no stereo experiment ran."""
    if not any(cfg.task == "stereo" for cfg, _ in experiments.values()):
        return None
    lines = [
        "## Stereo: winner-takes-all and post-processed",
        "",
        "In the stereo table, `wta_*` is the matcher alone: winner-takes-all on the raw costs "
        "(learned, NCC); for OpenCV SGBM, which aggregates its own costs, its map with its holes "
        "filled by the same rules as every method's (`post.lr_check`, `fill`, `border`). The "
        "unprefixed figures are after each experiment's `post:` (learned, NCC: SGM, left-right "
        "check and fill, sub-pixel, median; SGBM: the fill and the median). SGBM's parameters "
        "were chosen on the training rows by `python benchmarks/tune_sgbm.py`, which also prints "
        "each method's seconds for the full pair.",
    ]
    table = ablation_table(experiments)
    if not table.empty:
        fmt = lambda v: f"{v:.2%}" if isinstance(v, float) else str(v)  # noqa: E731
        cols = list(table.columns)
        lines += [
            "",
            "## Stereo ablation: accuracy at 3 px, winner-takes-all, no post-processing",
            "",
            "train: the training pixels (rows above the test block, or the training pairs); test: "
            "the held-out pixels. The reference columns are Zbontar & LeCun 2016 on KITTI.",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "|".join("---" for _ in cols) + "|",
        ]
        lines += [
            "| " + " | ".join(fmt(v) for v in r) + " |" for r in table.itertuples(index=False)
        ]
    return "\n".join(lines) + "\n"
