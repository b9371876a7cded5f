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


# ----------------------------------------------------------------------------- kind "files"


def test_files_keys_parse_with_their_defaults():
    params = {
        "datasets": {
            "mine": {"source": "image_folder", "path": "photos"},
            "listed": {"source": "manifest", "path": "~/m.parquet", "test_classes": ["a", "b"]},
            "frac": {"source": "image_folder", "path": "p", "test_classes": 0.25, "workers": 2},
            "birds": {"source": "cub200"},
            "birds_small": {"source": "cub200", "image_size": 128, "channels": 1},
        }
    }
    mine, _ = dataset_config(params, "mine")
    assert (mine.path, mine.split_by, mine.test_classes) == ("photos", None, None)
    assert (mine.image_size, mine.resize, mine.channels, mine.workers) == (64, "crop", 3, None)
    assert dataset_config(params, "listed")[0].test_classes == ("a", "b")
    frac, _ = dataset_config(params, "frac")
    assert frac.test_classes == 0.25 and frac.workers == 2
    # the benchmarks read at 224 px unless told otherwise; everything else keeps 64
    assert dataset_config(params, "birds")[0].image_size == 224
    assert dataset_config(params, "birds_small")[0].image_size == 128
    assert DatasetConfig(source="sketch_synthetic").image_size == 64
    assert (
        DatasetConfig(source="sop").image_size == DatasetConfig(source="cars196").image_size == 224
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"source": "image_folder"},
            "datasets.d.path=None: source 'image_folder' needs the folder with one sub-folder per "
            "class",
        ),
        (
            {"source": "manifest"},
            "datasets.d.path=None: source 'manifest' needs the .csv or .parquet file with columns "
            "path,label",
        ),
        (
            {"source": "manifest", "path": "list.txt"},
            "datasets.d.path='list.txt': a manifest is a .csv or .parquet file",
        ),
        (
            {"source": "digits", "path": "photos"},
            "datasets.d.path='photos': only used by sources image_folder, manifest, "
            "stereo_folder, not 'digits'",
        ),
        (
            {"source": "cub200", "split_by": "class"},
            "datasets.d.split_by='class': source 'cub200' has an official split",
        ),
        (
            {"source": "mnist", "split_by": "image"},
            "datasets.d.split_by='image': only used by sources image_folder, manifest, not 'mnist'",
        ),
        (
            {"source": "image_folder", "path": "p", "split_by": "random"},
            "datasets.d.split_by='random': unknown split; allowed: class, image",
        ),
        (
            {"source": "image_folder", "path": "p", "test_classes": 0.0},
            "datasets.d.test_classes=0.0: must be in (0, 1)",
        ),
        (
            {"source": "image_folder", "path": "p", "test_classes": 1},
            "datasets.d.test_classes=1: must be in (0, 1)",
        ),
        (
            {"source": "image_folder", "path": "p", "test_classes": [3, 7]},
            "datasets.d.test_classes[0]=3: expected a string",
        ),
        (
            {"source": "image_folder", "path": "p", "test_classes": []},
            "datasets.d.test_classes=[]: a list of class names",
        ),
        (
            {"source": "image_folder", "path": "p", "test_classes": ["a", "b", "a"]},
            "datasets.d.test_classes=['a', 'b', 'a']: ['a'] listed twice",
        ),
        (
            {"source": "image_folder", "path": "p", "split_by": "image", "test_classes": 0.5},
            "datasets.d.test_classes=0.5: split_by is 'image'",
        ),
        (
            {"source": "sop", "test_classes": 0.5},
            "datasets.d.test_classes=0.5: source 'sop' is split officially",
        ),
        (
            {"source": "image_folder", "path": "p", "resize": "pad"},
            "datasets.d.resize='pad': unknown resize policy; allowed: crop, stretch",
        ),
        (
            {"source": "image_folder", "path": "p", "channels": 4},
            "datasets.d.channels=4: unknown channel count; allowed: 1, 3",
        ),
        (
            {"source": "image_folder", "path": "p", "workers": 0},
            "datasets.d.workers=0: must be >= 1",
        ),
        (
            {"source": "image_folder", "path": "p", "image_size": 4},
            "datasets.d.image_size=4: must be >= 8",
        ),
        (
            {"source": "sketch_synthetic", "image_size": 16},
            "datasets.d.image_size=16: must be >= 32",
        ),
    ],
)
def test_bad_files_keys_name_the_key_the_value_and_what_is_allowed(data, message):
    with pytest.raises(ConfigError) as e:
        dataset_config({"datasets": {"d": data}}, "d")
    assert str(e.value).startswith(message), str(e.value)
