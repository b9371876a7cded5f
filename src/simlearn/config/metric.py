"""The sections of the ``metric`` and ``simclr`` tasks: :class:`ExperimentConfig` and its parts.

Rules across keys (which loss trains on which sampler, what simclr requires) live with each task
(``simlearn.tasks.<task>.check``); this module checks each section on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simlearn.config.schema import ConfigError, at_least, greater, in_range, one_of
from simlearn.config.train import TrainConfig

__all__ = [
    "DEEP_MODELS",
    "LOSSES",
    "SAMPLERS",
    "SHALLOW_MODELS",
    "AugmentConfig",
    "EvalConfig",
    "ExperimentConfig",
    "FewShotConfig",
    "LossConfig",
    "ModelConfig",
    "OODConfig",
    "RESNETS",
    "SamplerConfig",
]

SHALLOW_MODELS = ("raw", "mahalanobis", "lda")
RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")  # torchvision's
DEEP_MODELS = ("convnet", *RESNETS)
LOSSES = ("contrastive", "triplet", "batch_hard", "npairs", "snn", "supcon", "ntxent")
SAMPLERS = ("pk", "pairs", "triplets", "random")


@dataclass(frozen=True)
class ModelConfig:
    # raw | mahalanobis | lda (shallow, fitted) or convnet | resnet18 | resnet34 | resnet50 |
    # resnet101 | resnet152 (trained; the ResNets are torchvision's)
    name: str = "convnet"
    embedding_dim: int = 32  # size of the embedding; shallow "raw" ignores it
    normalize: bool = True  # L2-normalise embeddings (put them on the unit sphere)
    width: int = 32  # channels of the first convnet stage; doubled at each downsampling
    shrinkage: float = 0.1  # mahalanobis: ridge added to the covariance, x trace/d (val-tuned)
    covariance: str = "within"  # mahalanobis: within-class (pooled) | total covariance
    projection_dim: int = 0  # simclr: MLP head g on top of the embedding, dropped after training
    # ResNets: imagenet starts from torchvision's IMAGENET1K_V1 weights (the original ones, which
    # the field's papers fine-tune, and the only ones ResNet-18/34 have; DEFAULT moves between
    # torchvision versions), read from the torch hub cache, never downloaded during a run, and
    # standardises the input with their ImageNet mean/std; null: random initialisation
    weights: str | None = None
    # ResNets: cifar (3x3 stride-1 convolution, no max-pool: for 32-64 px images) | imagenet
    # (torchvision's 7x7 stride-2 convolution and max-pool: for 128-256 px) | auto: imagenet with
    # weights, cifar without
    stem: str = "auto"
    # with weights: BatchNorm keeps the ImageNet statistics and affine parameters (eval mode, no
    # gradient), the usual choice for fine-tuning on small batches (Musgrave et al. 2020)
    freeze_bn: bool = False

    def __post_init__(self) -> None:
        one_of("name", self.name, SHALLOW_MODELS + DEEP_MODELS)
        at_least("embedding_dim", self.embedding_dim, 1)
        at_least("projection_dim", self.projection_dim, 0)
        at_least("width", self.width, 1)
        at_least("shrinkage", self.shrinkage, 0.0)
        one_of("covariance", self.covariance, ("within", "total"))
        if self.weights not in (None, "imagenet"):
            raise ConfigError(f"weights={self.weights!r}: unknown weights; allowed: imagenet, null")
        one_of("stem", self.stem, ("auto", "cifar", "imagenet"), what="stem")
        if self.weights is not None and self.name not in RESNETS:
            raise ConfigError(
                f"weights={self.weights!r}: only the ResNets ({', '.join(RESNETS)}) have "
                f"pretrained weights, not name={self.name!r}; set weights: null"
            )
        if self.weights is not None and self.stem == "cifar":
            raise ConfigError(
                f"stem='cifar' with weights={self.weights!r}: the ImageNet weights belong to "
                "the ImageNet stem; set stem: imagenet (or auto), or weights: null"
            )
        if self.stem != "auto" and self.name not in RESNETS:
            raise ConfigError(
                f"stem={self.stem!r}: only the ResNets have a stem to choose, not "
                f"name={self.name!r}; leave stem: auto"
            )
        if self.freeze_bn and self.weights is None:
            raise ConfigError(
                "freeze_bn=true needs weights: imagenet (a random network has no batch-norm "
                "statistics worth keeping); set freeze_bn: false"
            )

    @property
    def shallow(self) -> bool:
        return self.name in SHALLOW_MODELS


@dataclass(frozen=True)
class LossConfig:
    name: str = "batch_hard"  # contrastive | triplet | batch_hard | npairs | snn | supcon | ntxent
    margin: float = 0.2  # contrastive, triplet, batch_hard: the margin m (alpha)
    distance: str = "euclidean"  # euclidean | dot (dot product of normalised embeddings)
    soft: bool = False  # triplet, batch_hard: softplus(d_ap - d_an) instead of the hinge
    temperature: float = 0.1  # snn, supcon, ntxent
    l2_reg: float = 0.0  # npairs: weight of the embedding-norm penalty (Sohn 2016)

    def __post_init__(self) -> None:
        one_of("name", self.name, LOSSES)
        one_of("distance", self.distance, ("euclidean", "squared_euclidean", "dot"))
        at_least("margin", self.margin, 0.0)
        greater("temperature", self.temperature, 0.0)
        at_least("l2_reg", self.l2_reg, 0.0)


@dataclass(frozen=True)
class SamplerConfig:
    # pk: P classes x K samples | pairs: balanced +/- pairs | triplets: random triplets |
    # random: batch_size images drawn without replacement, labels unused (simclr)
    name: str = "pk"
    classes_per_batch: int = 10  # P
    samples_per_class: int = 8  # K
    batch_size: int = 128  # pairs / triplets / images per batch ("pairs", "triplets", "random")
    mining: str = "all"  # in-batch triplet mining on pk batches: all | hard | semihard
    steps_per_epoch: int | None = None  # default: one pass over the training set

    def __post_init__(self) -> None:
        one_of("name", self.name, SAMPLERS)
        one_of("mining", self.mining, ("all", "hard", "semihard"))
        at_least("classes_per_batch", self.classes_per_batch, 2)
        at_least("samples_per_class", self.samples_per_class, 2)
        at_least("batch_size", self.batch_size, 2)
        if self.steps_per_epoch is not None:
            at_least("steps_per_epoch", self.steps_per_epoch, 1)


@dataclass(frozen=True)
class AugmentConfig:
    """The random views of the simclr task (see :mod:`simlearn.augment`), drawn per sample."""

    degrees: float = 15.0  # rotation, uniform in [-degrees, degrees]
    translate: float = 0.15  # shift, uniform in [-t, t] of each side
    scale_min: float = 0.85  # zoom, uniform in [scale_min, scale_max]
    scale_max: float = 1.15
    flip_p: float = 0.0  # horizontal flip probability (0 for digits: a flip changes the class)
    brightness: float = 0.0  # additive shift, uniform in [-b, b]
    contrast: float = 0.0  # contrast factor, uniform in [1 - c, 1 + c]
    # colour views of the paper (Chen et al. 2020, appendix A); all off by default (digits)
    crop: bool = False  # random resized crop (then set degrees: 0, translate: 0, scale 1..1)
    crop_scale_min: float = 0.08  # crop area, uniform in [min, max] of the image's
    crop_scale_max: float = 1.0
    crop_ratio_min: float = 0.75  # crop width/height, log-uniform in [min, max]
    crop_ratio_max: float = 4 / 3
    jitter: float = 0.0  # colour jitter strength s: brightness/contrast/saturation 0.8s, hue 0.2s
    jitter_p: float = 0.8  # probability that an image is jittered
    grey_p: float = 0.0  # probability of greyscale (the paper: 0.2)
    blur_p: float = 0.0  # probability of Gaussian blur (the paper: 0.5 on ImageNet, 0 on CIFAR)
    blur_sigma_min: float = 0.1  # blur sigma in pixels, uniform in [min, max]
    blur_sigma_max: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.crop_scale_min <= self.crop_scale_max <= 1.0:
            raise ConfigError(
                f"crop_scale_min={self.crop_scale_min!r}, crop_scale_max={self.crop_scale_max!r}:"
                " must satisfy 0 < crop_scale_min <= crop_scale_max <= 1"
            )
        if not 0.0 < self.crop_ratio_min <= self.crop_ratio_max:
            raise ConfigError(
                f"crop_ratio_min={self.crop_ratio_min!r}, crop_ratio_max={self.crop_ratio_max!r}:"
                " must satisfy 0 < crop_ratio_min <= crop_ratio_max"
            )
        if not 0.0 <= self.jitter <= 2.5:
            raise ConfigError(f"jitter={self.jitter!r}: must be in [0, 2.5] (hue 0.2s <= 0.5)")
        for key in ("jitter_p", "grey_p", "blur_p"):
            in_range(key, getattr(self, key), 0, 1)
        if not 0.0 <= self.blur_sigma_min <= self.blur_sigma_max:
            raise ConfigError(
                f"blur_sigma_max={self.blur_sigma_max!r}: must be >= blur_sigma_min "
                f"({self.blur_sigma_min!r}) >= 0"
            )
        at_least("degrees", self.degrees, 0.0)
        in_range("translate", self.translate, 0, 1, open_high=True)
        greater("scale_min", self.scale_min, 0.0)
        if self.scale_max < self.scale_min:
            raise ConfigError(
                f"scale_max={self.scale_max!r}: must be >= scale_min ({self.scale_min!r})"
            )
        in_range("flip_p", self.flip_p, 0, 1)
        at_least("brightness", self.brightness, 0.0)
        in_range("contrast", self.contrast, 0, 1, open_high=True)


@dataclass(frozen=True)
class FewShotConfig:
    """Few-shot episodes on the held-out classes' test images (Snell et al. 2017): each of
    ``episodes`` episodes draws N classes, ``shot`` support and ``queries`` query images of each,
    and classifies the queries by the nearest class prototype (mean support embedding)."""

    # N classes per episode; an N larger than the held-out classes becomes all of them, so the
    # default gives 5-way where 5 or more classes are held out and min(5, classes)-way otherwise
    ways: tuple[int, ...] = (5,)
    shots: tuple[int, ...] = (1, 5)  # K support images per class
    queries: int = 15  # query images per class and episode (the papers' 15)
    episodes: int = 600  # the papers' 600, with the mean accuracy's 95% confidence interval

    def __post_init__(self) -> None:
        for key, values, low in (("ways", self.ways, 2), ("shots", self.shots, 1)):
            if not values:
                raise ConfigError(f"{key}=[]: give at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{key}={list(values)} has repeated values")
            for v in values:
                at_least(f"{key}[]", v, low)
        at_least("queries", self.queries, 1)
        at_least("episodes", self.episodes, 2)  # a confidence interval needs two


@dataclass(frozen=True)
class OODConfig:
    """Out-of-distribution detection: seen-class test images are in-distribution, held-out-class
    test images out-of-distribution; scores from the training split's seen classes."""

    # the k of the k-th nearest training embedding (Sun et al. 2022: 50 on CIFAR-10, 200 on
    # CIFAR-100, 1000 on ImageNet)
    knn_k: int = 50
    # Mahalanobis (Lee et al. 2018): ridge added to the shared covariance, x trace/d; the paper
    # inverts the empirical covariance itself, so the default only keeps a singular one (raw
    # pixels' constant borders) invertible
    mahalanobis_shrinkage: float = 1e-6

    def __post_init__(self) -> None:
        at_least("knn_k", self.knn_k, 1)
        at_least("mahalanobis_shrinkage", self.mahalanobis_shrinkage, 0.0)


@dataclass(frozen=True)
class EvalConfig:
    # retrieval, pair and kNN distance: euclidean (alias l2) | cosine | manhattan (l1) |
    # chebyshev (linf) | dot (-q.g); see simlearn.distances
    distance: str = "euclidean"
    normalize: str = "none"  # of the stored vectors: none | l2 (unit) | sqrt (unit(sign*sqrt|x|))
    ks: tuple[int, ...] = (1, 5, 10)  # P@K cut-offs
    knn_k: int = 5  # k of the kNN classifier (train split = reference set)
    max_pairs: int = 1_000_000  # pair ROC/PR: all pairs below this, else an unbiased sample
    embedding_map: str = "tsne"  # tsne | pca
    grid_queries: int = 6  # rows of the retrieval grid
    grid_k: int = 8  # neighbours per row
    # experiments with holdout_classes: few-shot episodes and OOD detection on those classes
    fewshot: FewShotConfig = field(default_factory=FewShotConfig)
    ood: OODConfig = field(default_factory=OODConfig)

    def __post_init__(self) -> None:
        one_of(
            "distance",
            self.distance,
            ("euclidean", "cosine", "manhattan", "chebyshev", "dot", "l2", "l1", "linf"),
        )
        one_of("normalize", self.normalize, ("none", "l2", "sqrt"))
        one_of("embedding_map", self.embedding_map, ("tsne", "pca"))
        for k in self.ks:
            at_least("ks[]", k, 1)
        at_least("knn_k", self.knn_k, 1)
        at_least("max_pairs", self.max_pairs, 1)
        at_least("grid_queries", self.grid_queries, 1)
        at_least("grid_k", self.grid_k, 1)


@dataclass(frozen=True)
class ExperimentConfig:
    task: str
    dataset: str
    seed: int = 0
    holdout_classes: tuple[int, ...] = ()  # never trained on; evaluated apart as "unseen"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # random views: simclr always (its defaults when null); metric trains on one random view of
    # each image when set, on the images as they are when null
    augment: AugmentConfig | None = None

    def __post_init__(self) -> None:
        # rules across keys live with the task (simlearn.tasks.<task>.check)
        if len(set(self.holdout_classes)) != len(self.holdout_classes):
            raise ConfigError(f"holdout_classes={list(self.holdout_classes)} has repeated classes")
