"""The sections of the ``sbir`` task (:mod:`simlearn.tasks.sbir`): sketch and photo encoders,
the cross-domain losses, P x K batches of categories, and the zero-shot splits of Sketchy.

Rules across keys live with the task (``simlearn.tasks.sbir.check``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simlearn.config.schema import ConfigError, at_least, greater, one_of
from simlearn.config.train import TrainConfig

__all__ = [
    "ARCHITECTURES",
    "LOSSES",
    "METHODS",
    "MININGS",
    "ZERO_SHOT_OPTIONS",
    "ZERO_SHOT_SPLITS",
    "Config",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "SamplerConfig",
    "TowerConfig",
]

#: zero-shot splits of Sketchy from the literature (see :mod:`simlearn.tasks.sbir`), and of the
#: embedded synthetic set (:mod:`simlearn.data.synthetic_sketch`, whose ``UNSEEN_CATEGORIES`` it
#: is: one category per kind of outline, a round one, one with a handle, a spiky one, a composite)
ZERO_SHOT_SPLITS: dict[str, tuple[str, ...]] = {
    "sketchy25": (
        "cup", "swan", "harp", "squirrel", "snail", "ray", "pineapple", "volcano", "rifle",
        "scissors", "parrot", "windmill", "teddy_bear", "tree", "wine_bottle", "deer", "chicken",
        "airplane", "wheelchair", "tank", "umbrella", "butterfly", "camel", "horse", "bell",
    ),
    "sketchy21": (
        "bat", "cabin", "cow", "dolphin", "door", "giraffe", "helicopter", "mouse", "pear",
        "raccoon", "rhinoceros", "saw", "scissors", "seagull", "skyscraper", "songbird", "sword",
        "tree", "wheelchair", "windmill", "window",
    ),
    "synthetic": ("cup", "fish", "sun", "house"),
}  # fmt: skip
ZERO_SHOT_OPTIONS = ("none", "list", *ZERO_SHOT_SPLITS)
METHODS = ("two_tower", "raw", "edge_hog")
#: encoder architectures, as :func:`simlearn.models.two_tower.build_encoder` builds them
ARCHITECTURES = ("convnet", "sketchnet", "resnet18", "resnet18_imagenet")
LOSSES = ("triplet", "supcon", "ntxent")
MININGS = ("all", "hard", "semihard", "own")


@dataclass(frozen=True)
class TowerConfig:
    """One domain's encoder."""

    # convnet | sketchnet (stride-2 stem, fast) | resnet18 (CIFAR stem) | resnet18_imagenet
    name: str = "convnet"
    width: int = 32  # convnet, sketchnet: channels of the first stage
    pretrained: bool = False  # resnet18_imagenet: start from torchvision's ImageNet weights
    edges: bool = False  # append the image's Sobel gradient magnitude as an input channel

    def __post_init__(self) -> None:
        one_of("name", self.name, ARCHITECTURES)
        at_least("width", self.width, 1)
        if self.pretrained and self.name != "resnet18_imagenet":
            raise ConfigError(
                f"pretrained=true: only name resnet18_imagenet has ImageNet weights, not "
                f"{self.name!r}"
            )


@dataclass(frozen=True)
class ModelConfig:
    method: str = "two_tower"  # two_tower (trained) | raw | edge_hog (classical baselines)
    shared: bool = False  # one encoder for both domains (the ablation); photo_model is used
    sketch_model: TowerConfig = field(default_factory=TowerConfig)
    photo_model: TowerConfig = field(default_factory=TowerConfig)
    embedding_dim: int = 64
    normalize: bool = True  # L2-normalise embeddings
    image_size: int = 64  # every image is resized to image_size x image_size when read
    raw_size: int = 32  # raw: pixels per side of the greyscale vectors
    canny_sigma: float = 2.0  # edge_hog: Gaussian smoothing of Canny on photos
    hog_cell: int = 8  # edge_hog: pixels per HOG cell (blocks of 2x2 cells, 9 orientations)

    def __post_init__(self) -> None:
        one_of("method", self.method, METHODS)
        for key, low in (("embedding_dim", 1), ("image_size", 16), ("raw_size", 4),
                         ("hog_cell", 2)):  # fmt: skip
            at_least(key, getattr(self, key), low)
        greater("canny_sigma", self.canny_sigma, 0)
        if self.hog_cell * 2 > self.image_size:
            raise ConfigError(
                f"hog_cell={self.hog_cell}: a HOG block (2x2 cells) must fit in image_size="
                f"{self.image_size}"
            )

    @property
    def baseline(self) -> bool:
        return self.method != "two_tower"


@dataclass(frozen=True)
class LossConfig:
    name: str = "triplet"  # triplet (cross-domain) | supcon (both domains) | ntxent (sketch-photo)
    mining: str = "semihard"  # triplet: all | hard | semihard (in-batch) | own (no mining)
    margin: float = 0.2  # triplet margin, in units of distance
    distance: str = "euclidean"  # triplet: euclidean | squared_euclidean | dot
    soft: bool = False  # triplet: softplus instead of the hinge
    temperature: float = 0.1  # supcon, ntxent, and the class-anchor term
    # weight of the class-anchor term added to the loss (0: off): cross-entropy of both domains'
    # cosine similarities to fixed random class vectors (see class_anchor_loss)
    anchor_weight: float = 0.0

    def __post_init__(self) -> None:
        one_of("name", self.name, LOSSES)
        one_of("mining", self.mining, MININGS)
        one_of("distance", self.distance, ("euclidean", "squared_euclidean", "dot"))
        at_least("margin", self.margin, 0.0)
        at_least("anchor_weight", self.anchor_weight, 0.0)
        greater("temperature", self.temperature, 0)


@dataclass(frozen=True)
class SamplerConfig:
    classes_per_batch: int = 8  # P categories per batch
    photos_per_class: int = 4  # K photos per category, each with one of its sketches
    steps_per_epoch: int | None = None  # default: one pass over the training sketches
    augment: bool = True  # random horizontal flips and shifts (up to 1/16 of the side)
    recolour: bool = False  # augment: photos also get random channel orders and negatives
    workers: int = 2  # threads decoding images from disk
    batch_size: int = 256  # images per batch when embedding

    def __post_init__(self) -> None:
        at_least("classes_per_batch", self.classes_per_batch, 2)
        at_least("photos_per_class", self.photos_per_class, 1)
        at_least("workers", self.workers, 1)
        at_least("batch_size", self.batch_size, 1)
        if self.steps_per_epoch is not None:
            at_least("steps_per_epoch", self.steps_per_epoch, 1)


@dataclass(frozen=True)
class EvalConfig:
    distance: str = "euclidean"  # euclidean | cosine
    grid_queries: int = 8  # rows of the retrieval grid (worst queries first)
    grid_k: int = 8  # photos per row

    def __post_init__(self) -> None:
        one_of("distance", self.distance, ("euclidean", "cosine"))
        at_least("grid_queries", self.grid_queries, 1)
        at_least("grid_k", self.grid_k, 1)


@dataclass(frozen=True)
class Config:
    task: str
    dataset: str
    seed: int = 0
    zero_shot: str = "none"  # none | list | sketchy25 | sketchy21 | synthetic
    unseen_classes: tuple[str, ...] = ()  # zero_shot: list -> the unseen category names
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=10, lr=3e-3))
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.task != "sbir":
            raise ConfigError(f"task={self.task!r}: this Config belongs to task sbir")
        one_of("zero_shot", self.zero_shot, ZERO_SHOT_OPTIONS)
        if (self.zero_shot == "list") != bool(self.unseen_classes):
            raise ConfigError(
                f"unseen_classes={list(self.unseen_classes)}: give the names exactly when "
                f"zero_shot is 'list' (zero_shot={self.zero_shot!r})"
            )
        if len(set(self.unseen_classes)) != len(self.unseen_classes):
            raise ConfigError(f"unseen_classes={list(self.unseen_classes)}: repeated names")

    @property
    def unseen_names(self) -> tuple[str, ...]:
        if self.zero_shot == "list":
            return self.unseen_classes
        return ZERO_SHOT_SPLITS.get(self.zero_shot, ())
