"""Typed, validated sections of ``params.yaml``.

Every stage loads exactly one section into one of these dataclasses. A section is checked when it
is loaded: an unknown key, a wrong type or an out-of-range value raises :class:`ConfigError`
whose message names the full key (``experiments.siamese.train.lr``), the value given and what is
allowed. Catching mistakes here costs nothing; catching them after twenty minutes of training
costs twenty minutes.

One module per idea, all built on :mod:`simlearn.config.schema` (loading, coercion and the one
set of validators):

- :mod:`~simlearn.config.schema`: :class:`ConfigError`, :func:`from_dict`, :func:`to_dict`,
  :func:`flatten`, :func:`load_params`, :func:`section`, and the validators (:func:`one_of`,
  :func:`at_least`, :func:`greater`, :func:`in_range`, :func:`finite`);
- :mod:`~simlearn.config.train`: :class:`TrainConfig`, the ``train:`` section of every task;
- :mod:`~simlearn.config.datasets`: the ``datasets:`` sections;
- :mod:`~simlearn.config.metric`: :class:`ExperimentConfig`, the section of the metric and simclr
  tasks; :mod:`~simlearn.config.stereo` and :mod:`~simlearn.config.sbir`: those tasks' ``Config``.

The package is a leaf: it imports nothing above it (a test checks that ``import simlearn.config``
loads no task). Its modules import from :mod:`simlearn.config.schema`, never from this package.
"""

from __future__ import annotations

from simlearn.config.datasets import (
    MIDDLEBURY_SCENES,
    SOURCE_NAMES,
    DatasetConfig,
    ValidationConfig,
    dataset_config,
)
from simlearn.config.metric import (
    DEEP_MODELS,
    LOSSES,
    SAMPLERS,
    SHALLOW_MODELS,
    AugmentConfig,
    EvalConfig,
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    SamplerConfig,
)
from simlearn.config.schema import (
    ConfigError,
    at_least,
    finite,
    flatten,
    from_dict,
    greater,
    in_range,
    load_params,
    one_of,
    section,
    to_dict,
)
from simlearn.config.train import TrainConfig

__all__ = [
    "DEEP_MODELS",
    "LOSSES",
    "MIDDLEBURY_SCENES",
    "SAMPLERS",
    "SHALLOW_MODELS",
    "SOURCE_NAMES",
    "AugmentConfig",
    "ConfigError",
    "DatasetConfig",
    "EvalConfig",
    "ExperimentConfig",
    "LossConfig",
    "ModelConfig",
    "SamplerConfig",
    "TrainConfig",
    "ValidationConfig",
    "at_least",
    "dataset_config",
    "finite",
    "flatten",
    "from_dict",
    "greater",
    "in_range",
    "load_params",
    "one_of",
    "section",
    "to_dict",
]
