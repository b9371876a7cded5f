"""The ``datasets:`` sections (simlearn.config.datasets)."""

from __future__ import annotations

import pytest

from simlearn.config import ConfigError
from simlearn.config.datasets import SOURCE_NAMES, DatasetConfig, ValidationConfig, dataset_config


def test_the_source_names_in_config_are_the_sources_registry():
    from simlearn.data import sources

    assert SOURCE_NAMES == tuple(sources.SOURCES)
    assert sources.DatasetConfig is DatasetConfig  # one class, defined in simlearn.config
    with pytest.raises(ConfigError, match=r"source='mnist6k': unknown source; allowed: digits"):
        DatasetConfig(source="mnist6k")


def test_dataset_config_defaults_source_to_the_name_and_splits_off_validation():
    params = {"datasets": {"digits": {"seed": 3, "validation": {"splits": ["train", "test"]}}}}
    cfg, validation = dataset_config(params, "digits")
    assert cfg == DatasetConfig(source="digits", seed=3)
    assert validation == ValidationConfig(splits=("train", "test"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"val_fraction": 1.0}, "datasets.d.val_fraction=1.0: must be in [0, 1)"),
        (
            {"val_fraction": 0.5, "test_fraction": 0.5},
            "datasets.d.val_fraction + test_fraction = 0.5 + 0.5: must be < 1",
        ),
        ({"photos_per_class": 1}, "datasets.d.photos_per_class=1: must be >= 2"),
        ({"validation": {"splits": ["dev"]}}, "datasets.d.validation.splits[]='dev': unknown"),
        (
            {"validation": {"min_valid_fraction": 1.5}},
            "datasets.d.validation.min_valid_fraction=1.5: must be in [0, 1]",
        ),
    ],
)
def test_bad_dataset_sections_name_the_key(data, message):
    with pytest.raises(ConfigError) as e:
        dataset_config({"datasets": {"d": {"source": "digits", **data}}}, "d")
    assert str(e.value).startswith(message)
