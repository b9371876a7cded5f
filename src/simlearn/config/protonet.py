"""The section of the ``protonet`` task (:mod:`simlearn.tasks.protonet`): an image embedding
trained in few-shot episodes with the prototypical loss (Snell et al. 2017).

The model, training, evaluation and augmentation keys are the metric task's
(:mod:`simlearn.config.metric`); ``episode`` and ``loss`` are its own. Rules across keys and
those that need the data live with the task (``simlearn.tasks.protonet.check``, ``check_data``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simlearn.config.metric import AugmentConfig, EvalConfig, ModelConfig
from simlearn.config.schema import ConfigError, at_least, greater, one_of
from simlearn.config.train import TrainConfig

__all__ = ["EpisodeConfig", "ProtoLossConfig", "ProtonetConfig"]


@dataclass(frozen=True)
class EpisodeConfig:
    """One training episode: N classes, K support and Q query images of each, all distinct."""

    # N classes per episode: Snell et al. train with more ways than they test (60 against 5 on
    # Omniglot, 30 against 5 on miniImageNet); at most the training split's seen classes
    ways: int = 5
    shots: int = 5  # K support images per class (the paper matches the test shot)
    queries: int = 5  # Q query images per class (15 on Omniglot and miniImageNet)
    # episodes per epoch; null: one pass over the training images, len(train) // (N (K + Q))
    episodes_per_epoch: int | None = None

    def __post_init__(self) -> None:
        at_least("ways", self.ways, 2)
        at_least("shots", self.shots, 1)
        at_least("queries", self.queries, 1)
        if self.episodes_per_epoch is not None:
            at_least("episodes_per_epoch", self.episodes_per_epoch, 1)


@dataclass(frozen=True)
class ProtoLossConfig:
    """The prototypical loss (:class:`simlearn.losses.prototypical_loss.PrototypicalLoss`)."""

    # squared_euclidean (the paper's) | euclidean | dot (cosine of the embeddings)
    distance: str = "squared_euclidean"
    temperature: float = 1.0  # softmax over -d / t; the paper's 1 (unnormalised embeddings)

    def __post_init__(self) -> None:
        one_of("distance", self.distance, ("squared_euclidean", "euclidean", "dot"))
        greater("temperature", self.temperature, 0.0)


@dataclass(frozen=True)
class ProtonetConfig:
    task: str
    dataset: str
    seed: int = 0
    holdout_classes: tuple[int, ...] = ()  # never trained on; evaluated apart as "unseen"
    model: ModelConfig = field(default_factory=ModelConfig)
    episode: EpisodeConfig = field(default_factory=EpisodeConfig)
    loss: ProtoLossConfig = field(default_factory=ProtoLossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    augment: AugmentConfig | None = None  # one random view of each image when set

    def __post_init__(self) -> None:
        if len(set(self.holdout_classes)) != len(self.holdout_classes):
            raise ConfigError(f"holdout_classes={list(self.holdout_classes)} has repeated classes")
