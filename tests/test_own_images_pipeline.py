"""End to end on a user's own images: an ``image_folder`` dataset in a temporary copy of the repo,
``dvc repro`` through download, validate, train, embed and evaluate (no mocks).

The folder: 2,000 generated images in 20 class folders (simlearn.data.synthetic_shapes: mixed
JPEG, PNG, WebP and BMP, sizes 48..160 px, one greyscale, one CMYK JPEG, one RGBA PNG), split by
class: the test classes are never trained on. A second copy of the folder with one truncated
JPEG must stop in ``validate@``, naming that file, before anything trains.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.projects import BIN, copy_project, git_commit, user_env

from simlearn.data.synthetic_shapes import make_image_folder

DATASET = {"source": "image_folder", "path": "photos", "split_by": "class", "test_classes": 0.5}
NET = {
    "task": "metric",
    "dataset": "shapes",
    "model": {"name": "convnet", "embedding_dim": 32, "width": 16},
    "loss": {"name": "batch_hard"},
    "sampler": {"classes_per_batch": 8, "samples_per_class": 8},
    "train": {"epochs": 4},
}
RAW = {"task": "metric", "dataset": "shapes", "model": {"name": "raw", "normalize": False}}


def _repo(tmp: Path, experiments: dict) -> tuple[Path, dict]:
    params = {"datasets": {"shapes": DATASET}, "experiments": experiments}
    repo = copy_project(tmp / "repo", params)
    with (repo / ".gitignore").open("a") as f:
        f.write("/photos\n")
    env = user_env(repo)
    git_commit(repo, env, "init", init=True)
    return repo, env


def _repro(repo: Path, env: dict, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "dvc"), "repro", *targets],
        cwd=repo, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("photos") / "photos"
    make_image_folder(folder, classes=20, per_class=100, seed=0)
    return folder


@pytest.mark.slow
def test_own_image_folder_trains_and_beats_raw_pixels_on_unseen_classes(photos, tmp_path):
    repo, env = _repo(tmp_path, {"shapes_net": NET, "shapes_raw": RAW})
    shutil.copytree(photos, repo / "photos")
    # the experiments' whole chain; the repo's other stages (distances, report) tabulate the
    # default params' experiments, which this params.yaml does not have
    res = _repro(repo, env, "evaluate@shapes_net", "evaluate@shapes_raw")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    for stage in ("download@shapes", "validate@shapes", "train@shapes_net", "embed@shapes_net"):
        assert f"Running stage '{stage}'" in res.stdout
    meta = json.loads((repo / "data/shapes/meta.json").read_text())
    assert meta["kind"] == "files" and meta["split_by"] == "class"
    assert len(meta["test_classes"]) == 10 and not set(meta["test_classes"]) & set(
        meta["train_classes"]
    )
    assert meta["conversions"] == {"L": 1, "CMYK": 1, "RGBA": 1}
    net = json.loads((repo / "reports/eval/shapes_net/metrics.json").read_text())
    raw = json.loads((repo / "reports/eval/shapes_raw/metrics.json").read_text())
    # retrieval among the 1,000 test images of the 10 classes no model saw in training
    assert net["map"] > raw["map"] + 0.1, (net["map"], raw["map"])
    assert net["recall_at_1"] > raw["recall_at_1"], (net["recall_at_1"], raw["recall_at_1"])
    assert net["recall_at_1"] == pytest.approx(net["precision_at_1"])

    # editing a photo reruns the download (the local_files fingerprint), nothing else changed
    status = subprocess.run(
        [str(BIN / "dvc"), "status", "download@shapes"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "changed" not in status.stdout, status.stdout
    victim = next((repo / "photos" / "star").glob("*.png"))
    make_image_folder(tmp_path / "other", classes=1, per_class=1, seed=7, oddities=False)
    shutil.copy(next((tmp_path / "other").rglob("*.jpg")), victim.with_suffix(".jpg"))
    res = _repro(repo, env, "download@shapes")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Running stage 'download@shapes'" in res.stdout


@pytest.mark.slow
def test_a_truncated_jpeg_stops_validate_naming_it_and_nothing_trains(photos, tmp_path):
    repo, env = _repo(tmp_path, {"shapes_net": NET})
    shutil.copytree(photos, repo / "photos")
    victim = sorted((repo / "photos" / "hexagon").glob("*.jpg"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    res = _repro(repo, env, "evaluate@shapes_net")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "validate@shapes" in out and victim.name in out, out[-4000:]
    assert "Running stage 'train@shapes_net'" not in out
    assert not (repo / "models" / "shapes_net").exists()
    assert not (repo / "mlflow.db").exists() and not (repo / "mlruns").exists()
