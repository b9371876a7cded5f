"""The sketch suite: a valid tiny Sketchy-layout dataset passes; each corruption fails the
expectation meant to catch it."""

from __future__ import annotations

import numpy as np

from simlearn.validation import ValidationReport, validate_dataset

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
PAIR_EQUAL = "expect_column_pair_values_to_be_equal"
SKETCH = "sketch/cat/cat_0-1"  # the first sketch of photo cat_0 (train)


def result(report: ValidationReport, expectation_type: str, target: str):
    (match,) = [
        r for r in report.results if r.expectation_type == expectation_type and r.target == target
    ]
    return match


def edit_row(data_dir, ds, row_id: str, **values) -> None:
    manifest = ds.read_manifest(data_dir)
    row = manifest.index[manifest["id"] == row_id][0]
    for key, value in values.items():
        manifest.loc[row, key] = value
    ds.write_manifest(data_dir, manifest)


def test_valid_dataset_passes(sketch_dir):
    report = validate_dataset(sketch_dir)
    assert report.success, report.failures_text()
    assert (report.dataset, report.kind) == ("tiny-sketch", "sketch")
    assert {r.table for r in report.results} == {"manifest", "samples", "splits", "classes"}
    assert all(r.error is None for r in report.results)


def test_sketch_of_a_photo_that_does_not_exist(sketch_dir, ds, failed):
    edit_row(sketch_dir, ds, SKETCH, photo_id="cat_99")

    report = validate_dataset(sketch_dir)
    assert failed(report) == {(IN_SET, "samples.photo_in_manifest")}
    assert result(report, IN_SET, "samples.photo_in_manifest").examples == [
        {"id": SKETCH, "photo_in_manifest": False}
    ]
    assert f"{IN_SET} on samples.photo_in_manifest" in report.failures_text()


def test_sketch_class_differs_from_its_photo(sketch_dir, ds, failed):
    edit_row(sketch_dir, ds, SKETCH, class_name="dog", label=1)

    report = validate_dataset(sketch_dir)
    assert failed(report) == {(IN_SET, "samples.same_class_as_photo")}
    assert result(report, IN_SET, "samples.same_class_as_photo").examples == [
        {"id": SKETCH, "same_class_as_photo": False}
    ]
    assert f"{IN_SET} on samples.same_class_as_photo" in report.failures_text()


def test_sketch_in_another_split_than_its_photo(sketch_dir, ds, failed):
    edit_row(sketch_dir, ds, SKETCH, split="test")
    meta = ds.read_meta(sketch_dir)
    meta["split_counts"] = {"train": 17, "test": 10}  # counts stay consistent
    ds.write_meta(sketch_dir, meta)

    report = validate_dataset(sketch_dir)
    assert failed(report) == {(IN_SET, "samples.same_split_as_photo")}


def test_photo_without_sketches(sketch_dir, ds, failed):
    manifest = ds.read_manifest(sketch_dir)
    keep = ~((manifest["domain"] == "sketch") & (manifest["photo_id"] == "owl_1"))
    ds.write_manifest(sketch_dir, manifest[keep])

    report = validate_dataset(sketch_dir)
    assert (BETWEEN, "samples.num_sketches") in failed(report)
    assert result(report, BETWEEN, "samples.num_sketches").examples == [
        {"id": "photo/owl/owl_1", "num_sketches": 0}
    ]


def test_missing_photo_file(sketch_dir, failed):
    (sketch_dir / "photo/cat/cat_0.png").unlink()

    report = validate_dataset(sketch_dir)
    assert failed(report) == {
        (IN_SET, "samples.file_ok"),
        (IN_SET, "samples.photo_file_exists"),
    }
    examples = result(report, IN_SET, "samples.photo_file_exists").examples
    assert sorted(e["id"] for e in examples) == ["sketch/cat/cat_0-1", "sketch/cat/cat_0-2"]


def test_sketch_file_replaced(sketch_dir, ds, failed):
    ds.write_png(sketch_dir / f"{SKETCH}.png", np.full((16, 16), 255, dtype=np.uint8))

    report = validate_dataset(sketch_dir)
    assert failed(report) == {(PAIR_EQUAL, "samples.file_sha256,sha256")}


def test_manifest_may_hash_decoded_pixels(sketch_dir, ds):
    from PIL import Image

    manifest = ds.read_manifest(sketch_dir)
    manifest["sha256"] = [
        ds.sha256_hex(np.asarray(Image.open(sketch_dir / p)).tobytes()) for p in manifest["path"]
    ]
    ds.write_manifest(sketch_dir, manifest)

    assert validate_dataset(sketch_dir).success


def test_class_missing_from_train(sketch_dir, ds, failed):
    manifest = ds.read_manifest(sketch_dir)
    owl_train = (manifest["class_name"] == "owl") & (manifest["split"] == "train")
    manifest.loc[owl_train, "split"] = "val"
    ds.write_manifest(sketch_dir, manifest)
    meta = ds.read_meta(sketch_dir)
    meta["split_counts"] = {"train": 12, "val": 6, "test": 9}
    ds.write_meta(sketch_dir, meta)

    report = validate_dataset(sketch_dir)
    assert failed(report) == {
        (BETWEEN, "classes.train_photos"),
        (BETWEEN, "classes.train_sketches"),
    }
    assert result(report, BETWEEN, "classes.train_photos").examples == [
        {"label": 2, "class_name": "owl", "train_photos": 0}
    ]


def test_empty_split(sketch_dir, ds, failed):
    manifest = ds.read_manifest(sketch_dir)
    manifest.loc[manifest["split"] == "test", "split"] = "train"
    ds.write_manifest(sketch_dir, manifest)

    report = validate_dataset(sketch_dir)
    assert failed(report) == {
        (BETWEEN, "splits.photos"),
        (BETWEEN, "splits.sketches"),
        (PAIR_EQUAL, "splits.rows,meta_rows"),
    }
    assert result(report, BETWEEN, "splits.photos").examples == [{"split": "test", "photos": 0}]
    assert f"{BETWEEN} on splits.photos" in report.failures_text()
