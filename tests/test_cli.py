"""``simlearn search`` on a small project made here: the digits dataset, the ``raw`` baseline
fitted and embedded through the task interface, then searched from the command line."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from simlearn import tasks
from simlearn.cli import main
from simlearn.data.sources import DatasetConfig, build_dataset
from simlearn.models import save_model
from simlearn.tasks import experiment_config

ROOT = Path(__file__).resolve().parents[1]
PARAMS = {
    "datasets": {"digits": {"source": "digits", "seed": 0, "test_fraction": 0.3}},
    "experiments": {
        "raw": {"task": "metric", "dataset": "digits", "model": {"name": "raw", "normalize": False}}
    },
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """params.yaml, data/digits, models/raw/model.pt and data/embeddings/raw.npz."""
    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    build_dataset("digits", DatasetConfig(source="digits", test_fraction=0.3), root / "data/digits")
    cfg = experiment_config(PARAMS, "raw")
    task = tasks.get("metric")
    data = task.load_data(root / "data/digits")
    trained = tasks.train(cfg, data, checkpoint_dir=root / "checkpoints")
    (root / "models/raw").mkdir(parents=True)
    save_model(root / "models/raw/model.pt", trained.model, trained.spec)
    arrays = task.embed(cfg, trained.model, data, "cpu")
    (root / "data/embeddings").mkdir()
    np.savez_compressed(root / "data/embeddings/raw.npz", **arrays)
    return root


def run(project: Path, *args: str) -> int:
    return main(["search", "--root", str(project), "--params", "params.yaml", *args])


def test_query_id_finds_its_class_and_draws_the_figure(project, capsys, tmp_path) -> None:
    z = np.load(project / "data/embeddings/raw.npz")
    test_rows = np.flatnonzero(z["split"] == "test")[:3]
    shared = []
    for row in test_rows:
        out = tmp_path / f"q{row}.png"
        assert (
            run(project, "--exp", "raw", "--query-id", str(z["ids"][row]), "--out", str(out)) == 0
        )
        printed = capsys.readouterr().out
        lines = [ln.split() for ln in printed.splitlines()[2:10]]  # rank, id, label, distance
        ids, labels = [ln[1] for ln in lines], [int(ln[2]) for ln in lines]
        dists = [float(ln[3]) for ln in lines]
        assert len(lines) == 8 and str(z["ids"][row]) not in ids  # itself left out
        assert dists == sorted(dists)
        # the printed distances are the Euclidean distances of those items
        emb = {str(i): e for i, e in zip(z["ids"], z["embeddings"], strict=True)}
        expected = [np.linalg.norm(emb[i] - z["embeddings"][row]) for i in ids]
        np.testing.assert_allclose(dists, expected, rtol=1e-4)
        # and they are the 8 nearest of the whole gallery
        d_all = np.linalg.norm(z["embeddings"] - z["embeddings"][row], axis=1)
        d_all[row] = np.inf
        assert max(expected) <= np.sort(d_all)[7] * (1 + 1e-5)
        shared.append(np.mean(np.array(labels) == z["labels"][row]))
        with Image.open(out) as img:
            assert img.format == "PNG" and img.size[0] > 3 * img.size[1]  # one wide row
    assert np.mean(shared) > 0.5  # raw pixels of digits: most neighbours share the class


def test_image_file_query_uses_the_training_preprocessing(project, capsys, tmp_path) -> None:
    """A PNG of a dataset image, embedded by the CLI, lands on that item at distance ~0: the
    file goes through the same preprocessing as the ``embed`` stage."""
    data = tasks.get("metric").load_data(project / "data/digits")
    row = int(np.flatnonzero(data.splits == "test")[7])
    png = tmp_path / "digit.png"
    Image.fromarray(data.images[row][..., 0]).save(png)
    out = tmp_path / "file.png"
    assert run(project, "--exp", "raw", "--query", str(png), "--k", "3", "--out", str(out)) == 0
    first = capsys.readouterr().out.splitlines()[2].split()
    assert first[1] == data.ids[row] and float(first[3]) < 1e-5
    assert out.exists()


def test_distance_and_normalize_override_the_experiment(project, capsys, tmp_path) -> None:
    args = [
        "--exp",
        "raw",
        "--query-id",
        "digits-00003",
        "--k",
        "4",
        "--out",
        str(tmp_path / "o.png"),
    ]
    assert run(project, *args, "--distance", "l1", "--normalize", "sqrt") == 0
    printed = capsys.readouterr().out
    assert "distance L1, normalize sqrt" in printed.splitlines()[0]
    assert (project / "data/embeddings/raw.index.sqrt.npz").exists()
    lines = [ln.split() for ln in printed.splitlines()[2:6]]
    z = np.load(project / "data/embeddings/raw.npz")
    x = np.sign(z["embeddings"]) * np.sqrt(np.abs(z["embeddings"]))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = int(np.flatnonzero(z["ids"] == "digits-00003")[0])
    d = np.abs(x - x[q]).sum(1)
    d[q] = np.inf
    np.testing.assert_allclose([float(ln[3]) for ln in lines], np.sort(d)[:4], rtol=1e-4)


def test_unknown_experiment_says_which_exist(project, capsys) -> None:
    assert run(project, "--exp", "nosuch", "--query-id", "digits-00003") == 1
    err = capsys.readouterr().err
    assert "experiments.nosuch is not defined" in err and "defined experiments: raw" in err


def test_missing_model_says_how_to_make_it(project, capsys, tmp_path) -> None:
    img = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    model = project / "models/raw/model.pt"
    hidden = model.with_suffix(".hidden")
    model.rename(hidden)
    try:
        assert run(project, "--exp", "raw", "--query", str(img)) == 1
    finally:
        hidden.rename(model)
    err = capsys.readouterr().err
    assert "no trained model at" in err and "train@raw" in err


@pytest.mark.parametrize(
    ("size", "mode", "got"),
    [((28, 28), "L", "28x28 pixels with 1 channel"), ((8, 8), "RGB", "8x8 pixels with 3 channels")],
)
def test_image_that_does_not_fit_says_what_is_expected(project, capsys, tmp_path, size, mode, got):
    img = tmp_path / "bad.png"
    Image.new(mode, size).save(img)
    assert run(project, "--exp", "raw", "--query", str(img)) == 1
    err = capsys.readouterr().err
    assert got in err and "the model takes 8x8 pixels with 1 channel (greyscale" in err


def test_unknown_query_id_and_missing_embeddings(project, capsys, tmp_path) -> None:
    assert run(project, "--exp", "raw", "--query-id", "nope") == 1
    assert "--query-id 'nope' is not an item" in capsys.readouterr().err
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    code = main(["search", "--root", str(tmp_path), "--exp", "raw", "--query-id", "x"])
    assert code == 1 and "embed@raw" in capsys.readouterr().err


def test_console_script_is_declared() -> None:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["scripts"]["simlearn"] == "simlearn.cli:main"
    assert any(d.startswith("faiss-cpu") for d in meta["project"]["optional-dependencies"]["faiss"])


# ----------------------------------------------------------------------------- bad requests


def _copy_project(project: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(project, copy)
    return copy


def test_folder_as_query_is_one_message(project, capsys, tmp_path) -> None:
    assert run(project, "--exp", "raw", "--query", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert f"--query {tmp_path} is a folder; give one image file" in err
    assert "Traceback" not in err


def test_truncated_query_image_is_named(project, capsys, tmp_path) -> None:
    path = tmp_path / "q.png"
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    path.write_bytes(path.read_bytes()[:2000])  # the header is whole, the pixels are not
    assert run(project, "--exp", "raw", "--query", str(path)) == 1
    assert f"{path} cannot be decoded" in capsys.readouterr().err


def test_experiment_without_embeddings_is_refused_by_name(project, capsys, tmp_path) -> None:
    copy = _copy_project(project, tmp_path)
    params = yaml.safe_load((copy / "params.yaml").read_text())
    params["datasets"]["motorcycle"] = {}
    params["experiments"]["stereo_ncc"] = {"task": "stereo", "dataset": "motorcycle"}
    (copy / "params.yaml").write_text(yaml.safe_dump(params))
    np.savez(copy / "data/embeddings/stereo_ncc.npz", disparity=np.zeros((2, 3)), ids=["a"])
    assert run(copy, "--exp", "stereo_ncc", "--query-id", "a") == 1
    err = capsys.readouterr().err
    assert "experiment 'stereo_ncc' (task stereo) writes disparity, ids, not embeddings" in err
    assert "Traceback" not in err


def test_truncated_embeddings_are_named_and_a_truncated_index_is_rebuilt(
    project, capsys, tmp_path
) -> None:
    copy = _copy_project(project, tmp_path)
    query = str(np.load(copy / "data/embeddings/raw.npz")["ids"][0])
    assert run(copy, "--exp", "raw", "--query-id", query, "--out", str(tmp_path / "a.png")) == 0
    first = capsys.readouterr().out.splitlines()[2:10]
    from simlearn.search import index_path

    index = index_path(copy / "data/embeddings/raw.npz", "none")
    assert index.is_file()
    index.write_bytes(index.read_bytes()[:100])  # a cached index cut short
    assert run(copy, "--exp", "raw", "--query-id", query, "--out", str(tmp_path / "b.png")) == 0
    assert capsys.readouterr().out.splitlines()[2:10] == first  # rebuilt, same answer
    assert index.stat().st_size > 100  # and saved whole again

    emb = copy / "data/embeddings/raw.npz"
    emb.write_bytes(emb.read_bytes()[:-200])
    assert run(copy, "--exp", "raw", "--query-id", query) == 1
    err = capsys.readouterr().err
    assert f"{emb}: cannot be read" in err and "`dvc repro embed@raw` writes it again" in err


def test_id_with_path_parts_stays_in_the_output_folder_and_huge_k_draws_16(
    project, capsys, tmp_path, monkeypatch
) -> None:
    copy = _copy_project(project, tmp_path)
    z = dict(np.load(copy / "data/embeddings/raw.npz"))
    ids = z["ids"].astype(str)
    ids[0] = "../../escape"
    z["ids"] = ids
    np.savez(copy / "data/embeddings/raw.npz", **z)
    import pandas as pd

    manifest = pd.read_parquet(copy / "data/digits/manifest.parquet")
    manifest.loc[manifest.index[0], "id"] = "../../escape"
    manifest.to_parquet(copy / "data/digits/manifest.parquet")
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    k = "99999999999999999999"
    assert run(copy, "--exp", "raw", "--query-id", "../../escape", "--k", k) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in work.iterdir()) == ["search_raw_escape.png"]
    assert not (tmp_path / "escape.png").exists()
    assert (
        len([ln for ln in printed.splitlines() if ln.split()[:1] and ln.split()[0].isdigit()])
        == len(ids) - 1
    )
    with Image.open(work / "search_raw_escape.png") as img:  # 16 results, not 1,796
        assert img.size[0] < 1.45 * 18 * 120 + 100
