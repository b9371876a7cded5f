"""The task interface: a task registered at run time goes through the unchanged stages; checks run
before any MLflow run exists; the lookup lists the task modules."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from simlearn import tasks
from simlearn.config import ConfigError, TrainConfig
from simlearn.tasks import experiment_config

ROOT = Path(__file__).resolve().parents[2]


# ----------------------------------------------------------------------------- a minimal task


class ConstantModel(nn.Module):
    """Embeds every image as the same vector ``value * 1``."""

    def __init__(self, value: float, dim: int = 3) -> None:
        super().__init__()
        self.register_buffer("v", torch.full((dim,), float(value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.v.expand(len(x), -1)


@dataclass(frozen=True)
class ConstantConfig:
    task: str
    dataset: str
    seed: int = 0
    value: float = 1.0
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.value < 0:
            raise ConfigError(f"value={self.value!r}: must be >= 0")


def _constant_module() -> types.ModuleType:
    from simlearn.data.image_dataset import load_image_dataset
    from simlearn.models.embedder import to_input

    m = types.ModuleType("constant")
    m.Config = ConstantConfig
    m.KEY_METRICS = ("mean_value", "n_test")
    m.describe = lambda cfg: {"model": "constant", "loss": "-", "baseline": True, "unused": ()}

    def check(cfg):
        if cfg.value == 13:
            raise ConfigError("value=13: unlucky; allowed: any other number")

    def check_data(cfg, ds):
        if cfg.value > ds.num_classes:
            raise ConfigError(f"value={cfg.value}: at most the number of classes")

    def train(cfg, ds, options):
        row = {"epoch": 1, "loss": 0.0, "lr": 0.0, "seconds": 0.0, "samples": 0}
        options.on_epoch_end and options.on_epoch_end(row)
        return tasks.Trained(ConstantModel(cfg.value), {"value": cfg.value}, [row])

    def load_model(model_dir):
        blob = torch.load(Path(model_dir) / "model.pt", weights_only=True)
        model = ConstantModel(blob["spec"]["value"])
        model.load_state_dict(blob["state_dict"])
        return model, blob["spec"]

    def embed(cfg, model, ds, device):
        with torch.no_grad():
            emb = model(to_input(ds.images)).numpy()
        return {"embeddings": emb, "split": ds.splits}

    def evaluate(cfg, arrays, ds, figures_dir, name):
        test = arrays["split"] == "test"
        metrics = {
            "mean_value": float(arrays["embeddings"][test].mean()),
            "n_test": int(test.sum()),
        }
        curve = pd.DataFrame({"x": [0.0, 1.0], "y": [cfg.value, cfg.value]})
        return tasks.Evaluation(metrics, {"flat": curve}, [], ("mean_value",))

    m.check, m.check_data, m.train, m.load_model = check, check_data, train, load_model
    m.embed, m.evaluate, m.load_data = embed, evaluate, load_image_dataset
    m.example_input = lambda ds: to_input(ds.images[:2]).numpy()
    return m


@pytest.fixture
def constant_task():
    tasks.register("constant", _constant_module())
    yield
    tasks.unregister("constant")


@pytest.fixture
def workspace(tmp_path, digits_dir, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    return tmp_path


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    from simlearn.data.sources import DatasetConfig, build_dataset

    out = tmp_path_factory.mktemp("data") / "digits"
    build_dataset("digits", DatasetConfig(source="digits", test_fraction=0.3), out)
    return out


def _params(tmp: Path, experiments: dict) -> Path:
    p = tmp / "params.yaml"
    params = {"datasets": {"digits": {"source": "digits"}}, "experiments": experiments}
    p.write_text(yaml.safe_dump(params))
    return p


def _runs(tmp: Path) -> list:
    client = mlflow.MlflowClient(f"sqlite:///{tmp}/mlflow.db")
    exps = client.search_experiments()
    return client.search_runs([e.experiment_id for e in exps]) if exps else []


# ----------------------------------------------------------------------------- tests


def test_a_registered_task_runs_through_the_unchanged_stages(workspace, digits_dir, constant_task):
    from stages import embed as embed_stage
    from stages import evaluate as evaluate_stage
    from stages import report as report_stage
    from stages import train as train_stage

    tmp = workspace
    params = _params(tmp, {"c": {"task": "constant", "dataset": "digits", "value": 2.5}})
    p = ["--params", str(params)]
    train_stage.main(
        ["c", str(digits_dir), str(tmp / "models/c"), str(tmp / "rt/c"), *p]
        + ["--checkpoints", str(tmp / "ck"), "--no-progress"]
    )
    assert (tmp / "models/c/model.pt").exists() and (tmp / "rt/c/history.csv").exists()
    trained = json.loads((tmp / "models/c/experiment.json").read_text())  # what embed@ reads
    assert trained == {"experiment": "c", "params": yaml.safe_load(params.read_text())[
        "experiments"]["c"]}  # fmt: skip
    embed_stage.main(["c", str(tmp / "models/c"), str(digits_dir), str(tmp / "e/c.npz")])
    z = np.load(tmp / "e/c.npz")
    assert set(z.files) == {"embeddings", "split"}
    np.testing.assert_array_equal(z["embeddings"], np.full((1797, 3), 2.5, np.float32))
    metrics = evaluate_stage.main(
        ["c", str(tmp / "e/c.npz"), str(digits_dir), str(tmp / "ev/c")]
        + ["--config", str(tmp / "models/c/experiment.json"), "--curves", str(tmp / "curves")]
    )
    n_test = int((z["split"] == "test").sum())
    assert metrics == {"mean_value": 2.5, "n_test": n_test}
    assert json.loads((tmp / "ev/c/metrics.json").read_text()) == metrics
    curve = pd.read_csv(tmp / "curves/c/flat.csv")
    assert curve["y"].tolist() == [2.5, 2.5]
    names = tmp / "experiments.json"  # what check_params writes: the report's list
    names.write_text(json.dumps({"experiments": ["c"]}))
    report_stage.main(
        [str(tmp / "ev"), str(tmp / "rt"), str(tmp / "summary"), "--experiments", str(names)]
        + ["--models", str(tmp / "models"), "--curves", str(tmp / "curves")]
    )
    summary = pd.read_csv(tmp / "summary.csv")
    assert summary.loc[0, "mean_value"] == 2.5 and summary.loc[0, "n_test"] == n_test
    (run,) = _runs(tmp)
    assert run.info.run_name == "c" and run.data.metrics["mean_value"] == 2.5
    assert run.data.tags["task"] == "constant"


def test_the_task_s_own_checks_run_at_load_time_with_the_full_key(tmp_path, constant_task):
    params = {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {
            "c": {"task": "constant", "dataset": "digits", "value": 13},
            "neg": {"task": "constant", "dataset": "digits", "value": -1},
            "nope": {"task": "teleport", "dataset": "digits"},
            "sim": {"task": "simclr", "dataset": "digits", "loss": {"name": "supcon"}},
            "bh": {"task": "metric", "dataset": "digits", "sampler": {"name": "random"}},
        },
    }
    with pytest.raises(ConfigError, match=r"^experiments\.c\.value=13: unlucky"):
        experiment_config(params, "c")
    with pytest.raises(ConfigError, match=r"^experiments\.neg\.value=-1\.0: must be >= 0"):
        experiment_config(params, "neg")
    with pytest.raises(ConfigError, match=r"experiments\.nope\.task='teleport': unknown task"):
        experiment_config(params, "nope")
    with pytest.raises(ConfigError, match=r"^experiments\.sim\.loss\.name='supcon'"):
        experiment_config(params, "sim")
    with pytest.raises(ConfigError, match=r"^experiments\.bh\.loss\.name='batch_hard', sampler"):
        experiment_config(params, "bh")


@pytest.mark.parametrize(
    "experiment, message",
    [
        (
            {"task": "metric", "dataset": "digits", "holdout_classes": [99]},
            r"experiments\.x\.holdout_classes=\[99\]: \[99\] out of range",
        ),
        (
            {"task": "metric", "dataset": "digits", "holdout_classes": [7, 8, 9]},
            r"experiments\.x\.sampler\.classes_per_batch=10: the training split has 7 classes",
        ),
        (
            {"task": "metric", "dataset": "digits", "loss": {"name": "npairs"},
             "sampler": {"samples_per_class": 3}},
            r"experiments\.x\.sampler\.samples_per_class=3: the npairs loss needs an even",
        ),
    ],
)  # fmt: skip
def test_a_bad_experiment_leaves_no_mlflow_run(workspace, digits_dir, experiment, message):
    from stages import train as train_stage

    tmp = workspace
    params = _params(tmp, {"x": experiment})
    with pytest.raises(ConfigError, match=message):
        train_stage.main(
            ["x", str(digits_dir), str(tmp / "m"), str(tmp / "r"), "--params", str(params)]
            + ["--checkpoints", str(tmp / "ck"), "--no-progress"]
        )
    assert _runs(tmp) == []
    assert not (tmp / "m").exists() and not (tmp / "ck").exists()


def test_the_lookup_lists_every_task_module_and_only_those():
    modules = sorted(p.stem for p in (ROOT / "src/simlearn/tasks").glob("[!_]*.py"))
    assert tasks.available() == modules
    assert {"metric", "simclr"} <= set(modules)
    for name in modules:
        m = tasks.get(name)
        for attr in ("Config", "KEY_METRICS", "describe", "check", "load_data", "check_data"):
            assert hasattr(m, attr), f"tasks/{name}.py lacks {attr}"
        for attr in ("train", "example_input", "load_model", "embed", "evaluate"):
            assert callable(getattr(m, attr)), f"tasks/{name}.py lacks {attr}()"


def test_no_stage_names_a_task():
    names = tasks.available()
    for stage in (ROOT / "stages").glob("*.py"):
        text = stage.read_text()
        for name in names:
            assert f'"{name}"' not in text and f"'{name}'" not in text, (stage.name, name)
            assert f"tasks.{name}" not in text and f"tasks import {name}" not in text


def test_the_trained_config_gives_every_experiment_of_params_yaml_its_own_config(tmp_path):
    from simlearn.config import load_params
    from simlearn.tasks import trained_config, write_trained_config

    params = load_params(Path(__file__).resolve().parents[2] / "params.yaml")
    for name in params["experiments"]:
        folder = tmp_path / name
        folder.mkdir()
        path = write_trained_config(folder, params, name)
        assert trained_config(path, name) == experiment_config(params, name), name
    with pytest.raises(ConfigError, match=r"run `dvc repro train@raw`$"):
        trained_config(tmp_path / "batch_hard" / "experiment.json", "raw")  # another's file
    with pytest.raises(ConfigError, match=r"missing: it is written by training; run `dvc repro"):
        trained_config(tmp_path / "nowhere" / "experiment.json", "raw")
