"""The images suite: a valid tiny dataset passes; each corruption fails the expectation meant
to catch it (and, where the corruption is made consistent elsewhere, only that one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simlearn.validation import ValidationReport, validate_dataset

UNIQUE = "expect_column_values_to_be_unique"
IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
PAIR_EQUAL = "expect_column_pair_values_to_be_equal"
COLUMNS = "expect_table_columns_to_match_set"

# Rows of the tiny dataset (conftest): per class 6 train, 2 val, 2 test, so class 0 is rows 0..9.
TRAIN_ROW, VAL_ROW, TEST_ROW = 0, 6, 8


def result(report: ValidationReport, expectation_type: str, target: str):
    (match,) = [
        r for r in report.results if r.expectation_type == expectation_type and r.target == target
    ]
    return match


def assert_named_in_text(report: ValidationReport, expectation_type: str, target: str) -> None:
    assert f"{expectation_type} on {target}" in report.failures_text()


def test_valid_dataset_passes(images_dir):
    report = validate_dataset(images_dir)
    assert report.success, report.failures_text()
    assert (report.dataset, report.kind) == ("tiny-images", "images")
    assert {r.table for r in report.results} == {
        "manifest",
        "files",
        "samples",
        "dataset",
        "splits",
        "classes",
    }
    assert all(r.error is None for r in report.results)
    # the sample checks ran on all 30 rows
    assert result(report, UNIQUE, "samples.id").observed == "0 of 30 rows unexpected (0.0%)"
    assert report.failures_text().startswith("All ")


def test_duplicate_id(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[1, "id"] = manifest.loc[0, "id"]
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert not report.success
    assert failed(report) == {(UNIQUE, "samples.id")}
    failure = result(report, UNIQUE, "samples.id")
    assert failure.unexpected_count == 2
    assert [e["id"] for e in failure.examples] == ["img-0000", "img-0000"]
    assert_named_in_text(report, UNIQUE, "samples.id")


def test_label_out_of_range(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[TRAIN_ROW, "label"] = 3  # 3 classes: labels 0..2
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert not report.success
    # class_names[3] does not exist, so the label/class agreement fails with it
    assert failed(report) == {
        (BETWEEN, "samples.label"),
        (IN_SET, "samples.class_name_matches_label"),
    }
    assert result(report, BETWEEN, "samples.label").examples == [{"id": "img-0000", "label": 3}]
    assert_named_in_text(report, BETWEEN, "samples.label")


def test_class_missing_from_train(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    train_two = (manifest["split"] == "train") & (manifest["label"] == 2)
    manifest.loc[train_two, ["label", "class_name"]] = [0, "zero"]  # consistent relabelling
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {(BETWEEN, "classes.train_rows")}
    assert result(report, BETWEEN, "classes.train_rows").examples == [
        {"label": 2, "class_name": "two", "train_rows": 0}
    ]
    assert_named_in_text(report, BETWEEN, "classes.train_rows")


@pytest.mark.parametrize(
    ("row", "column"),
    [(TEST_ROW, "in_train_and_test"), (VAL_ROW, "in_train_and_val")],
)
def test_image_copied_from_train(images_dir, ds, failed, row, column):
    images = np.load(images_dir / "images.npy")
    images[row] = images[TRAIN_ROW]
    np.save(images_dir / "images.npy", images)
    manifest = ds.read_manifest(images_dir)  # keep the manifest consistent with the new pixels
    for key, value in ds.pixel_stats(images[row]).items():
        manifest.loc[row, key] = value
    manifest.loc[row, "sha256"] = ds.sha256_hex(images[row].tobytes())
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {(IN_SET, f"samples.{column}")}
    failure = result(report, IN_SET, f"samples.{column}")
    assert sorted(e["id"] for e in failure.examples) == ["img-0000", f"img-{row:04d}"]
    assert_named_in_text(report, IN_SET, f"samples.{column}")


def test_images_npy_row_altered(images_dir, ds, failed):
    images = np.load(images_dir / "images.npy")
    flat = images[3].reshape(-1)  # a view: swapping two different pixels keeps every statistic
    a = 0
    b = int(np.flatnonzero(flat != flat[a])[0])
    flat[a], flat[b] = flat[b], flat[a]
    np.save(images_dir / "images.npy", images)

    report = validate_dataset(images_dir)
    target = "samples.file_sha256,sha256"
    assert failed(report) == {(PAIR_EQUAL, target)}
    (example,) = result(report, PAIR_EQUAL, target).examples
    assert example["id"] == "img-0003"
    assert example["file_sha256"] == ds.sha256_hex(images[3].tobytes())
    assert example["sha256"] == ds.read_manifest(images_dir).loc[3, "sha256"]
    assert_named_in_text(report, PAIR_EQUAL, target)


def test_stale_pixel_statistics(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[5, "mean"] += 1.0
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {(IN_SET, "samples.stats_match_file")}


def test_wrong_shape_in_manifest(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[4, "height"] = 9
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {
        (PAIR_EQUAL, "samples.file_height,height"),  # recomputed from images.npy
        (IN_SET, "samples.height"),  # meta.json shape
    }
    (example,) = result(report, PAIR_EQUAL, "samples.file_height,height").examples
    assert example == {"id": "img-0004", "file_height": 8, "height": 9}
    assert_named_in_text(report, PAIR_EQUAL, "samples.file_height,height")


def test_pixel_statistic_out_of_range(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[2, "std"] = 300.0
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {(BETWEEN, "samples.std")}


def test_empty_split(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[manifest["split"] == "val", "split"] = "train"
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {(BETWEEN, "splits.rows"), (PAIR_EQUAL, "splits.rows,meta_rows")}
    assert result(report, BETWEEN, "splits.rows").examples == [{"split": "val", "rows": 0}]
    assert_named_in_text(report, BETWEEN, "splits.rows")


def test_min_rows_per_split_is_a_floor(images_dir):
    # 18 train, 6 val, 6 test rows
    assert validate_dataset(images_dir, min_rows_per_split=6).success
    report = validate_dataset(images_dir, min_rows_per_split=7)
    failure = result(report, BETWEEN, "splits.rows")
    assert not failure.success
    assert [e["split"] for e in failure.examples] == ["val", "test"]


def test_expected_splits_without_meta_split_counts(images_dir, ds):
    meta = ds.read_meta(images_dir)
    del meta["split_counts"]
    ds.write_meta(images_dir, meta)
    manifest = ds.read_manifest(images_dir)
    manifest.loc[manifest["split"] == "val", "split"] = "train"
    ds.write_manifest(images_dir, manifest)

    # without split_counts only train and the splits in use are expected ...
    assert validate_dataset(images_dir).success
    # ... unless the caller names the splits
    report = validate_dataset(images_dir, splits=["train", "val", "test"])
    assert result(report, BETWEEN, "splits.rows").examples == [{"split": "val", "rows": 0}]


def test_manifest_row_missing_for_an_array_row(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    ds.write_manifest(images_dir, manifest.drop(index=TEST_ROW))

    report = validate_dataset(images_dir)
    assert failed(report) == {
        (PAIR_EQUAL, "dataset.array_rows,manifest_rows"),
        (PAIR_EQUAL, "splits.rows,meta_rows"),  # meta says 6 test rows, 5 remain
    }


def test_missing_manifest_column_is_reported(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    ds.write_manifest(images_dir, manifest.drop(columns=["sha256"]))

    report = validate_dataset(images_dir)
    assert failed(report) == {(COLUMNS, "manifest"), (IN_SET, "samples.null_fields")}
    assert result(report, COLUMNS, "manifest").examples[0]["missing"] == ["sha256"]
    assert result(report, IN_SET, "samples.null_fields").unexpected_count == 30


def test_null_manifest_field(images_dir, ds, failed):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[7, "class_name"] = None
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {
        (IN_SET, "samples.null_fields"),
        (IN_SET, "samples.class_name_matches_label"),
    }
    assert result(report, IN_SET, "samples.null_fields").examples == [
        {"id": "img-0007", "null_fields": "class_name"}
    ]


def test_report_is_strict_json(images_dir, ds):
    manifest = ds.read_manifest(images_dir)
    manifest.loc[1, "id"] = manifest.loc[0, "id"]
    ds.write_manifest(images_dir, manifest)
    report = validate_dataset(images_dir)

    data = json.loads(json.dumps(report.to_json_dict(), allow_nan=False))
    assert data["success"] is False
    assert data["statistics"]["unsuccessful_expectations"] == 1
    assert data["statistics"]["evaluated_expectations"] == len(report.results)
    assert set(data["great_expectations"]) == {
        "manifest",
        "files",
        "samples",
        "dataset",
        "splits",
        "classes",
    }
    assert data["great_expectations"]["samples"]["success"] is False
    assert data["great_expectations"]["classes"]["success"] is True
    (failure,) = [r for r in data["results"] if not r["success"]]
    assert failure["target"] == "samples.id"


def test_image_shared_by_val_and_test(images_dir, ds, failed):
    # identical images always share one split: val and test are checked against each other too
    images = np.load(images_dir / "images.npy")
    images[TEST_ROW] = images[VAL_ROW]
    np.save(images_dir / "images.npy", images)
    manifest = ds.read_manifest(images_dir)
    for key, value in ds.pixel_stats(images[TEST_ROW]).items():
        manifest.loc[TEST_ROW, key] = value
    manifest.loc[TEST_ROW, "sha256"] = ds.sha256_hex(images[TEST_ROW].tobytes())
    ds.write_manifest(images_dir, manifest)

    report = validate_dataset(images_dir)
    assert failed(report) == {(IN_SET, "samples.in_val_and_test")}
    failure = result(report, IN_SET, "samples.in_val_and_test")
    assert failure.description == "no identical image in both val and test"
    assert sorted(e["id"] for e in failure.examples) == [
        f"img-{VAL_ROW:04d}",
        f"img-{TEST_ROW:04d}",
    ]
    assert_named_in_text(report, IN_SET, "samples.in_val_and_test")


def _truncate(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda p: _truncate(p, p.stat().st_size - 100), "truncated: the header promises more"),
        (lambda p: _truncate(p, 60), "ValueError"),  # cut inside the header
        (lambda p: p.write_bytes(b""), "EOFError"),
        (lambda p: p.write_bytes(b"not an array at all, just text"), "not a .npy array file"),
    ],
    ids=["truncated", "header_cut", "empty", "not_npy"],
)
def test_unreadable_images_npy_fails_a_named_expectation(images_dir, failed, damage, reason):
    damage(images_dir / "images.npy")
    report = validate_dataset(images_dir)  # no numpy traceback
    assert not report.success
    assert failed(report) == {(IN_SET, "files.loads")}
    failure = result(report, IN_SET, "files.loads")
    assert "images.npy loads as a numpy array" in failure.description
    (example,) = failure.examples
    assert example["file"] == "images.npy" and reason in example["error"]
    assert_named_in_text(report, IN_SET, "files.loads")
    assert "images.npy" in report.failures_text()
    # the checks that need the pixels are skipped; the manifest is still checked
    assert {r.table for r in report.results} == {"manifest", "files"}


def test_images_npy_of_the_wrong_rank(images_dir, failed):
    np.save(images_dir / "images.npy", np.array(7, dtype=np.uint8))  # a 0-d array
    report = validate_dataset(images_dir)
    assert failed(report) == {(IN_SET, "files.ndim")}
    assert result(report, IN_SET, "files.ndim").examples[0]["file"] == "images.npy"


def test_two_runs_on_the_same_data_write_the_same_json_bytes(images_dir):
    """train@ depends on the report: a rerun of validate@ on unchanged data (a dataset param or
    the validation code edited) must not make every training of the dataset stale."""
    first = validate_dataset(images_dir)
    second = validate_dataset(images_dir)
    raw = json.dumps(first.raw, default=str)
    assert "ge_load_time" in raw  # GX stamps each batch with the time it loaded it
    assert first.raw != second.raw
    texts = [json.dumps(r.to_json_dict(), indent=2, default=str) for r in (first, second)]
    assert texts[0] == texts[1] and "ge_load_time" not in texts[0]
    assert json.loads(texts[0])["great_expectations"].keys() == first.raw.keys()
