"""Typed, validated sections of ``params.yaml``.

Every stage loads exactly one section into one of these dataclasses. A section is checked when it
is loaded: an unknown key, a wrong type or an out-of-range value raises :class:`ConfigError`
whose message names the full key (``experiments.siamese.train.lr``), the value given and what is
allowed. Catching mistakes here costs nothing; catching them after twenty minutes of training
costs twenty minutes.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")

SHALLOW_MODELS = ("raw", "mahalanobis", "lda")
DEEP_MODELS = ("convnet", "resnet18")
LOSSES = ("contrastive", "triplet", "batch_hard", "npairs", "snn", "supcon", "ntxent")
SAMPLERS = ("pk", "pairs", "triplets", "random")


class ConfigError(ValueError):
    """A params section is malformed; the message names the key, the value and what is allowed."""


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class ModelConfig:
    name: str = (
        "convnet"  # raw | mahalanobis | lda (shallow, fitted) or convnet | resnet18 (trained)
    )
    embedding_dim: int = 32  # size of the embedding; shallow "raw" ignores it
    normalize: bool = True  # L2-normalise embeddings (put them on the unit sphere)
    width: int = 32  # channels of the first convnet stage; doubled at each downsampling
    shrinkage: float = 0.1  # mahalanobis: ridge added to the covariance, x trace/d (val-tuned)
    covariance: str = "within"  # mahalanobis: within-class (pooled) | total covariance
    projection_dim: int = 0  # simclr: MLP head g on top of the embedding, dropped after training

    def __post_init__(self) -> None:
        _one_of("name", self.name, SHALLOW_MODELS + DEEP_MODELS)
        _at_least("embedding_dim", self.embedding_dim, 1)
        _at_least("projection_dim", self.projection_dim, 0)
        _at_least("width", self.width, 1)
        _at_least("shrinkage", self.shrinkage, 0.0)
        _one_of("covariance", self.covariance, ("within", "total"))

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
        _one_of("name", self.name, LOSSES)
        _one_of("distance", self.distance, ("euclidean", "squared_euclidean", "dot"))
        _at_least("margin", self.margin, 0.0)
        _greater("temperature", self.temperature, 0.0)
        _at_least("l2_reg", self.l2_reg, 0.0)


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
        _one_of("name", self.name, SAMPLERS)
        _one_of("mining", self.mining, ("all", "hard", "semihard"))
        _at_least("classes_per_batch", self.classes_per_batch, 2)
        _at_least("samples_per_class", self.samples_per_class, 2)
        _at_least("batch_size", self.batch_size, 2)
        if self.steps_per_epoch is not None:
            _at_least("steps_per_epoch", self.steps_per_epoch, 1)


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 20
    lr: float = 3e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"  # adamw | sgd
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine (to 0 over the run) | none
    device: str = "auto"  # auto: cuda, then mps, then cpu
    amp: bool = True  # bf16 autocast on CUDA; ignored on CPU, where it would only slow things down
    grad_clip: float | None = None  # max gradient norm
    num_threads: int | None = None  # torch CPU threads; default: torch's choice
    deterministic: bool = True  # deterministic kernels: same seed, same run (costs speed on GPU)

    def __post_init__(self) -> None:
        _at_least("epochs", self.epochs, 1)
        _greater("lr", self.lr, 0.0)
        _at_least("weight_decay", self.weight_decay, 0.0)
        _one_of("optimizer", self.optimizer, ("adamw", "sgd"))
        if self.optimizer == "sgd" and not 0.0 < self.momentum < 1.0:
            raise ConfigError(
                f"momentum={self.momentum!r}: optimizer sgd uses Nesterov momentum, "
                "which needs 0 < momentum < 1"
            )
        _one_of("scheduler", self.scheduler, ("cosine", "none"))
        _one_of("device", self.device, ("auto", "cpu", "cuda", "mps"))
        if self.grad_clip is not None:
            _greater("grad_clip", self.grad_clip, 0.0)
        if self.num_threads is not None:
            _at_least("num_threads", self.num_threads, 1)


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
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"{key}={getattr(self, key)!r}: must be in [0, 1]")
        if not 0.0 <= self.blur_sigma_min <= self.blur_sigma_max:
            raise ConfigError(
                f"blur_sigma_max={self.blur_sigma_max!r}: must be >= blur_sigma_min "
                f"({self.blur_sigma_min!r}) >= 0"
            )
        _at_least("degrees", self.degrees, 0.0)
        if not 0.0 <= self.translate < 1.0:
            raise ConfigError(f"translate={self.translate!r}: must be in [0, 1)")
        _greater("scale_min", self.scale_min, 0.0)
        if self.scale_max < self.scale_min:
            raise ConfigError(
                f"scale_max={self.scale_max!r}: must be >= scale_min ({self.scale_min!r})"
            )
        if not 0.0 <= self.flip_p <= 1.0:
            raise ConfigError(f"flip_p={self.flip_p!r}: must be in [0, 1]")
        _at_least("brightness", self.brightness, 0.0)
        if not 0.0 <= self.contrast < 1.0:
            raise ConfigError(f"contrast={self.contrast!r}: must be in [0, 1)")


@dataclass(frozen=True)
class EvalConfig:
    # retrieval, pair and kNN distance: euclidean (alias l2) | cosine | manhattan (l1) |
    # chebyshev (linf) | dot (-q.g); see simlearn.evaluation.distances
    distance: str = "euclidean"
    normalize: str = "none"  # of the stored vectors: none | l2 (unit) | sqrt (unit(sign*sqrt|x|))
    ks: tuple[int, ...] = (1, 5, 10)  # P@K cut-offs
    knn_k: int = 5  # k of the kNN classifier (train split = reference set)
    max_pairs: int = 1_000_000  # pair ROC/PR: all pairs below this, else an unbiased sample
    embedding_map: str = "tsne"  # tsne | pca
    grid_queries: int = 6  # rows of the retrieval grid
    grid_k: int = 8  # neighbours per row

    def __post_init__(self) -> None:
        _one_of(
            "distance",
            self.distance,
            ("euclidean", "cosine", "manhattan", "chebyshev", "dot", "l2", "l1", "linf"),
        )
        _one_of("normalize", self.normalize, ("none", "l2", "sqrt"))
        _one_of("embedding_map", self.embedding_map, ("tsne", "pca"))
        for k in self.ks:
            _at_least("ks[]", k, 1)
        _at_least("knn_k", self.knn_k, 1)
        _at_least("max_pairs", self.max_pairs, 1)
        _at_least("grid_queries", self.grid_queries, 1)
        _at_least("grid_k", self.grid_k, 1)


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


# ----------------------------------------------------------------------------- loading


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    import yaml  # lazy: the GPU machine's image has no pyyaml, and the benchmarks need config

    with open(path) as f:
        params = yaml.safe_load(f) or {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"{path}: expected a mapping at the top level, got {type(params).__name__}"
        )
    return params


def section(params: Mapping[str, Any], group: str, key: str) -> Mapping[str, Any]:
    """``params[group][key]``, with an error that lists the keys that do exist."""
    entries = params.get(group) or {}
    if key not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise ConfigError(f"{group}.{key} is not defined in params.yaml; defined {group}: {known}")
    return entries[key] or {}


def experiment_config(params: Mapping[str, Any], name: str) -> Any:
    """``experiments.<name>`` as its task's ``Config``, after every check that needs no data:
    types and ranges, the task's rules across keys, and that its dataset is declared."""
    from simlearn import tasks

    prefix = f"experiments.{name}"
    data = section(params, "experiments", name)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}={data!r}: expected a mapping of experiment keys")
    if "task" not in data:
        raise ConfigError(f"{prefix}.task: required key is missing; tasks: {tasks.available()}")
    try:
        module = tasks.get(data["task"])
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e}") from None
    cfg = from_dict(module.Config, data, prefix)
    try:
        module.check(cfg)
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e}") from None
    datasets = params.get("datasets") or {}
    if cfg.dataset not in datasets:
        raise ConfigError(
            f"{prefix}.dataset={cfg.dataset!r} is not a dataset in params.yaml; "
            f"defined datasets: {', '.join(sorted(datasets)) or '(none)'}. Add it under "
            f"`datasets:` (e.g. `{cfg.dataset}: {{source: {cfg.dataset}}}`)."
        )
    return cfg


def from_dict(cls: type[T], data: Mapping[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and types recursively.

    Errors name the full dotted key. Range checks live in each dataclass's ``__post_init__`` and
    are re-raised here with the prefix added.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}: expected a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_join(prefix, unknown[0])}: unknown key; allowed keys: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], _join(prefix, name))
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{_join(prefix, missing[0])}: required key is missing")
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e}" if prefix else str(e)) from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-friendly dict of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; lists are kept as values."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten(v, key))
        else:
            out[key] = v
    return out


# ----------------------------------------------------------------------------- helpers


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}={value!r}: expected a mapping of {tp.__name__} keys")
        return from_dict(tp, value, key)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}={value!r}: expected a list")
        return tuple(_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}={value!r}: allowed values are {', '.join(map(repr, args))}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected true or false")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            hint = _text_number_hint(value, integer=True)
            raise ConfigError(f"{key}={value!r}: expected an integer{hint}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}={value!r}: expected a number{_text_number_hint(value)}")
        _finite(key, value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return value
    return value


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r}: unknown name; allowed: {', '.join(allowed)}")


def _at_least(key: str, value: float, low: float) -> None:
    _finite(key, value)
    if value < low:
        raise ConfigError(f"{key}={value!r}: must be >= {low}")


def _greater(key: str, value: float, low: float) -> None:
    _finite(key, value)
    if not value > low:
        raise ConfigError(f"{key}={value!r}: must be > {low}")


def _finite(key: str, value: float) -> None:
    """Refuse nan and inf: they pass every range check (nan < x is False), then ruin a run."""
    from math import isfinite

    if not isfinite(value):
        raise ConfigError(f"{key}={value!r}: must be a finite number (nan and inf are not allowed)")


def _text_number_hint(value: Any, integer: bool = False) -> str:
    """Why a number arrived as text and how to write it ("" when ``value`` is no number).

    PyYAML follows YAML 1.1, whose floats need a dot in the mantissa and a sign in the exponent:
    ``1e-3`` and ``1.0e3`` are read as strings, ``1.0e-3`` and ``1.0e+3`` as numbers.
    """
    if not isinstance(value, str):
        return ""
    text = value.strip()
    try:
        number = float(text)
    except ValueError:
        return ""
    from math import isfinite

    if not isfinite(number):
        return " (nan and inf are not allowed)"
    import yaml

    quoted = isinstance(yaml.safe_load(text), int | float)  # YAML reads it as a number unquoted
    if integer:
        if not number.is_integer():
            return ""
        return (
            f"; it is quoted text: write {int(number)} without quotes"
            if quoted
            else f"; YAML reads {text} as text: write {int(number)}"
        )
    if quoted:
        return f"; it is quoted text: write {text} without quotes"

    def yaml_float(t: str) -> str:
        mantissa, _, exponent = t.lower().partition("e")
        if "." not in mantissa:
            mantissa += ".0"
        if exponent and exponent[0] not in "+-":
            exponent = "+" + exponent
        return f"{mantissa}e{exponent}" if exponent else mantissa

    written = yaml_float(text)
    if not isinstance(yaml.safe_load(written), float):
        written = yaml_float(repr(number))
    return f"; YAML reads {text} as text: write {written}"


#: every dataset source; simlearn.data.sources.SOURCES holds a builder for each (a test checks
#: that the two agree)
SOURCE_NAMES = (
    "digits", "mnist5k", "mnist", "fashion_mnist", "cifar10", "stl10", "motorcycle", "kitti2012",
    "kitti2015", "middlebury2014", "sketchy", "sketch_synthetic",
)  # fmt: skip

#: The 23 Middlebury 2014 scenes published with ground truth.
MIDDLEBURY_SCENES = (
    "Adirondack", "Backpack", "Bicycle1", "Cable", "Classroom1", "Couch", "Flowers", "Jadeplant",
    "Mask", "Motorcycle", "Piano", "Pipes", "Playroom", "Playtable", "Recycle", "Shelves",
    "Shopvac", "Sticks", "Storage", "Sword1", "Sword2", "Umbrella", "Vintage",
)  # fmt: skip


@dataclass(frozen=True)
class DatasetConfig:
    """One entry of ``datasets:`` in params.yaml."""

    source: str  # one of SOURCE_NAMES (simlearn.data.sources.SOURCES builds each)
    seed: int = 0  # seeds every split and subsample
    val_fraction: float = 0.2  # share of the training pool held out for validation
    test_fraction: float = 0.2  # share held out for test; only where no official test exists
    max_per_split: int | None = None  # cap per split (stratified), for quick runs on big sets
    url: str | None = None  # base URL or mirror (file:// allowed) replacing BASE_URLS[source]
    disparity: str = "noc"  # kitti: "noc" (non-occluded) or "occ" (all pixels) ground truth
    scenes: tuple[str, ...] = ()  # middlebury2014: scenes to use; empty = all 23 with GT
    # sketch_synthetic: size of the generated set (the defaults: 16 x 16 photos x 5 sketches,
    # 64x64 px, built in a few seconds)
    photos_per_class: int = 16
    sketches_per_photo: int = 5
    image_size: int = 64

    def __post_init__(self) -> None:
        if self.source not in SOURCE_NAMES:
            raise ConfigError(
                f"source={self.source!r}: unknown source; allowed: {', '.join(SOURCE_NAMES)}"
            )
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"{key}={value!r}: must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ConfigError(
                f"val_fraction + test_fraction = {self.val_fraction} + {self.test_fraction}: "
                "must be < 1 so that training data remains"
            )
        if self.max_per_split is not None and self.max_per_split < 1:
            raise ConfigError(f"max_per_split={self.max_per_split!r}: must be >= 1 or null")
        if self.disparity not in ("noc", "occ"):
            raise ConfigError(f"disparity={self.disparity!r}: allowed: noc, occ")
        object.__setattr__(self, "scenes", tuple(self.scenes))
        unknown = sorted(set(self.scenes) - set(MIDDLEBURY_SCENES))
        if unknown:
            raise ConfigError(
                f"scenes={list(self.scenes)!r}: unknown {unknown}; allowed: "
                f"{', '.join(MIDDLEBURY_SCENES)}"
            )
        if self.scenes and self.source != "middlebury2014":
            raise ConfigError(
                f"scenes={list(self.scenes)!r}: only used by source middlebury2014, "
                f"not {self.source!r}; remove it"
            )
        for key, low in (("photos_per_class", 2), ("sketches_per_photo", 1), ("image_size", 32)):
            if getattr(self, key) < low:
                raise ConfigError(f"{key}={getattr(self, key)!r}: must be >= {low}")


@dataclass(frozen=True)
class ValidationConfig:
    min_rows_per_split: int = 1  # every expected split must hold at least this many rows
    min_valid_fraction: float = 0.3  # stereo: floor on the fraction of pixels with ground truth
    splits: tuple[str, ...] = ()  # splits that must be present; default: those meta.json lists

    def __post_init__(self) -> None:
        _at_least("min_rows_per_split", self.min_rows_per_split, 1)
        for s in self.splits:
            _one_of("splits[]", s, ("train", "val", "test"))
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise ConfigError(f"min_valid_fraction={self.min_valid_fraction!r}: must be in [0, 1]")


def dataset_config(params: Mapping[str, Any], name: str) -> tuple[Any, ValidationConfig]:
    """``datasets.<name>`` -> (the source's DatasetConfig, its ValidationConfig).

    The section holds the source's keys plus an optional ``validation:`` mapping. ``source``
    defaults to the dataset's own name.
    """
    data = dict(section(params, "datasets", name))
    validation = from_dict(
        ValidationConfig, data.pop("validation", None), f"datasets.{name}.validation"
    )
    data.setdefault("source", name)
    try:
        cfg = from_dict(DatasetConfig, data, f"datasets.{name}")
    except ConfigError:
        raise
    except ValueError as e:  # the source's own range checks
        raise ConfigError(f"datasets.{name}: {e}") from None
    return cfg, validation
