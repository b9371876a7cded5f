"""The ``stereo`` task: dense stereo matching with learned patch embeddings (MC-CNN fast, Zbontar &
LeCun 2016, https://arxiv.org/abs/1510.05970), and its classical baselines.

- ``model.method: learned`` trains :class:`~simlearn.models.patchnet.PatchNet` on triplets of 9x9
  patches (:mod:`simlearn.stereo.sampling`) with the triplet hinge on dot products of the
  normalised embeddings, in the one training loop :func:`simlearn.engine.fit`;
- ``ncc`` (raw 9x9 normalised cross-correlation) and ``sgbm`` (OpenCV StereoSGBM) fit nothing;
  they still export a ``model.pt`` that :func:`load_model` rebuilds.

Every method then runs the same inference (:func:`simlearn.stereo.matcher.predict`): cost volume,
winner-takes-all, and the switchable post-processing (``post:``). Metrics
(:mod:`simlearn.evaluation.stereo`) are computed on the same pixels for every method.

The split is honest:

- a dataset with training pairs (KITTI, Middlebury): the model trains on the ``train`` pairs and
  is tested on the others (``val``/``test``);
- a dataset of one pair (``motorcycle``): the bottom ``split.holdout_rows`` of its rows are the
  test block; training anchors lie above it, ``split.row_gap`` rows away (more than a patch, so no
  training patch overlaps a test patch). Inference runs on the whole pair; the metrics count the
  test block only (``test``) and the training rows (``train_*``, for the ablation table).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from simlearn.config import ConfigError, TrainConfig, to_dict
from simlearn.data.stereo_dataset import StereoDataset
from simlearn.tasks import Evaluation, Trained

if TYPE_CHECKING:  # torch and pandas load where used: reading params stays fast
    import pandas as pd
    import torch
    from torch import nn

#: model.method values (simlearn.stereo.matcher.METHODS, kept here so params load without torch)
METHODS = ("learned", "ncc", "sgbm")

KEY_METRICS = ("accuracy_3px", "wta_accuracy_3px", "accuracy_1px", "d1", "epe", "density")

#: the reference ablation (Zbontar & LeCun 2016, KITTI, accuracy at 3 px without
#: post-processing): (colour, batch norm) -> (train, test)
REFERENCE_ABLATION = {
    (False, False): (0.8499, 0.8232),
    (False, True): (0.7451, 0.7161),
    (True, False): (0.8550, 0.8284),
    (True, True): (0.7440, 0.7133),
}

# region codes of the ``region/<pair>`` arrays that embed writes
UNUSED, TRAIN, TEST = 0, 1, 2


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class StereoModelConfig:
    method: str = "learned"  # learned (MC-CNN fast) | ncc (raw 9x9 NCC) | sgbm (OpenCV)
    colour: bool = False  # learned, ncc: colour patches instead of grey
    batch_norm: bool = False  # learned: BatchNorm after every convolution but the last
    features: int = 64  # learned: maps per layer (64 in the paper)
    layers: int = 4  # learned: 3x3 convolutions; 4 gives the paper's 9x9 receptive field
    inference_dtype: str = "bfloat16"  # learned: network precision at inference (bf16: 2x on CPU)
    block_size: int = 5  # sgbm: matching block
    sgbm_p1: int = 8  # sgbm: P1 = sgbm_p1 * channels * block_size**2 (OpenCV's advice)
    sgbm_p2: int = 32  # sgbm: P2 likewise
    uniqueness: int = 10  # sgbm: uniqueness ratio (%); 0 = off
    disp12_max_diff: int = 1  # sgbm: left-right check tolerance; -1 = off

    def __post_init__(self) -> None:
        _one_of("method", self.method, METHODS)
        _one_of("inference_dtype", self.inference_dtype, ("float32", "bfloat16"))
        _at_least("features", self.features, 1)
        _at_least("layers", self.layers, 1)
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ConfigError(f"block_size={self.block_size!r}: must be odd and >= 1")
        _at_least("sgbm_p1", self.sgbm_p1, 0)
        if self.sgbm_p2 < self.sgbm_p1:
            raise ConfigError(f"sgbm_p2={self.sgbm_p2!r}: must be >= sgbm_p1 ({self.sgbm_p1})")
        _at_least("uniqueness", self.uniqueness, 0)


@dataclass(frozen=True)
class PatchSamplerConfig:
    batch_size: int = 256  # triplets per step (rows_per_step = 0)
    steps_per_epoch: int = 100
    pos_offset: int = 1  # |o_pos| <= pos_offset
    neg_low: int = 4  # o_neg in [neg_low, neg_high], either side
    neg_high: int = 10
    # 0: batch_size random pixels per step, embedded as patches (the paper); k > 0: every anchor
    # of k random training rows, embedded as whole-row strips (same patches, ~5x faster)
    rows_per_step: int = 0
    negatives: str = "one"  # one random offset per anchor | hardest: the most similar of all
    # anchors only where the match is visible in the right view (occlusion derived from the
    # ground truth): an occluded pixel's "positive" shows another surface
    nonoccluded: bool = True

    def __post_init__(self) -> None:
        _at_least("batch_size", self.batch_size, 1)
        _at_least("steps_per_epoch", self.steps_per_epoch, 1)
        _at_least("rows_per_step", self.rows_per_step, 0)
        _one_of("negatives", self.negatives, ("one", "hardest"))
        _at_least("pos_offset", self.pos_offset, 0)
        if self.neg_low <= self.pos_offset:
            raise ConfigError(
                f"neg_low={self.neg_low!r}: must be > pos_offset ({self.pos_offset}), or a "
                "negative can be a positive"
            )
        if self.neg_high < self.neg_low:
            raise ConfigError(f"neg_high={self.neg_high!r}: must be >= neg_low ({self.neg_low})")


@dataclass(frozen=True)
class StereoLossConfig:
    name: str = "triplet"  # the hinge of simlearn.losses.TripletMarginLoss, distance "dot"
    margin: float = 0.2

    def __post_init__(self) -> None:
        _one_of("name", self.name, ("triplet",))
        _at_least("margin", self.margin, 0.0)


@dataclass(frozen=True)
class StereoSplitConfig:
    holdout_rows: float = 0.3  # one-pair datasets: the bottom fraction of rows is the test block
    row_gap: int = 20  # rows between the training rows and the test block (> the 9-pixel patch)

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_rows < 1.0:
            raise ConfigError(f"holdout_rows={self.holdout_rows!r}: must be in (0, 1)")
        _at_least("row_gap", self.row_gap, 0)


@dataclass(frozen=True)
class PostConfig:
    sgm: bool = True  # semi-global matching over the costs
    paths: int = 4  # 4 or 8
    p1: float = 0.05  # SGM penalties, in cost units (cost = -cosine, in [-1, 1])
    p2: float = 0.5
    lr_check: bool = True
    fill: bool = True  # fill the holes of the left-right check
    border: bool = True  # fill: left-border pixels whose match is outside the right image
    subpixel: bool = True
    median: int = 5  # median filter size; 1 = off

    def __post_init__(self) -> None:
        _one_of("paths", self.paths, (4, 8))
        _at_least("p1", self.p1, 0.0)
        if self.p2 < self.p1:
            raise ConfigError(f"p2={self.p2!r}: must be >= p1 ({self.p1})")
        if self.median < 1 or self.median % 2 == 0:
            raise ConfigError(f"median={self.median!r}: must be odd and >= 1 (1 = off)")


@dataclass(frozen=True)
class StereoEvalConfig:
    train_pairs: int = 3  # datasets with training pairs: how many to evaluate for train accuracy
    nonoccluded: bool = True  # also report noc_* metrics (occlusion derived from the ground truth)

    def __post_init__(self) -> None:
        _at_least("train_pairs", self.train_pairs, 0)


@dataclass(frozen=True)
class Config:
    task: str
    dataset: str
    seed: int = 0
    model: StereoModelConfig = field(default_factory=StereoModelConfig)
    sampler: PatchSamplerConfig = field(default_factory=PatchSamplerConfig)
    loss: StereoLossConfig = field(default_factory=StereoLossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    split: StereoSplitConfig = field(default_factory=StereoSplitConfig)
    post: PostConfig = field(default_factory=PostConfig)
    eval: StereoEvalConfig = field(default_factory=StereoEvalConfig)

    def __post_init__(self) -> None:
        if self.task != "stereo":
            raise ConfigError(f"task={self.task!r}: this Config belongs to task stereo")


def _one_of(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: allowed: {', '.join(map(str, allowed))}")


def _at_least(key: str, value: float, low: float) -> None:
    if value < low:
        raise ConfigError(f"{key}={value!r}: must be >= {low}")


def describe(cfg: Config) -> dict[str, Any]:
    """Labels for the report and the MLflow tags; ``unused``: sections this experiment ignores."""
    m = cfg.model
    learned = m.method == "learned"
    if learned:
        name = (
            f"mccnn-fast ({'colour' if m.colour else 'grey'}, BN {'on' if m.batch_norm else 'off'})"
        )
    else:
        name = {"ncc": "raw NCC 9x9", "sgbm": "OpenCV SGBM"}[m.method]
    unused: tuple[str, ...] = () if learned else ("loss", "sampler", "train")
    if m.method == "sgbm":
        unused += ("post",)  # SGBM aggregates and filters itself
    return {
        "model": name,
        "loss": f"triplet hinge, dot, margin {cfg.loss.margin:g}" if learned else "-",
        "baseline": not learned,
        "unused": unused,
    }


def check(cfg: Config) -> None:
    """Rules across keys."""
    if cfg.model.method == "sgbm" and cfg.model.colour:
        raise ConfigError(
            "model.colour=true: the sgbm baseline takes the images as they are; remove model.colour"
        )
    if cfg.model.method != "learned" and cfg.model.batch_norm:
        raise ConfigError(
            f"model.batch_norm=true: only model.method learned has a network, not "
            f"{cfg.model.method!r}"
        )


# ----------------------------------------------------------------------------- data


def load_data(data_dir: Path) -> StereoDataset:
    return StereoDataset(data_dir)


def check_data(cfg: Config, data: StereoDataset) -> None:
    if cfg.model.colour and data.channels != 3:
        raise ConfigError(
            f"model.colour=true but dataset {cfg.dataset!r} has {data.channels} channel(s); set "
            "model.colour to false"
        )
    if cfg.model.method == "learned":
        anchors = training_anchors(cfg, data)
        if sum(len(a[0]) for _, a in anchors) == 0:
            raise ValueError(f"dataset {cfg.dataset!r}: no pixel with ground truth to train on")
        rows = sum(len(np.unique(a[0])) for _, a in anchors)
        if cfg.sampler.rows_per_step > rows:
            raise ConfigError(
                f"sampler.rows_per_step={cfg.sampler.rows_per_step}: dataset {cfg.dataset!r} "
                f"has {rows} training rows with ground truth"
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


# ----------------------------------------------------------------------------- training


def model_spec(cfg: Config, data: StereoDataset) -> dict[str, Any]:
    from simlearn.stereo.matcher import num_disparities

    m = cfg.model
    return {
        **to_dict(m),
        "in_channels": data.channels,
        "num_disp": max(num_disparities(float(x)) for x in data.manifest["max_disp"]),
        "patch": 2 * m.layers + 1,
    }


def build_matcher(spec: Mapping[str, Any]) -> nn.Module:
    """The exported model from its spec (see :class:`~simlearn.stereo.matcher.StereoMatcher`)."""
    import torch

    from simlearn.models.patchnet import PatchNet
    from simlearn.stereo.matcher import StereoMatcher

    net = None
    if spec["method"] == "learned":
        net = PatchNet(
            spec["in_channels"],
            spec["colour"],
            spec["batch_norm"],
            spec["features"],
            spec["layers"],
        )
    sgbm = {
        "block_size": spec["block_size"],
        "p1_scale": spec["sgbm_p1"],
        "p2_scale": spec["sgbm_p2"],
        "uniqueness": spec["uniqueness"],
        "disp12_max_diff": spec["disp12_max_diff"],
    }
    return StereoMatcher(
        spec["method"],
        net,
        num_disp=spec["num_disp"],
        colour=spec["colour"],
        patch=spec["patch"],
        sgbm=sgbm,
        dtype=getattr(torch, spec["inference_dtype"]),
    )


def train(
    cfg: Config,
    data: StereoDataset,
    *,
    checkpoint_dir: Path,
    fingerprint: str | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    progress: bool = False,
    desc: str = "",
) -> Trained:
    """Train the patch network (``learned``), or build a baseline that fits nothing."""
    spec = model_spec(cfg, data)
    if cfg.model.method != "learned":
        return Trained.fitted(build_matcher(spec), spec)
    import torch

    from simlearn.engine import fit
    from simlearn.stereo.training import PatchTripletTask

    torch.manual_seed(cfg.seed)
    task = PatchTripletTask(cfg, data, training_anchors(cfg, data))
    result = fit(
        task,
        cfg.train,
        seed=cfg.seed,
        checkpoint_dir=checkpoint_dir,
        fingerprint=fingerprint or "",
        on_epoch_end=on_epoch_end,
        progress=progress,
        desc=desc or "stereo",
    )
    matcher = build_matcher(spec)
    matcher.net.load_state_dict(task.net.state_dict())  # type: ignore[union-attr]
    return Trained(matcher.eval(), spec, result.history, result.device, result.samples_per_s)


def example_input(data: StereoDataset) -> np.ndarray:
    """The top 16 rows of the first pair, stacked as the exported model takes it:
    (1, 2C, 16, W); the whole width, so that OpenCV's SGBM can search every disparity."""
    pair = data[0]
    crop = lambda im: im[:16].transpose(2, 0, 1).astype(np.float32) / 255.0  # noqa: E731
    return np.concatenate([crop(pair.left), crop(pair.right)])[None]


def load_model(model_dir: Path) -> tuple[nn.Module, dict]:
    """``model_dir/model.pt`` as :func:`simlearn.models.save_model` writes it."""
    import torch

    blob = torch.load(Path(model_dir) / "model.pt", map_location="cpu", weights_only=True)
    model = build_matcher(blob["spec"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["spec"]


# ----------------------------------------------------------------------------- inference


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
    """The report's stereo section: the ablation table (accuracy at 3 px, winner-takes-all),
    as markdown; None when no learned stereo experiment ran."""
    table = ablation_table(experiments)
    if table.empty:
        return None
    fmt = lambda v: f"{v:.2%}" if isinstance(v, float) else str(v)  # noqa: E731
    cols = list(table.columns)
    lines = [
        "## Stereo ablation: accuracy at 3 px, winner-takes-all, no post-processing",
        "",
        "train: the training pixels (rows above the test block, or the training pairs); test: "
        "the held-out pixels. The reference columns are Zbontar & LeCun 2016 on KITTI.",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
