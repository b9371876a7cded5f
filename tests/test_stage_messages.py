"""What the user can fix ends a stage with one message and exit status 1, never a traceback:
a damaged canonical array given to train, damaged embeddings given to evaluate, a param the data
refutes. The stages run as DVC runs them, as scripts in a project folder."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from simlearn.data.sources import DatasetConfig, build_dataset

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {
    "datasets": {"digits": {"source": "digits"}},
    "experiments": {
        "raw": {"task": "metric", "dataset": "digits", "model": {"name": "raw"}},
        "far": {"task": "metric", "dataset": "digits", "holdout_classes": [42]},
    },
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stage-messages")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    build_dataset("digits", DatasetConfig(source="digits"), root / "data" / "digits")
    return root


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _stage(
    project: Path, script: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, str(ROOT / "stages" / script), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.mark.slow  # stage processes that import torch
def test_a_param_the_data_refutes_is_one_message(project: Path) -> None:
    res = _stage(project, "train.py", "far", "data/digits", "models/far", "reports/train/far")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("train@far failed:\n")
    assert "experiments.far.holdout_classes=[42]: [42] out of range" in res.stderr
    assert not (project / "models" / "far").exists()


@pytest.mark.slow
def test_truncated_images_given_to_train_name_the_file(project: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "digits"
    shutil.copytree(project / "data" / "digits", data)
    images = data / "images.npy"
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    res = _stage(project, "train.py", "raw", str(data), str(tmp_path / "m"), str(tmp_path / "r"))
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert f"{images}: cannot be read" in res.stderr and "truncated or damaged" in res.stderr
    assert "`dvc repro` rebuilds it" in res.stderr


@pytest.mark.slow
def test_truncated_embeddings_given_to_evaluate_name_the_file(project: Path, tmp_path: Path):
    emb = tmp_path / "raw.npz"
    np.savez(emb, embeddings=np.zeros((1797, 64), np.float32), labels=np.zeros(1797, int))
    emb.write_bytes(emb.read_bytes()[:-4000])
    from simlearn.tasks import write_trained_config

    trained = write_trained_config(_mkdir(tmp_path / "models" / "raw"), PARAMS, "raw")
    res = _stage(project, "evaluate.py", "raw", str(emb), "data/digits", str(tmp_path / "eval"),
                 "--config", str(trained))  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.stderr.startswith("evaluate@raw failed:\n")
    assert f"{emb}: cannot be read" in res.stderr and "`dvc repro embed@raw`" in res.stderr


@pytest.mark.slow
def test_a_read_only_store_ends_train_with_one_message_naming_it(project: Path, tmp_path: Path):
    from tests.test_store_faults import _write_protected

    store = tmp_path / "store"
    store.mkdir()
    db = store / "mlflow.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()  # a database
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    with _write_protected(db, 0o444):
        res = _stage(project, "train.py", "raw", "data/digits", str(tmp_path / "m"),
                     str(tmp_path / "r"), env=env)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert res.stderr.startswith("train@raw failed:\nMLflow tracking store sqlite:///")
    assert f"{db} is not writable" in res.stderr
    assert not (tmp_path / "m").exists()
