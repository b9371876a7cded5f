"""The files suite (kind "files": images on disk plus a manifest): a valid tiny dataset passes;
each fault the tolerant download stage records fails the expectation meant to catch it, naming
the dataset file (path) and the user's original (source_path).

Rows of the tiny dataset (conftest.make_files_dataset), row = 4 * label + j:
ant 0-3 and bee 4-7 (train, train, train, val), cat 8-11 and dog 12-15 (test); split_by class.
Row 1 is a greyscale PNG, row 2 a CMYK JPEG, row 3 an RGBA PNG; other even rows are JPEGs.
"""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFile

from simlearn.validation import ValidationReport, validate_dataset
from simlearn.validation.files import inspect_file, inspect_files

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
OF_TYPE = "expect_column_values_to_be_of_type"
PAIR_EQUAL = "expect_column_pair_values_to_be_equal"
COLUMNS = "expect_table_columns_to_match_set"
UNIQUE = "expect_column_values_to_be_unique"

ANT, CAT = 0, 2  # labels
TRAIN_JPEG, TRAIN_PNG, VAL_ROW = 0, 5, 3
TEST_JPEG, TEST_PNG = 8, 9
CMYK_ROW = 2


def result(report: ValidationReport, expectation_type: str, target: str):
    (match,) = [
        r for r in report.results if r.expectation_type == expectation_type and r.target == target
    ]
    return match


def refresh(data_dir, manifest: pd.DataFrame, row: int, file_facts) -> None:
    """Record row's file as the download stage would have (header, bytes, sha256)."""
    for key, value in file_facts(data_dir / manifest.loc[row, "path"]).items():
        manifest.loc[row, key] = value


def truncate(data_dir, manifest: pd.DataFrame, row: int, cut: int) -> None:
    """Cut `cut` bytes off the end of row's original and of its copy in the dataset."""
    for path in (manifest.loc[row, "source_path"], data_dir / manifest.loc[row, "path"]):
        with open(path, "r+b") as f:
            f.truncate(f.seek(0, io.SEEK_END) - cut)


def set_meta(data_dir, ds, **changes) -> None:
    meta = ds.read_meta(data_dir)
    meta.update(changes)
    ds.write_meta(data_dir, meta)


def split_counts(manifest: pd.DataFrame) -> dict[str, int]:
    counts = manifest["split"].value_counts()
    return {s: int(counts.get(s, 0)) for s in ("train", "val", "test")}


def test_valid_dataset_passes(files_dir):
    report = validate_dataset(files_dir)
    assert report.success, report.failures_text()
    assert (report.dataset, report.kind) == ("tiny-files", "files")
    assert {r.table for r in report.results} == {
        "manifest",
        "samples",
        "classes",
        "splits",
        "dataset",
    }
    assert all(r.error is None for r in report.results)
    # the file checks ran on all 16 rows: every file was found and decoded
    for target in ("samples.file_exists", "samples.decode_error", "samples.copies_in_other_splits"):
        assert result(report, IN_SET, target).observed == "0 of 16 rows unexpected (0.0%)"


@pytest.mark.parametrize(("row", "fmt"), [(TEST_JPEG, "JPEG"), (TEST_PNG, "PNG")])
def test_truncated_image_is_named(files_dir, ds, failed, file_facts, row, fmt):
    manifest = ds.read_manifest(files_dir)
    truncate(files_dir, manifest, row, cut=30)
    refresh(files_dir, manifest, row, file_facts)  # the header still reads: only decoding fails
    assert manifest.loc[row, "format"] == fmt and manifest.loc[row, "height"] > 0
    ds.write_manifest(files_dir, manifest)

    report = validate_dataset(files_dir)
    assert failed(report) == {(IN_SET, "samples.decode_error")}
    (example,) = result(report, IN_SET, "samples.decode_error").examples
    assert example["id"] == manifest.loc[row, "id"]
    assert example["path"] == manifest.loc[row, "path"]
    assert example["source_path"] == manifest.loc[row, "source_path"]
    assert example["decode_error"].startswith("OSError: image file is truncated")
    text = report.failures_text()
    assert manifest.loc[row, "source_path"] in text and manifest.loc[row, "path"] in text


def test_truncated_image_is_caught_even_when_pil_is_told_to_load_truncated_files(files_dir, ds):
    manifest = ds.read_manifest(files_dir)
    truncate(files_dir, manifest, TEST_JPEG, cut=30)
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # as a lenient loader elsewhere in the process might
    try:
        facts = inspect_file(files_dir / manifest.loc[TEST_JPEG, "path"])
        report = validate_dataset(files_dir)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored after the suite
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    assert facts["decode_error"] == ""  # inspect_file alone follows the process-wide flag
    assert not result(report, IN_SET, "samples.decode_error").success


def test_unreadable_file_recorded_by_the_download(files_dir, ds, failed, file_facts):
    manifest = ds.read_manifest(files_dir)
    for path in (
        manifest.loc[TRAIN_PNG, "source_path"],
        files_dir / manifest.loc[TRAIN_PNG, "path"],
    ):
        with open(path, "wb") as f:
            f.write(b"this is not an image")
    refresh(files_dir, manifest, TRAIN_PNG, file_facts)
    assert manifest.loc[TRAIN_PNG, "height"] == -1 and manifest.loc[TRAIN_PNG, "mode"] == ""
    ds.write_manifest(files_dir, manifest)
    set_meta(files_dir, ds, unreadable=1)

    report = validate_dataset(files_dir)
    assert failed(report) == {(BETWEEN, "samples.height"), (IN_SET, "samples.decode_error")}
    for target in ("samples.height", "samples.decode_error"):
        (example,) = result(
            report, BETWEEN if target.endswith("height") else IN_SET, target
        ).examples
        assert example["source_path"].endswith("/bee/1.png")
        assert example["path"] == "images/0001/image_folder-00005.png"
    (example,) = result(report, IN_SET, "samples.decode_error").examples
    assert example["decode_error"].startswith("UnidentifiedImageError: cannot identify image")


def test_missing_file(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    (files_dir / manifest.loc[TEST_JPEG, "path"]).unlink()

    report = validate_dataset(files_dir)
    # the recomputed facts are null for a missing file: only its existence is reported
    assert failed(report) == {(IN_SET, "samples.file_exists")}
    (example,) = result(report, IN_SET, "samples.file_exists").examples
    assert example["path"] == manifest.loc[TEST_JPEG, "path"]


def test_empty_class(files_dir, ds, failed):
    """An empty class folder: listed in class_names and empty_classes, no row."""
    set_meta(
        files_dir,
        ds,
        class_names=["ant", "bee", "cat", "dog", "eel"],
        num_classes=5,
        empty_classes=["eel"],
        test_classes=[2, 3, 4],
    )
    report = validate_dataset(files_dir)
    assert failed(report) == {(BETWEEN, "classes.images")}
    assert result(report, BETWEEN, "classes.images").examples == [
        {"label": 4, "class_name": "eel", "images": 0}
    ]
    assert "eel" in report.failures_text()


def test_empty_classes_in_meta_must_be_empty_and_known(files_dir, ds, failed):
    set_meta(files_dir, ds, empty_classes=["ant", "yak"])
    report = validate_dataset(files_dir)
    assert failed(report) == {
        (IN_SET, "classes.empty_listed_in_meta"),
        (IN_SET, "dataset.unknown_empty_classes"),
    }
    assert [
        e["class_name"] for e in result(report, IN_SET, "classes.empty_listed_in_meta").examples
    ] == ["ant"]
    assert (
        result(report, IN_SET, "dataset.unknown_empty_classes").examples[0]["unknown_empty_classes"]
        == "yak"
    )


def _single_image_ant(data_dir, ds) -> pd.DataFrame:
    """Drops ant's images but row 0 (train): a class with a single image."""
    manifest = ds.read_manifest(data_dir)
    manifest = manifest.drop(index=[1, 2, 3]).reset_index(drop=True)
    ds.write_manifest(data_dir, manifest)
    set_meta(data_dir, ds, split_counts=split_counts(manifest))
    return manifest


@pytest.mark.parametrize("split_by", ["class", "official"])
def test_single_image_class_under_class_split(files_dir, ds, failed, split_by):
    manifest = _single_image_ant(files_dir, ds)
    set_meta(files_dir, ds, split_by=split_by)

    report = validate_dataset(files_dir)
    assert failed(report) == {(BETWEEN, "samples.class_images")}
    failure = result(report, BETWEEN, "samples.class_images")
    assert f"split_by {split_by}" in failure.description
    (example,) = failure.examples
    assert example["path"] == manifest.loc[0, "path"] == "images/0000/image_folder-00000.jpg"
    assert example["source_path"].endswith("/ant/0.jpg")
    assert example["class_images"] == 1


def test_single_image_class_under_image_split_passes(files_dir, ds):
    _single_image_ant(files_dir, ds)
    set_meta(files_dir, ds, split_by="image")
    report = validate_dataset(files_dir)
    assert report.success, report.failures_text()


def test_test_class_with_one_test_image(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    manifest = manifest.drop(index=[9, 10, 11]).reset_index(drop=True)  # cat keeps row 8
    ds.write_manifest(files_dir, manifest)
    set_meta(files_dir, ds, split_by="image", split_counts=split_counts(manifest))

    report = validate_dataset(files_dir)
    assert failed(report) == {(BETWEEN, "samples.test_class_images")}
    (example,) = result(report, BETWEEN, "samples.test_class_images").examples
    assert example["id"] == "image_folder-00008"


@pytest.mark.parametrize("target_row", [TEST_JPEG, VAL_ROW])
def test_same_bytes_in_two_splits_names_both_files(files_dir, ds, failed, file_facts, target_row):
    manifest = ds.read_manifest(files_dir)
    source = files_dir / manifest.loc[TRAIN_JPEG, "path"]
    shutil.copyfile(source, files_dir / manifest.loc[target_row, "path"])
    shutil.copyfile(source, manifest.loc[target_row, "source_path"])
    refresh(files_dir, manifest, target_row, file_facts)
    ds.write_manifest(files_dir, manifest)

    report = validate_dataset(files_dir)
    assert failed(report) == {(IN_SET, "samples.copies_in_other_splits")}
    examples = result(report, IN_SET, "samples.copies_in_other_splits").examples
    by_id = {e["id"]: e["copies_in_other_splits"] for e in examples}
    train, other = manifest.loc[TRAIN_JPEG], manifest.loc[target_row]
    assert by_id == {
        train["id"]: f"{other['split']}: {other['path']} ({other['source_path']})",
        other["id"]: f"train: {train['path']} ({train['source_path']})",
    }
    # the text and the HTML page keep each example whole, long paths included
    text, page = report.failures_text(), report.to_html()
    for example in examples:
        assert json.dumps(example, sort_keys=True) in text
        assert example["copies_in_other_splits"] in page


def test_same_bytes_in_one_split_is_allowed(files_dir, ds, file_facts):
    manifest = ds.read_manifest(files_dir)
    row = 4  # bee, train, JPEG: the same bytes as ant's row 0, in the same split
    shutil.copyfile(
        files_dir / manifest.loc[TRAIN_JPEG, "path"], files_dir / manifest.loc[row, "path"]
    )
    refresh(files_dir, manifest, row, file_facts)
    ds.write_manifest(files_dir, manifest)
    assert validate_dataset(files_dir).success


def test_train_and_test_classes_overlap(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    manifest.loc[[1, 2], "split"] = "test"  # two ant images move to test: ant is on both sides
    ds.write_manifest(files_dir, manifest)
    set_meta(files_dir, ds, split_counts=split_counts(manifest))

    report = validate_dataset(files_dir)
    assert failed(report) == {
        (IN_SET, "classes.in_train_and_test"),
        (IN_SET, "classes.split_matches_meta"),
    }
    for target in ("classes.in_train_and_test", "classes.split_matches_meta"):
        (example,) = result(report, IN_SET, target).examples
        assert (example["label"], example["class_name"]) == (ANT, "ant")
    # under split_by image a class may have train and test images
    set_meta(files_dir, ds, split_by="image")
    assert validate_dataset(files_dir).success


def test_meta_train_and_test_classes_must_match_the_rows(files_dir, ds, failed):
    set_meta(files_dir, ds, train_classes=[0, 1, 2], test_classes=[3])
    report = validate_dataset(files_dir)
    assert failed(report) == {(IN_SET, "classes.split_matches_meta")}
    (example,) = result(report, IN_SET, "classes.split_matches_meta").examples
    assert example["class_name"] == "cat"


def test_test_split_needs_a_query_and_a_gallery_row(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    test = manifest["split"] == "test"
    manifest.loc[test, "is_query"] = False
    manifest.loc[test, "is_gallery"] = False  # train and val rows keep theirs: they do not count
    ds.write_manifest(files_dir, manifest)

    report = validate_dataset(files_dir)
    assert failed(report) == {(BETWEEN, "splits.test_queries"), (BETWEEN, "splits.test_gallery")}
    for column in ("test_queries", "test_gallery"):
        assert result(report, BETWEEN, f"splits.{column}").examples == [
            {"split": "test", column: 0}
        ]


def test_separate_queries_and_gallery_pass(files_dir, ds):
    manifest = ds.read_manifest(files_dir)
    test = manifest.index[manifest["split"] == "test"]
    manifest.loc[test[::2], "is_gallery"] = False  # half the test rows are queries only
    manifest.loc[test[1::2], "is_query"] = False
    ds.write_manifest(files_dir, manifest)
    assert validate_dataset(files_dir).success


def test_query_flags_must_be_booleans(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    manifest["is_query"] = manifest["is_query"].map({True: "yes", False: "no"})
    ds.write_manifest(files_dir, manifest)
    report = validate_dataset(files_dir)
    assert (OF_TYPE, "samples.is_query") in failed(report)


def test_label_out_of_range_and_duplicate_id(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    manifest.loc[TEST_PNG, "label"] = 7
    manifest.loc[TEST_JPEG, "id"] = manifest.loc[TRAIN_JPEG, "id"]
    ds.write_manifest(files_dir, manifest)

    report = validate_dataset(files_dir)
    assert {
        (BETWEEN, "samples.label"),
        (UNIQUE, "samples.id"),
        (IN_SET, "samples.class_name_matches_label"),
        (IN_SET, "samples.path_follows_layout"),  # the path no longer carries label and id
    } <= failed(report)
    assert (
        result(report, BETWEEN, "samples.label").examples[0]["path"]
        == manifest.loc[TEST_PNG, "path"]
    )


def test_path_outside_the_layout(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    old = files_dir / manifest.loc[TEST_JPEG, "path"]
    new = old.with_suffix(".JPG")  # the extension must be lower-cased by the download stage
    old.rename(new)
    manifest.loc[TEST_JPEG, "path"] = str(new.relative_to(files_dir))
    ds.write_manifest(files_dir, manifest)

    report = validate_dataset(files_dir)
    assert failed(report) == {(IN_SET, "samples.path_follows_layout")}


def test_stale_manifest_facts(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    manifest.loc[CMYK_ROW, "mode"] = "RGB"
    manifest.loc[TEST_PNG, "width"] += 1
    manifest.loc[TEST_JPEG, "sha256"] = "0" * 64
    manifest.loc[TRAIN_PNG, "bytes"] += 1
    ds.write_manifest(files_dir, manifest)

    report = validate_dataset(files_dir)
    assert failed(report) == {
        (PAIR_EQUAL, "samples.file_mode,mode"),
        (PAIR_EQUAL, "samples.file_width,width"),
        (PAIR_EQUAL, "samples.file_sha256,sha256"),
        (PAIR_EQUAL, "samples.file_bytes,bytes"),
    }
    (example,) = result(report, PAIR_EQUAL, "samples.file_mode,mode").examples
    assert (example["file_mode"], example["mode"]) == ("CMYK", "RGB")


def test_missing_split_and_split_counts_unlike_meta(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir)
    manifest.loc[manifest["split"] == "val", "split"] = "train"
    ds.write_manifest(files_dir, manifest)
    report = validate_dataset(files_dir)
    assert {(BETWEEN, "splits.rows"), (PAIR_EQUAL, "splits.rows,meta_rows")} == failed(report)


def test_manifest_without_a_column_still_runs_every_other_check(files_dir, ds, failed):
    manifest = ds.read_manifest(files_dir).drop(columns=["sha256"])
    ds.write_manifest(files_dir, manifest)
    report = validate_dataset(files_dir)
    assert failed(report) == {(COLUMNS, "manifest"), (IN_SET, "samples.null_fields")}
    assert all(r.error is None for r in report.results)


def test_bad_meta_values(files_dir, ds, failed):
    set_meta(files_dir, ds, resize="squash", channels=4, shape=[16, 16, 3], unreadable=2)
    report = validate_dataset(files_dir)
    assert failed(report) == {
        (IN_SET, "dataset.resize"),
        (IN_SET, "dataset.channels"),
        (PAIR_EQUAL, "dataset.meta_shape,expected_shape"),
        (PAIR_EQUAL, "dataset.meta_unreadable,unreadable_rows"),
    }


def test_meta_without_a_required_key(files_dir, ds):
    meta = ds.read_meta(files_dir)
    del meta["split_by"]
    ds.write_meta(files_dir, meta)
    with pytest.raises(ValueError, match="lacks \\['split_by'\\] needed for kind 'files'"):
        validate_dataset(files_dir)


@pytest.mark.parametrize("workers", [0, 1.5, True])
def test_bad_workers(files_dir, workers):
    with pytest.raises(ValueError, match="workers must be an int >= 1 or None"):
        validate_dataset(files_dir, workers=workers)


def test_one_thread_and_many_find_the_same_facts(files_dir, ds):
    manifest = ds.read_manifest(files_dir)
    truncate(files_dir, manifest, TEST_JPEG, cut=30)
    paths = [files_dir / p for p in manifest["path"]] + [None, files_dir / "nowhere.jpg"]
    one, many = (inspect_files(paths, workers=w) for w in (1, 8))
    assert one == many
    assert one[TEST_JPEG]["decode_error"].startswith("OSError: image file is truncated")
    assert [f["exists"] for f in one[-2:]] == [False, False]
    (row,) = [k for k, f in enumerate(one) if f["decode_error"]]
    assert row == TEST_JPEG
    assert one[CMYK_ROW]["mode"] == "CMYK" and one[TEST_PNG]["format"] == "PNG"


def _validate_stage():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "stages" / "validate.py"
    spec = importlib.util.spec_from_file_location("validate_stage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_fails_naming_the_truncated_file_in_its_json_and_html(
    files_dir, ds, file_facts, tmp_path, capsys
):
    manifest = ds.read_manifest(files_dir)
    truncate(files_dir, manifest, TEST_JPEG, cut=30)
    refresh(files_dir, manifest, TEST_JPEG, file_facts)
    ds.write_manifest(files_dir, manifest)
    params = tmp_path / "params.yaml"
    params.write_text("datasets:\n  tiny: {source: digits}\n")
    reports = tmp_path / "reports"

    stage = _validate_stage()
    assert stage.main(["tiny", str(files_dir), str(reports), "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "validate@tiny: FAILED" in err and "samples.decode_error" in err
    assert manifest.loc[TEST_JPEG, "source_path"] in err
    data = json.loads((reports / "tiny.json").read_text())
    assert data["success"] is False
    (failure,) = [r for r in data["results"] if not r["success"]]
    assert failure["target"] == "samples.decode_error"
    assert failure["examples"][0]["source_path"] == manifest.loc[TEST_JPEG, "source_path"]
    page = (reports / "tiny.html").read_text()
    assert manifest.loc[TEST_JPEG, "path"] in page and "image file is truncated" in page


def test_truncated_jpeg_through_the_real_writer(tmp_path):
    """An ImageFolder-layout folder with one truncated JPEG, built by the download stage's own
    code (build_dataset, source image_folder): that file is the only failure, named both ways."""
    from simlearn.config import DatasetConfig
    from simlearn.data.sources import build_dataset

    rng = np.random.default_rng(1)
    folder = tmp_path / "photos"
    for name in ["apple", "banana", "cherry", "date"]:
        (folder / name).mkdir(parents=True)
        for j in range(4):
            pixels = rng.integers(0, 256, size=(20 + 4 * j, 24, 3), dtype=np.uint8)
            ext = ".png" if j == 3 else ".jpg"  # mixed formats; 1.jpg of each class a JPEG
            Image.fromarray(pixels).save(folder / name / f"{j}{ext}")
    broken = folder / "cherry" / "1.jpg"
    broken.write_bytes(broken.read_bytes()[:-30])
    cfg = DatasetConfig(source="image_folder", path=str(folder), image_size=16)
    data_dir = tmp_path / "data" / "photos"
    manifest = build_dataset("photos", cfg, data_dir, tmp_path / "downloads")

    report = validate_dataset(data_dir)
    assert {(r.expectation_type, r.target) for r in report.failures} == {
        (IN_SET, "samples.decode_error")
    }
    (example,) = result(report, IN_SET, "samples.decode_error").examples
    (row,) = manifest.index[manifest["source_path"] == str(broken)]
    assert example["source_path"] == str(broken)
    assert example["path"] == manifest.loc[row, "path"]
    assert str(broken) in report.failures_text()
