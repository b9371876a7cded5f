"""The sections of the metric and simclr tasks (simlearn.config.metric), loaded through
experiment_config: types and ranges per section, then each task's rules across keys."""

from __future__ import annotations

import pytest

from simlearn.config import ConfigError, from_dict
from simlearn.config.metric import AugmentConfig, ExperimentConfig, ModelConfig
from simlearn.tasks import experiment_config


def params(**exp):
    return {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {"e": {"task": "metric", "dataset": "digits", **exp}},
    }


def test_defaults_and_nested_sections():
    cfg = experiment_config(params(loss={"name": "supcon", "temperature": 0.2}), "e")
    assert cfg.loss.name == "supcon" and cfg.loss.temperature == 0.2
    assert cfg.train.epochs == 20 and cfg.model.name == "convnet"


def test_int_is_accepted_for_float_and_lists_become_tuples():
    cfg = experiment_config(params(train={"lr": 1}, holdout_classes=[7, 8]), "e")
    assert isinstance(cfg.train.lr, float) and cfg.holdout_classes == (7, 8)


@pytest.mark.parametrize(
    "exp, expected",
    [
        (
            {"loss": {"name": "triplet", "margn": 0.2}},
            "experiments.e.loss.margn: unknown key; allowed keys: distance, l2_reg, margin",
        ),
        ({"train": {"lr": "fast"}}, "experiments.e.train.lr='fast': expected a number"),
        ({"train": {"epochs": 1.5}}, "experiments.e.train.epochs=1.5: expected an integer"),
        ({"train": {"epochs": 0}}, "experiments.e.train.epochs=0: must be >= 1"),
        ({"loss": {"margin": -0.1}}, "experiments.e.loss.margin=-0.1: must be >= 0.0"),
        ({"loss": {"temperature": 0}}, "experiments.e.loss.temperature=0.0: must be > 0.0"),
        (
            {"loss": {"name": "arcface"}},
            "experiments.e.loss.name='arcface': unknown name; allowed: contrastive, triplet",
        ),
        (
            {"model": {"normalize": "yes"}},
            "experiments.e.model.normalize='yes': expected true or false",
        ),
        ({"task": "clustering"}, "experiments.e.task='clustering': unknown task; allowed: metric"),
        ({"holdout_classes": [1, 1]}, "holdout_classes=[1, 1] has repeated classes"),
    ],
)
def test_bad_values_name_key_value_and_allowed(exp, expected):
    with pytest.raises(ConfigError) as e:
        experiment_config(params(**exp), "e")
    assert expected in str(e.value)


def test_unknown_dataset_and_experiment_are_named():
    with pytest.raises(ConfigError, match=r"experiments.e.dataset='mnist' is not a dataset"):
        experiment_config(params(dataset="mnist"), "e")
    with pytest.raises(
        ConfigError, match=r"experiments.nope is not defined.*defined experiments: e"
    ):
        experiment_config(params(), "nope")


def test_missing_required_key():
    with pytest.raises(ConfigError, match="experiments.e.task: required key is missing"):
        from_dict(ExperimentConfig, {"dataset": "digits"}, "experiments.e")


def test_shallow_models_are_the_fitted_ones():
    assert ModelConfig(name="lda").shallow and not ModelConfig(name="resnet18").shallow


SIMCLR = {"task": "simclr", "loss": {"name": "ntxent"}, "sampler": {"name": "random"}}


def test_a_simclr_section_loads_with_its_views():
    cfg = experiment_config(params(**SIMCLR, augment={"degrees": 5, "flip_p": 0.5}), "e")
    assert cfg.task == "simclr" and cfg.augment.degrees == 5.0 and cfg.augment.flip_p == 0.5
    assert cfg.augment.translate == 0.15  # the rest keep their defaults


@pytest.mark.parametrize(
    "exp, expected",
    [
        ({**SIMCLR, "loss": {"name": "supcon"}}, "e.loss.name='supcon': task simclr trains with"),
        ({**SIMCLR, "sampler": {"name": "pk"}}, "e.sampler.name='pk': task simclr draws random"),
        ({**SIMCLR, "model": {"name": "lda"}}, "e.model.name='lda': task simclr trains a network"),
        ({"loss": {"name": "ntxent"}}, "ntxent and the random sampler belong to task simclr"),
        ({"sampler": {"name": "random"}}, "ntxent and the random sampler belong to task simclr"),
        ({"model": {"projection_dim": 64}}, "e.model.projection_dim=64: only task simclr"),
        ({**SIMCLR, "augment": {"translate": 1.0}}, "e.augment.translate=1.0: must be in [0, 1)"),
        (
            {**SIMCLR, "augment": {"scale_min": 1.2}},
            "e.augment.scale_max=1.15: must be >= scale_min (1.2)",
        ),
        ({**SIMCLR, "augment": {"flip_p": 2}}, "e.augment.flip_p=2.0: must be in [0, 1]"),
        ({**SIMCLR, "augment": {"degres": 2}}, "e.augment.degres: unknown key"),
    ],
)
def test_simclr_sections_are_checked_across_keys(exp, expected):
    with pytest.raises(ConfigError) as e:
        experiment_config(params(**exp), "e")
    assert expected in str(e.value)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"grey_p": 1.5}, "grey_p=1.5: must be in [0, 1]"),
        ({"contrast": 1.0}, "contrast=1.0: must be in [0, 1)"),
        ({"jitter": 3.0}, "jitter=3.0: must be in [0, 2.5] (hue 0.2s <= 0.5)"),
        ({"crop_scale_min": 0.0}, "must satisfy 0 < crop_scale_min <= crop_scale_max <= 1"),
        ({"blur_sigma_min": 3.0}, "blur_sigma_max=2.0: must be >= blur_sigma_min (3.0) >= 0"),
    ],
)
def test_augment_ranges(keys, message):
    AugmentConfig(grey_p=1.0, contrast=0.99, jitter=2.5)  # the closed ends are allowed
    with pytest.raises(ConfigError) as e:
        AugmentConfig(**keys)
    assert message in str(e.value)
