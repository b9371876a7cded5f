"""The sections of the ``stereo`` task (:mod:`simlearn.tasks.stereo`): MC-CNN fast and its
classical baselines, patch sampling, the loss, the split of one-pair datasets, post-processing.

Rules across keys live with the task (``simlearn.tasks.stereo.check``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simlearn.config.schema import ConfigError, at_least, in_range, one_of
from simlearn.config.train import TrainConfig

__all__ = [
    "METHODS",
    "SGBM_MODES",
    "Config",
    "PatchSamplerConfig",
    "PostConfig",
    "StereoEvalConfig",
    "StereoLossConfig",
    "StereoModelConfig",
    "StereoSplitConfig",
]

#: model.method values (simlearn.stereo.matcher.METHODS, kept here so params load without torch)
METHODS = ("learned", "ncc", "sgbm")
#: model.sgbm_mode values (the keys of simlearn.stereo.sgbm.MODES, kept here for the same reason)
SGBM_MODES = ("sgbm", "3way", "hh", "hh4")


@dataclass(frozen=True)
class StereoModelConfig:
    method: str = "learned"  # learned (MC-CNN fast) | ncc (raw 9x9 NCC) | sgbm (OpenCV)
    colour: bool = False  # colour patches (sgbm: the colour pair) instead of grey
    batch_norm: bool = False  # learned: BatchNorm after every convolution but the last
    features: int = 64  # learned: maps per layer (64 in the paper)
    layers: int = 4  # learned: 3x3 convolutions; 4 gives the paper's 9x9 receptive field
    # learned: network precision at inference. bfloat16 pays only where the hardware has bf16
    # instructions (GPUs; CPUs with AVX-512 BF16 or AMX); on an AVX2 CPU torch emulates it and
    # the network runs several times slower than in float32 (`python benchmarks/bench_stereo.py
    # --dtype bfloat16`, then `--dtype float32`: embed_both_s)
    inference_dtype: str = "float32"
    block_size: int = 5  # sgbm: matching block
    sgbm_p1: int = 8  # sgbm: P1 = sgbm_p1 * channels * block_size**2 (OpenCV's advice)
    sgbm_p2: int = 32  # sgbm: P2 likewise
    uniqueness: int = 10  # sgbm: uniqueness ratio (%); 0 = off
    disp12_max_diff: int = 1  # sgbm: left-right check tolerance; -1 = off
    # sgbm: OpenCV's mode: sgbm (5 paths, OpenCV's default) | 3way (the same, 3-way parallel) |
    # hh (the full 8 paths of Hirschmueller 2008) | hh4 (4 paths)
    sgbm_mode: str = "sgbm"
    # sgbm: pad the pair on the left with numDisparities replicated columns, so that OpenCV
    # computes the left band it leaves empty otherwise (false: OpenCV's behaviour)
    sgbm_pad: bool = False
    speckle_window: int = 100  # sgbm: largest speckle (px) the speckle filter removes; 0 = off
    speckle_range: int = 2  # sgbm: disparity variation (px) within a connected speckle

    def __post_init__(self) -> None:
        one_of("method", self.method, METHODS)
        one_of("inference_dtype", self.inference_dtype, ("float32", "bfloat16"), what="dtype")
        at_least("features", self.features, 1)
        at_least("layers", self.layers, 1)
        if self.block_size < 1 or self.block_size % 2 == 0:
            raise ConfigError(f"block_size={self.block_size!r}: must be odd and >= 1")
        at_least("sgbm_p1", self.sgbm_p1, 0)
        if self.sgbm_p2 < self.sgbm_p1:
            raise ConfigError(f"sgbm_p2={self.sgbm_p2!r}: must be >= sgbm_p1 ({self.sgbm_p1})")
        at_least("uniqueness", self.uniqueness, 0)
        if self.disp12_max_diff < -1:
            raise ConfigError(
                f"disp12_max_diff={self.disp12_max_diff!r}: must be >= 0, or -1 (off)"
            )
        one_of("sgbm_mode", self.sgbm_mode, SGBM_MODES, what="mode")
        at_least("speckle_window", self.speckle_window, 0)
        at_least("speckle_range", self.speckle_range, 1)


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
        at_least("batch_size", self.batch_size, 1)
        at_least("steps_per_epoch", self.steps_per_epoch, 1)
        at_least("rows_per_step", self.rows_per_step, 0)
        one_of("negatives", self.negatives, ("one", "hardest"))
        at_least("pos_offset", self.pos_offset, 0)
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
        one_of("name", self.name, ("triplet",))
        at_least("margin", self.margin, 0.0)


@dataclass(frozen=True)
class StereoSplitConfig:
    holdout_rows: float = 0.3  # one-pair datasets: the bottom fraction of rows is the test block
    row_gap: int = 20  # rows between the training rows and the test block (> the 9-pixel patch)

    def __post_init__(self) -> None:
        in_range("holdout_rows", self.holdout_rows, 0, 1, open_low=True, open_high=True)
        at_least("row_gap", self.row_gap, 0)


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
        one_of("paths", self.paths, (4, 8), what="number of paths")
        at_least("p1", self.p1, 0.0)
        if self.p2 < self.p1:
            raise ConfigError(f"p2={self.p2!r}: must be >= p1 ({self.p1})")
        if self.median < 1 or self.median % 2 == 0:
            raise ConfigError(f"median={self.median!r}: must be odd and >= 1 (1 = off)")


@dataclass(frozen=True)
class StereoEvalConfig:
    train_pairs: int = 3  # datasets with training pairs: how many to evaluate for train accuracy
    nonoccluded: bool = True  # also report noc_* metrics (occlusion derived from the ground truth)

    def __post_init__(self) -> None:
        at_least("train_pairs", self.train_pairs, 0)


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
