"""CUB-200-2011, Cars196 and SOP: tiny archives in each official layout, served over loopback HTTP.

Each tiny set has 8 classes (SOP: its own two files); the class split rule is "the first half of
the official class ids", so classes 1-4 train and 5-8 test here, as 1-100 / 101-200 (CUB) and
1-98 / 99-196 (Cars196) do on the real sets (checked as a pure function on the real counts).
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw
from scipy.io import savemat
from tests.data.mirror import serve

from simlearn.data import sources
from simlearn.data.benchmarks import (
    BenchmarkLayoutError,
    cars_table,
    cub_table,
    first_half_split,
    sop_table,
)
from simlearn.data.sources import DatasetConfig, build_dataset

N_CLASSES, PER_CLASS = 8, 3
TRAIN_IDS, TEST_IDS = range(1, 5), range(5, 9)


# ----------------------------------------------------------------------------- tiny archives


def _jpeg(path: Path, seed: int) -> None:
    """A small procedurally drawn JPEG: a coloured ellipse and bar on a coloured ground."""
    rng = np.random.default_rng(seed)
    w, h = (int(v) for v in rng.integers(20, 40, size=2))
    colours = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(3)]
    image = Image.new("RGB", (w, h), colours[0])
    draw = ImageDraw.Draw(image)
    draw.ellipse((2, 2, w - 3, h - 3), fill=colours[1])
    draw.rectangle((0, h // 3, w // 2, h // 2), fill=colours[2])
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="JPEG", quality=90)


def _cub_names() -> list[str]:
    return [f"{c:03d}.Bird_{c}" for c in range(1, N_CLASSES + 1)]


def _cub_tree(parent: Path) -> Path:
    """``parent/CUB_200_2011/`` with classes.txt, images.txt, image_class_labels.txt, images/."""
    root = parent / "CUB_200_2011"
    names = _cub_names()
    images, labels = [], []
    image_id = 0
    for c, name in enumerate(names, start=1):
        for k in range(PER_CLASS):
            image_id += 1
            relative = f"{name}/{name.split('.')[1]}_{k:04d}_{image_id}.jpg"
            _jpeg(root / "images" / relative, image_id)
            images.append(f"{image_id} {relative}")
            labels.append(f"{image_id} {c}")
    (root / "classes.txt").write_text("".join(f"{c} {n}\n" for c, n in enumerate(names, 1)))
    (root / "images.txt").write_text("\n".join(images) + "\n")
    (root / "image_class_labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train_test_split.txt").write_text(  # the classification split: must be ignored
        "".join(f"{i} {i % 2}\n" for i in range(1, image_id + 1))
    )
    return root


def _cars_names() -> list[str]:
    return [f"Make{c} Model {2000 + c}" for c in range(1, N_CLASSES + 1)]


def _cars_annos(path: Path, records: list[tuple[str, int, int]], names: list[str]) -> None:
    """``cars_annos.mat`` as Krause et al. ship it: a 1xN struct array and a 1xC cell array."""
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annotations = np.zeros((1, len(records)), dtype=[(f, object) for f in fields])
    for i, (relative, cid, test) in enumerate(records):
        annotations[0, i] = (
            relative, *(np.array([[v]], dtype=np.uint16) for v in (1, 2, 18, 15)),
            np.array([[cid]], dtype=np.uint8), np.array([[test]], dtype=np.uint8),
        )  # fmt: skip
    class_names = np.empty((1, len(names)), dtype=object)
    class_names[0, :] = names
    savemat(path, {"annotations": annotations, "class_names": class_names})


def _cars_tree(root: Path) -> list[tuple[str, int, int]]:
    """``root/car_ims/000001.jpg ...`` and ``root/cars_annos.mat``; returns the records."""
    records = []
    for i in range(N_CLASSES * PER_CLASS):
        cid = i % N_CLASSES + 1  # classes interleaved, as in the real file's image order
        relative = f"car_ims/{i + 1:06d}.jpg"
        _jpeg(root / relative, 100 + i)
        records.append((relative, cid, i % 2))  # the mat's own test flag, ignored
    root.mkdir(parents=True, exist_ok=True)
    _cars_annos(root / "cars_annos.mat", records, _cars_names())
    return records


SOP_SUPER = {1: "bicycle_final", 2: "chair_final"}


def _sop_tree(parent: Path) -> Path:
    """``parent/Stanford_Online_Products/`` with Ebay_train.txt (classes 1-4), Ebay_test.txt
    (classes 5-8), 2 or 3 images per class in ``<super>_final/`` folders."""
    root = parent / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path\n"
    image_id = 0
    for filename, ids in (("Ebay_train.txt", TRAIN_IDS), ("Ebay_test.txt", TEST_IDS)):
        lines = [header]
        for cid in ids:
            super_id = 1 + cid % 2
            for k in range(2 + cid % 2):
                image_id += 1
                relative = f"{SOP_SUPER[super_id]}/{111085122800 + cid}_{k}.JPG"
                _jpeg(root / relative, 200 + image_id)
                lines.append(f"{image_id} {cid} {super_id} {relative}\n")
        (root / filename).write_text("".join(lines))
    return root


def _sop_counts() -> dict[str, int]:
    return {"train": sum(2 + c % 2 for c in TRAIN_IDS), "test": sum(2 + c % 2 for c in TEST_IDS)}


def _tgz(archive: Path, parent: Path, *tops: str) -> str:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        for top in tops:
            tar.add(parent / top, arcname=top)
    return hashlib.sha256(archive.read_bytes()).hexdigest()


def _zip(archive: Path, parent: Path, top: str) -> str:
    archive.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted((parent / top).rglob("*")):
            z.write(f, f.relative_to(parent).as_posix())
    return hashlib.sha256(archive.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- protocol


def test_first_half_split_on_the_real_class_counts():
    cub = first_half_split(np.arange(1, 201), 200)
    assert list(np.flatnonzero(cub == "train") + 1) == list(range(1, 101))
    assert list(np.flatnonzero(cub == "test") + 1) == list(range(101, 201))
    cars = first_half_split(np.arange(1, 197), 196)
    assert list(np.flatnonzero(cars == "train") + 1) == list(range(1, 99))
    assert list(np.flatnonzero(cars == "test") + 1) == list(range(99, 197))
    assert list(first_half_split([8, 1, 4, 5], 8)) == ["test", "train", "train", "test"]
    with pytest.raises(ValueError, match=r"class ids must lie in 1..8, got 0..9"):
        first_half_split([0, 9], 8)


# ----------------------------------------------------------------------------- parsers


def _by_split(table: pd.DataFrame) -> dict[str, set[str]]:
    return {s: set(g["class_name"]) for s, g in table.groupby("split")}


def test_cub_table_follows_the_official_files(tmp_path):
    root = _cub_tree(tmp_path)
    table, class_names = cub_table(root)
    names = _cub_names()
    assert class_names == names
    assert list(table.columns) == ["path", "class_name", "split", "is_query", "is_gallery"]
    assert len(table) == N_CLASSES * PER_CLASS
    assert _by_split(table) == {"train": set(names[:4]), "test": set(names[4:])}
    assert table["is_query"].all() and table["is_gallery"].all()
    first = Path(table["path"].iloc[0])
    assert first.is_absolute() and first == root / "images" / "001.Bird_1" / "Bird_1_0000_1.jpg"


def test_cars_table_splits_by_class_and_ignores_the_mat_test_flag(tmp_path):
    records = _cars_tree(tmp_path)
    table, class_names = cars_table(tmp_path)
    names = _cars_names()
    assert class_names == names
    assert len(table) == len(records)
    assert _by_split(table) == {"train": set(names[:4]), "test": set(names[4:])}
    for row, (relative, cid, _) in zip(table.itertuples(), records, strict=True):
        assert row.path == str(tmp_path / relative) and row.class_name == names[cid - 1]


def test_sop_table_takes_the_split_from_the_two_files(tmp_path):
    root = _sop_tree(tmp_path)
    table, class_names = sop_table(root)
    assert class_names == [str(c) for c in range(1, 9)]
    assert table["split"].value_counts().to_dict() == _sop_counts()
    assert _by_split(table) == {"train": {"1", "2", "3", "4"}, "test": {"5", "6", "7", "8"}}
    assert table["path"].iloc[0] == str(root / "chair_final" / "111085122801_0.JPG")


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("filename", "number", "text", "message"),
    [
        (
            "image_class_labels.txt", 5, "5 9",
            r"image_class_labels.txt, line 5: class id 9 is out of range 1..8",
        ),
        ("image_class_labels.txt", 2, "2", r"image_class_labels.txt, line 2: expected 2 fields"),
        (
            "image_class_labels.txt", 3, "3 x",
            r"image_class_labels.txt, line 3: class id 'x' is not an integer",
        ),
        ("image_class_labels.txt", 4, "99 1", r"line 4: image id 99 is not in images.txt"),
        ("images.txt", 7, "7 001.Bird_1/gone.jpg", r"images.txt, line 7: names '001.Bird_1/gone"),
        ("images.txt", 6, "6 ../../escape.jpg", r"images.txt, line 6: image path .* leaves"),
        ("classes.txt", 2, "1 002.Bird_2", r"classes.txt, line 2: class id 1 is listed twice"),
    ],
)  # fmt: skip
def test_cub_layout_error_names_file_and_line(tmp_path, filename, number, text, message):
    root = _cub_tree(tmp_path)
    _replace_line(root / filename, number, text)
    with pytest.raises(BenchmarkLayoutError, match=message) as err:
        cub_table(root)
    assert str(root / filename) in str(err.value)


def test_cub_missing_index_file_is_named(tmp_path):
    root = _cub_tree(tmp_path)
    (root / "image_class_labels.txt").unlink()
    with pytest.raises(BenchmarkLayoutError, match=r"image_class_labels.txt: missing; not the"):
        cub_table(root)


def test_cars_layout_errors_name_the_record(tmp_path):
    records = _cars_tree(tmp_path)
    bad = list(records)
    bad[6] = (bad[6][0], 9, 0)
    _cars_annos(tmp_path / "cars_annos.mat", bad, _cars_names())
    with pytest.raises(BenchmarkLayoutError, match=r"annotations\(7\): class 9 is out of range"):
        cars_table(tmp_path)
    (tmp_path / records[2][0]).unlink()
    _cars_annos(tmp_path / "cars_annos.mat", records, _cars_names())
    with pytest.raises(BenchmarkLayoutError, match=r"annotations\(3\): names 'car_ims/000003"):
        cars_table(tmp_path)
    (tmp_path / "cars_annos.mat").write_bytes(b"not a mat file")
    with pytest.raises(BenchmarkLayoutError, match=r"cars_annos.mat: not a readable MATLAB"):
        cars_table(tmp_path)


def test_sop_layout_errors_name_file_and_line(tmp_path):
    root = _sop_tree(tmp_path)
    test_txt = root / "Ebay_test.txt"
    original = test_txt.read_text()
    _replace_line(test_txt, 3, "99 4 1 bicycle_final/111085122804_0.JPG")  # a train class
    with pytest.raises(BenchmarkLayoutError, match=r"Ebay_test.txt, line 3: class id 4 is also"):
        sop_table(root)
    test_txt.write_text(original.replace("image_id class_id", "image class_id"))
    with pytest.raises(BenchmarkLayoutError, match=r"Ebay_test.txt, line 1: expected the header"):
        sop_table(root)
    test_txt.write_text(original + "999 8 1 bicycle_final/missing.JPG\n")
    with pytest.raises(BenchmarkLayoutError, match=r"Ebay_test.txt, line \d+: names 'bicycle"):
        sop_table(root)


# ----------------------------------------------------------------------------- download + validate


@pytest.fixture(scope="module")
def mirror(tmp_path_factory) -> Iterator[tuple[Path, str]]:
    """A loopback HTTP server over a folder: (folder, base URL)."""
    folder = tmp_path_factory.mktemp("mirror")
    with serve(folder) as url:
        yield folder, url


def _publish(mirror: tuple[Path, str], source: str, tmp: Path) -> tuple[str, dict[str, str]]:
    """Write the tiny official files of ``source`` under the mirror: (base URL, SHA-256s)."""
    folder, url = mirror
    base = folder / source
    raw = tmp / "raw"
    if source == "cub200":
        _cub_tree(raw)
        (raw / "attributes.txt").write_text("1 has_bill_shape::curved\n")  # the real one's stray
        archive = base / "CUB_200_2011.tgz"
        hashes = {"CUB_200_2011.tgz": _tgz(archive, raw, "CUB_200_2011", "attributes.txt")}
    elif source == "cars196":
        _cars_tree(raw)
        hashes = {"car_ims.tgz": _tgz(base / "car_ims.tgz", raw, "car_ims")}
        (base / "cars_annos.mat").write_bytes((raw / "cars_annos.mat").read_bytes())
        hashes["cars_annos.mat"] = hashlib.sha256((raw / "cars_annos.mat").read_bytes()).hexdigest()
    else:
        _sop_tree(raw)
        hashes = {
            "Stanford_Online_Products.zip": _zip(
                base / "Stanford_Online_Products.zip", raw, "Stanford_Online_Products"
            )
        }
    return url + source + "/", hashes


EXPECTED = {  # source -> (train class names, test class names, rows per split before val)
    "cub200": (set(_cub_names()[:4]), set(_cub_names()[4:]), {"train": 12, "test": 12}),
    "cars196": (set(_cars_names()[:4]), set(_cars_names()[4:]), {"train": 12, "test": 12}),
    "sop": ({"1", "2", "3", "4"}, {"5", "6", "7", "8"}, _sop_counts()),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def built(request, mirror, tmp_path_factory):
    """Each benchmark built through build_dataset from its tiny archive on the loopback server."""
    source = request.param
    tmp = tmp_path_factory.mktemp(source)
    url, hashes = _publish(mirror, source, tmp)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sources.ARCHIVES, source, hashes)  # the tiny archives' own hashes
        cfg = DatasetConfig(source=source, url=url, image_size=32, val_fraction=0.34, seed=3)
        downloads = tmp / "downloads" / source
        manifest = build_dataset(source, cfg, tmp / "data" / source, downloads)
        yield source, cfg, tmp, downloads, manifest


def test_download_puts_the_official_class_halves_in_train_and_test(built):
    source, _, tmp, _, manifest = built
    train_names, test_names, counts = EXPECTED[source]
    by_split = _by_split(manifest)
    assert by_split["test"] == test_names
    assert by_split["train"] | by_split["val"] == train_names  # val is carved from train classes
    assert by_split["val"] <= train_names and not by_split["val"] & test_names
    assert len(manifest) == counts["train"] + counts["test"]
    assert (manifest["split"] == "test").sum() == counts["test"]
    assert 0 < (manifest["split"] == "val").sum() < counts["train"]
    assert manifest["is_query"].all() and manifest["is_gallery"].all()
    meta = json.loads((tmp / "data" / source / "meta.json").read_text())
    assert meta["kind"] == "files" and meta["split_by"] == "official"
    assert meta["num_classes"] == 8 and meta["empty_classes"] == []
    train_labels = sorted(meta["class_names"].index(n) for n in train_names)
    assert sorted(meta["train_classes"]) == train_labels
    assert sorted(meta["test_classes"]) == sorted(set(range(8)) - set(train_labels))
    # labels follow the official class-id order
    names = meta["class_names"]
    assert names == (_cub_names() if source == "cub200" else _cars_names()
                     if source == "cars196" else [str(c) for c in range(1, 9)])  # fmt: skip
    assert (manifest["class_name"] == [names[i] for i in manifest["label"]]).all()


def test_downloaded_benchmark_passes_the_files_suite(built):
    from simlearn.validation import validate_dataset

    source, _, tmp, _, _ = built
    report = validate_dataset(tmp / "data" / source, workers=2)
    assert report.kind == "files"
    assert report.success, [(f.target, f.description, f.observed) for f in report.failures]


def test_an_extracted_tree_is_reused_without_any_download(built, tmp_path):
    source, cfg, _, downloads, manifest = built
    offline = DatasetConfig(source=source, url=(tmp_path / "empty").as_uri(), image_size=32,
                            val_fraction=0.34, seed=3)  # fmt: skip
    for archive in downloads.glob("*.*"):  # only the extracted tree (and Cars' .mat) remain
        if archive.suffix in (".tgz", ".zip"):
            archive.unlink()
    again = build_dataset(source, offline, tmp_path / "again", downloads)
    pd.testing.assert_frame_equal(again, manifest)


def test_unreachable_archive_says_where_to_put_it(tmp_path):
    from simlearn.data.fetch import SourceUnreachableError

    downloads = tmp_path / "downloads" / "cub200"
    cfg = DatasetConfig(source="cub200", url=(tmp_path / "empty").as_uri())
    with pytest.raises(SourceUnreachableError) as err:
        build_dataset("cub", cfg, tmp_path / "out", downloads)
    assert str(downloads / "CUB_200_2011.tgz") in str(err.value)  # the archive, placed by hand
    assert str(downloads / "CUB_200_2011" / "images.txt") in str(err.value)  # or extracted
    assert not (tmp_path / "out").exists()


def test_a_corrupt_index_line_stops_the_build_naming_file_and_line(tmp_path):
    downloads = tmp_path / "downloads" / "cub200"
    root = _cub_tree(downloads)
    _replace_line(root / "image_class_labels.txt", 13, "13 0")
    cfg = DatasetConfig(source="cub200", image_size=32)
    with pytest.raises(BenchmarkLayoutError) as err:
        build_dataset("cub", cfg, tmp_path / "out", downloads)
    assert str(err.value).startswith(f"{root / 'image_class_labels.txt'}, line 13: class id 0")
    assert not (tmp_path / "out").exists()
