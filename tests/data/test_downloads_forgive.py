"""Real downloads that forgive and explain (the download and validate stages, run in-process in a
scratch project): checksums stated in params, archives that fail set aside and fetched again,
every data error one message naming the file, Sketchy's 7z, KITTI 2012, Middlebury's scenes.

Each remote source's files are built here in their official layout and served from a loopback
HTTP server (or placed under ``downloads/`` by hand, as a user without network would).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from stages import download as download_stage
from stages import validate as validate_stage
from tests.data.mirror import serve

from simlearn.data.readers import write_kitti_disparity, write_pfm


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server over a folder: (folder, base URL)."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    with serve(folder) as url:
        yield folder, url


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch project folder (the stages run with it as the current folder)."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "keep.txt").write_text("an earlier good output\n")
    monkeypatch.chdir(root)
    return root


def _params(root: Path, datasets: dict) -> None:
    (root / "params.yaml").write_text(yaml.safe_dump({"datasets": datasets}))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _download(name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run download@<name>; (exit code, stderr). A data error must be a message, never raised."""
    rc = download_stage.main([name, f"data/{name}"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def _fails_cleanly(root: Path, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    """download@<name> fails with one message and leaves data/ exactly as it was."""
    before = _snapshot(root / "data")
    rc, err = _download(name, capsys)
    assert rc == 1, err
    assert err.count(f"download@{name} failed:\n") == 1  # after any progress bar, one message
    assert _snapshot(root / "data") == before
    return err.split(f"download@{name} failed:\n")[1]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- MNIST re-gzipped


def _idx(array: np.ndarray) -> bytes:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def _mnist_arrays(n_train: int = 300, n_test: int = 30) -> dict[str, np.ndarray]:
    """Class-dependent images, so that a training pass has something to learn."""
    rng = np.random.default_rng(0)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 60, (n, 28, 28))
        for i, label in enumerate(labels):
            images[i, 2 * label : 2 * label + 6, 4:24] += 180  # a bar whose row is the class
        out[f"{prefix}-images-idx3-ubyte"] = images.astype(np.uint8)
        out[f"{prefix}-labels-idx1-ubyte"] = labels.astype(np.uint8)
    return out


@pytest.mark.slow  # torchvision and a training pass: several seconds
def test_regzipped_mnist_mirror_needs_its_checksums_stated_then_downloads_validates_trains(
    project: Path, mirror: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, url = mirror
    for name, array in _mnist_arrays().items():  # re-packed: not the bytes of the official .gz
        (folder / f"{name}.gz").write_bytes(gzip.compress(_idx(array), compresslevel=9, mtime=1))
    _params(project, {"mnist": {"url": url}})
    err = _fails_cleanly(project, "mnist", capsys)
    raw = project / "downloads" / "mnist" / "MNIST" / "raw"
    first = "train-images-idx3-ubyte.gz"
    actual = _sha(folder / first)
    # both values, the key to set, and where the bytes went
    assert "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in err
    assert actual in err and "datasets.mnist: checksums: {" + f"{first}: {actual}" + "}" in err
    assert str(raw / f"{first}.corrupt") in err and (raw / f"{first}.corrupt").is_file()

    checksums = {f.name: _sha(f) for f in folder.glob("*.gz")}
    _params(project, {"mnist": {"url": url, "checksums": checksums, "val_fraction": 0.25}})
    rc, err = _download("mnist", capsys)
    assert rc == 0, err
    assert validate_stage.main(["mnist", "data/mnist", "reports/validation"]) == 0
    meta = yaml.safe_load((project / "data" / "mnist" / "meta.json").read_text())
    assert meta["config"]["checksums"] == checksums  # recorded: a changed mirror reruns

    from simlearn.tasks import experiment_config, train

    params = yaml.safe_load((project / "params.yaml").read_text())
    params["experiments"] = {
        "e": {
            "task": "metric",
            "dataset": "mnist",
            "model": {"name": "convnet", "embedding_dim": 8, "width": 8},
            "train": {"epochs": 2, "device": "cpu"},
        }
    }
    trained = train(experiment_config(params, "e"), "data/mnist", checkpoint_dir="ckpt")
    losses = [row["loss"] for row in trained.history]
    assert len(losses) == 2 and all(np.isfinite(losses))


@pytest.mark.slow  # torchvision
def test_unzipped_idx_files_in_torchvisions_raw_layout_are_read_and_checked(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = project / "downloads" / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    arrays = _mnist_arrays()
    for name, array in arrays.items():
        (raw / name).write_bytes(_idx(array))
    _params(project, {"mnist": {}})  # no url, no network: the files placed by hand are used
    rc, err = _download("mnist", capsys)
    assert rc == 0, err
    images = np.load(project / "data" / "mnist" / "images.npy")
    assert images.shape == (330, 28, 28, 1)

    # a stated checksum is enforced on the un-gzipped file too, and a truncated one is caught
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-7])
    (project / "data" / "mnist").rename(project / "data" / "mnist-good")
    err = _fails_cleanly(project, "mnist", capsys)
    assert f"{labels}: an IDX file of shape 30 needs 38 bytes, it has 31" in err
    assert (raw / "t10k-labels-idx1-ubyte.corrupt").is_file() and not labels.exists()


# ----------------------------------------------------------------------------- KITTI


def _kitti_frames(training: Path, left: str, right: str, disp: list[str], n: int = 3) -> None:
    rng = np.random.default_rng(1)
    for folder in (left, right, *disp):
        (training / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        frame = f"{i:06d}_10.png"
        for folder in (left, right):
            img = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
            Image.fromarray(img).save(training / folder / frame)
        d = rng.uniform(1, 30, (12, 20))
        for folder in disp:
            write_kitti_disparity(training / folder / frame, d)


def _zip_tree(archive: Path, tree: Path, prefix: str = "") -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(tree.rglob("*")):
            if f.is_file():
                z.write(f, prefix + f.relative_to(tree).as_posix())


def test_truncated_kitti_zip_is_set_aside_and_a_good_one_at_the_same_url_is_used_next(
    project: Path, mirror: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, url = mirror
    _kitti_frames(tmp_path / "tree" / "training", "image_2", "image_3", ["disp_noc_0"])
    good = tmp_path / "good.zip"
    _zip_tree(good, tmp_path / "tree")
    (folder / "data_scene_flow.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    _params(project, {"kitti2015": {"url": url, "val_fraction": 0.34}})

    err = _fails_cleanly(project, "kitti2015", capsys)
    downloads = project / "downloads" / "kitti2015"
    moved = downloads / "data_scene_flow.zip.corrupt"
    assert "data_scene_flow.zip cannot be used: cannot read archive" in err
    assert f"moved to {moved}" in err and moved.is_file()
    assert f"the next `dvc repro` downloads it again from {url}data_scene_flow.zip" in err
    assert sorted(p.name for p in downloads.iterdir()) == ["data_scene_flow.zip.corrupt"]

    (folder / "data_scene_flow.zip").write_bytes(good.read_bytes())  # the mirror is fixed
    rc, err = _download("kitti2015", capsys)
    assert rc == 0, err
    assert (downloads / "data_scene_flow" / "training" / "disp_noc_0").is_dir()
    assert validate_stage.main(["kitti2015", "data/kitti2015", "reports/validation"]) == 0


def test_kitti_zip_nested_one_folder_deeper_is_found(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _kitti_frames(tmp_path / "tree" / "training", "image_2", "image_3", ["disp_noc_0"])
    downloads = project / "downloads" / "kitti2015"
    _zip_tree(downloads / "data_scene_flow.zip", tmp_path / "tree", prefix="data_scene_flow/")
    _params(project, {"kitti2015": {}})
    rc, err = _download("kitti2015", capsys)
    assert rc == 0, err
    assert len(list((project / "data" / "kitti2015").glob("**/*.npy"))) >= 3


def test_kitti_zip_of_the_wrong_layout_names_expected_and_found_and_is_set_aside(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # KITTI 2012's folders in a file named like KITTI 2015's zip
    _kitti_frames(tmp_path / "tree" / "training", "colored_0", "colored_1", ["disp_noc"])
    downloads = project / "downloads" / "kitti2015"
    _zip_tree(downloads / "data_scene_flow.zip", tmp_path / "tree")
    _params(project, {"kitti2015": {}})
    err = _fails_cleanly(project, "kitti2015", capsys)
    assert (
        "the expected layout: training/image_2/, training/image_3/ and training/disp_noc_0/" in err
    )
    assert "it holds training/ (colored_0/, colored_1/, disp_noc/)" in err
    assert (downloads / "data_scene_flow.zip.corrupt").is_file()
    assert sorted(p.name for p in downloads.iterdir()) == ["data_scene_flow.zip.corrupt"]


def test_truncated_kitti_disparity_png_is_named(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    training = project / "downloads" / "kitti2015" / "training"
    _kitti_frames(training, "image_2", "image_3", ["disp_noc_0"])
    bad = training / "disp_noc_0" / "000001_10.png"
    bad.write_bytes(bad.read_bytes()[:60])
    _params(project, {"kitti2015": {}})
    err = _fails_cleanly(project, "kitti2015", capsys)
    assert f"{bad}: cannot be decoded as a 16-bit PNG disparity map" in err
    assert "Replace it with a good copy" in err


def test_kitti2012_archive_in_the_official_layout_downloads_and_validates(
    project: Path, mirror: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, url = mirror
    tree = tmp_path / "tree"
    _kitti_frames(tree / "training", "colored_0", "colored_1", ["disp_noc", "disp_occ"], n=4)
    (tree / "testing" / "colored_0").mkdir(parents=True)  # the official zip has both halves
    Image.fromarray(np.zeros((12, 20, 3), np.uint8)).save(tree / "testing/colored_0/000000_10.png")
    _zip_tree(folder / "data_stereo_flow.zip", tree)
    _params(project, {"kitti2012": {"url": url, "disparity": "occ", "val_fraction": 0.25}})
    rc, err = _download("kitti2012", capsys)
    assert rc == 0, err
    assert validate_stage.main(["kitti2012", "data/kitti2012", "reports/validation"]) == 0
    manifest = __import__("pandas").read_parquet(project / "data/kitti2012/manifest.parquet")
    assert sorted(manifest["id"]) == [f"kitti2012-{i:06d}_10" for i in range(4)]


# ----------------------------------------------------------------------------- Middlebury


def _scene_files(folder: Path) -> None:
    rng = np.random.default_rng(2)
    folder.mkdir(parents=True, exist_ok=True)
    for view in ("im0.png", "im1.png"):
        Image.fromarray(rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)).save(folder / view)
    write_pfm(folder / "disp0.pfm", rng.uniform(1, 9, (6, 9)).astype(np.float32))
    (folder / "calib.txt").write_text("width=9\nheight=6\nndisp=12\nvmin=1\nvmax=9\n")


def test_middlebury_zip_without_its_scene_folder_is_used_and_a_rerun_does_not_clash(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _scene_files(tmp_path / "loose")
    downloads = project / "downloads" / "middlebury2014"
    _zip_tree(downloads / "Piano-perfect.zip", tmp_path / "loose")  # files at the zip's top
    _params(project, {"middlebury2014": {"scenes": ["Piano"], "val_fraction": 0}})
    for _ in range(2):  # the second build reuses the extracted folder: no FileExistsError
        rc, err = _download("middlebury2014", capsys)
        assert rc == 0, err
    assert sorted(p.name for p in (downloads / "Piano-perfect").iterdir()) == [
        "calib.txt", "disp0.pfm", "im0.png", "im1.png"
    ]  # fmt: skip
    assert sorted(p.name for p in downloads.iterdir()) == ["Piano-perfect", "Piano-perfect.zip"]


def test_middlebury_missing_scene_message_names_the_scenes_key(
    project: Path, mirror: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = mirror  # serves nothing: every scene is a 404
    _params(project, {"mb": {"source": "middlebury2014", "url": url}})
    err = _fails_cleanly(project, "mb", capsys)
    assert "HTTP 404" in err and "Adirondack-perfect.zip" in err
    assert "fetches all 23 (scenes: is empty)" in err
    assert "under datasets.mb, e.g. scenes: [Motorcycle, Piano]" in err


# ----------------------------------------------------------------------------- CIFAR-10 tree


def _cifar_tree(folder: Path) -> dict[str, str]:
    """torchvision's extracted ``cifar-10-batches-py/`` with tiny batches; their SHA-256s."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        labels = [(i + j) % 10 for j in range(10)]
        data = rng.integers(0, 256, (10, 3072), dtype=np.uint8)
        batch = {"data": data, "labels": labels, "batch_label": name}
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{c}" for c in range(10)], "num_cases_per_batch": 10}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return {f.name: _sha(f) for f in folder.iterdir()}


@pytest.mark.slow  # torchvision
def test_extracted_cifar10_tree_is_verified_and_a_truncated_batch_is_named_and_set_aside(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = project / "downloads" / "cifar10" / "cifar-10-batches-py"
    checksums = _cifar_tree(tree)
    _params(project, {"cifar10": {"checksums": checksums}})
    rc, err = _download("cifar10", capsys)
    assert rc == 0, err
    assert np.load(project / "data" / "cifar10" / "images.npy").shape == (60, 32, 32, 3)

    (project / "data" / "cifar10").rename(project / "data" / "cifar10-good")
    bad = tree / "data_batch_3"
    bad.write_bytes(bad.read_bytes()[:1000])
    err = _fails_cleanly(project, "cifar10", capsys)
    assert f"{bad}: its SHA-256 is {_sha(tree / 'data_batch_3.corrupt')}" in err
    assert f"datasets.cifar10.checksums states {checksums['data_batch_3']}" in err
    assert f"moved to {tree / 'data_batch_3.corrupt'}" in err
    assert (
        "the next `dvc repro` extracts cifar-10-python.tar.gz again (downloads it again from "
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz unless "
        f"{tree.parent / 'cifar-10-python.tar.gz'} is there)"
    ) in err


@pytest.mark.slow  # torchvision
def test_extracted_cifar10_tree_without_stated_checksums_is_held_to_torchvisions_md5(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tree = project / "downloads" / "cifar10" / "cifar-10-batches-py"
    _cifar_tree(tree)  # not the real batches: torchvision's MD5s cannot match
    _params(project, {"cifar10": {}})
    err = _fails_cleanly(project, "cifar10", capsys)
    assert (
        f"{tree / 'data_batch_1'}: its MD5 is not torchvision's c99cafc152244af753f735de768cd75f"
        in err
    )
    assert (tree / "data_batch_1.corrupt").is_file()


def test_checksums_for_a_file_the_source_does_not_have_are_refused(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _params(project, {"kitti2015": {"checksums": {"data_stereo_flow.zip": "ab" * 32}}})
    err = _fails_cleanly(project, "kitti2015", capsys)
    assert "datasets.kitti2015.checksums: ['data_stereo_flow.zip'] is not a file of source" in err
    assert "its files: data_scene_flow.zip" in err


# ----------------------------------------------------------------------------- Sketchy


def _sketchy_7z(archive: Path, tmp: Path) -> Path:
    """A tiny ``rendered_256x256.7z`` in the official layout (256x256/{photo,sketch}/tx_*/)."""
    import py7zr

    from simlearn.data.synthetic_sketch import generate_sketch_set

    generate_sketch_set(tmp / "gen", seed=0, photos_per_class=3, sketches_per_photo=2, size=32)
    root = next(p for p in (tmp / "gen").rglob("256x256") if p.is_dir())
    for png in sorted((root / "photo").rglob("*.png")):  # Sketchy's photos are JPEGs
        with Image.open(png) as img:
            img.convert("RGB").save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    archive.parent.mkdir(parents=True, exist_ok=True)
    with py7zr.SevenZipFile(archive, "w") as z:
        z.writeall(root, "256x256")
    return root


def test_sketchy_7z_from_a_url_downloads_extracts_and_validates(
    project: Path, mirror: tuple[Path, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, url = mirror
    _sketchy_7z(folder / "rendered_256x256.7z", tmp_path)
    _params(project, {"sketchy": {"url": url, "val_fraction": 0.2, "test_fraction": 0.2}})
    rc, err = _download("sketchy", capsys)
    assert rc == 0, err
    extracted = project / "downloads" / "sketchy" / "rendered_256x256" / "256x256"
    assert (extracted / "photo" / "tx_000000000000").is_dir()
    assert validate_stage.main(["sketchy", "data/sketchy", "reports/validation"]) == 0


def test_sketchy_not_placed_is_one_message_naming_url_and_the_folder(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _params(project, {"sketchy": {}})
    err = _fails_cleanly(project, "sketchy", capsys)
    downloads = project / "downloads" / "sketchy"
    assert f"place the .7z at {downloads / 'rendered_256x256.7z'}" in err
    assert "set url: <a base URL that serves rendered_256x256.7z> under datasets.sketchy" in err


def test_truncated_sketchy_photo_is_named(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = project / "downloads" / "sketchy" / "rendered_256x256.7z"
    _sketchy_7z(archive, tmp_path)
    _params(project, {"sketchy": {}})  # the .7z placed by hand: extracted without any url
    rc, err = _download("sketchy", capsys)
    assert rc == 0, err
    photos = project / "downloads/sketchy/rendered_256x256/256x256/photo/tx_000000000000"
    bad = sorted(photos.rglob("*.jpg"))[4]
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # header whole, pixels cut
    (project / "data" / "sketchy").rename(project / "data" / "sketchy-good")
    err = _fails_cleanly(project, "sketchy", capsys)
    assert str(bad) in err and "truncated" in err


def test_a_7z_that_is_not_sketchy_is_set_aside_with_what_it_held(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import py7zr

    archive = project / "downloads" / "sketchy" / "rendered_256x256.7z"
    archive.parent.mkdir(parents=True)
    with py7zr.SevenZipFile(archive, "w") as z:
        z.writestr(b"hello", "photos/readme.txt")
    _params(project, {"sketchy": {}})
    err = _fails_cleanly(project, "sketchy", capsys)
    assert "256x256/photo/tx_000000000000/ and 256x256/sketch/tx_000000000000/" in err
    assert "it holds photos/ (readme.txt)" in err
    assert "needs a good copy of rendered_256x256.7z placed again" in err
    assert (archive.parent / "rendered_256x256.7z.corrupt").is_file() and not archive.exists()


def test_unsafe_7z_member_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    import py7zr

    from simlearn.data.extract import UnsafeArchiveError, safe_extract

    archive = tmp_path / "evil.7z"
    with py7zr.SevenZipFile(archive, "w") as z:
        z._writestr(b"x", "../escape.txt")  # what an attacker writes: past py7zr's own check
    with pytest.raises(UnsafeArchiveError, match="has a '..' component"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "out").exists()


def test_7z_extraction_gives_the_same_bytes_as_were_packed(tmp_path: Path) -> None:
    import py7zr

    from simlearn.data.extract import safe_extract

    rng = np.random.default_rng(4)
    files = {f"a/b/{i}.bin": rng.bytes(int(rng.integers(0, 3000))) for i in range(5)}
    files["a/empty.txt"] = b""
    archive = tmp_path / "x.7z"
    with py7zr.SevenZipFile(archive, "w") as z:
        for name, data in files.items():
            z.writef(io.BytesIO(data), name)
    written = safe_extract(archive, tmp_path / "out")
    assert {p.relative_to(tmp_path / "out").as_posix() for p in written} == set(files)
    for name, data in files.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def _processes_in(folder: Path) -> list[int]:
    """PIDs of the processes whose working folder is ``folder`` (Linux /proc), this one aside."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            if (proc / "cwd").resolve() == folder.resolve():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.slow  # two stage processes
def test_a_killed_download_leaves_nothing_behind_after_the_next_run(project: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(download_stage.__file__).resolve().parents[1]
    _params(project, {"sk": {"source": "sketch_synthetic", "photos_per_class": 20}})
    cmd = [sys.executable, str(root / "stages" / "download.py"), "sk", "data/sk"]
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    child = subprocess.Popen(cmd, cwd=project, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list((project / "data").glob(".sk.partial-*")):
        time.sleep(0.05)  # until the build has begun writing
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait()
    time.sleep(1.0)  # the kernel's SIGKILL of the orphaned pool workers is immediate
    assert _processes_in(project) == [], "pool workers outlived the killed download"
    subprocess.run(cmd, cwd=project, env=env, check=True, capture_output=True)
    assert sorted(p.name for p in (project / "data").iterdir()) == ["keep.txt", "sk"]
