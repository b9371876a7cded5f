"""``simlearn.tasks.run``: train, embed and evaluate in one call, through the one dispatch."""

from __future__ import annotations

import pandas as pd
import pytest
from tests.tasks.test_interface import _constant_module

from simlearn import tasks
from simlearn.config import ConfigError
from simlearn.data.sources import DatasetConfig, build_dataset


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "digits"
    build_dataset("digits", DatasetConfig(source="digits", test_fraction=0.3), out)
    return out


@pytest.fixture
def constant_task():
    tasks.register("constant", _constant_module())
    yield
    tasks.unregister("constant")


def _cfg(value: float):
    params = {"datasets": {"digits": {}}, "experiments": {"c": {"task": "constant",
              "dataset": "digits", "value": value}}}  # fmt: skip
    return tasks.experiment_config(params, "c")


def test_run_saves_reloads_embeds_and_evaluates(constant_task, digits_dir, tmp_path):
    """The metrics come from the model as saved and loaded back (its value lives in the spec),
    evaluated on the test split of the manifest."""
    metrics = tasks.run(_cfg(2.5), digits_dir, tmp_path, name="c")
    n_test = int((pd.read_parquet(digits_dir / "manifest.parquet")["split"] == "test").sum())
    assert metrics == {"mean_value": 2.5, "n_test": n_test}
    assert (tmp_path / "model" / "model.pt").is_file()
    model, spec = tasks.load_model(_cfg(2.5), tmp_path / "model")
    assert spec == {"value": 2.5}


def test_run_checks_the_data_before_training(constant_task, digits_dir, tmp_path):
    with pytest.raises(ConfigError, match="at most the number of classes"):
        tasks.run(_cfg(11.0), digits_dir, tmp_path)  # digits has 10 classes
    assert not (tmp_path / "model").exists()


def test_train_takes_a_data_folder_or_loaded_data_alike(constant_task, digits_dir, tmp_path):
    cfg = _cfg(1.0)
    a = tasks.train(cfg, digits_dir, checkpoint_dir=tmp_path / "a")
    b = tasks.train(cfg, tasks.load(cfg, digits_dir), checkpoint_dir=tmp_path / "b")
    assert a.spec == b.spec == {"value": 1.0}
    assert a.history == b.history
