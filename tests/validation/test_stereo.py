"""The stereo suite: a valid tiny dataset passes; each corruption of the files (with the manifest
kept consistent where noted) fails the expectation meant to catch it."""

from __future__ import annotations

import numpy as np

from simlearn.validation import ValidationReport, validate_dataset

IN_SET = "expect_column_values_to_be_in_set"
BETWEEN = "expect_column_values_to_be_between"
PAIR_EQUAL = "expect_column_pair_values_to_be_equal"
A_AT_LEAST_B = "expect_column_pair_values_a_to_be_greater_than_b"


def result(report: ValidationReport, expectation_type: str, target: str):
    (match,) = [
        r for r in report.results if r.expectation_type == expectation_type and r.target == target
    ]
    return match


def rewrite_disparity(data_dir, ds, row: int, disparity: np.ndarray) -> None:
    """Saves pair `row`'s disparity and updates its manifest statistics to match."""
    manifest = ds.read_manifest(data_dir)
    np.save(data_dir / manifest.loc[row, "disparity_path"], disparity)
    for key, value in ds.disparity_stats(disparity).items():
        manifest.loc[row, key] = value
    ds.write_manifest(data_dir, manifest)


def load_disparity(data_dir, ds, row: int) -> np.ndarray:
    return np.load(data_dir / ds.read_manifest(data_dir).loc[row, "disparity_path"])


def test_valid_dataset_passes(stereo_dir):
    report = validate_dataset(stereo_dir)
    assert report.success, report.failures_text()
    assert (report.dataset, report.kind) == ("tiny-stereo", "stereo")
    assert {r.table for r in report.results} == {"manifest", "pairs", "splits"}
    assert all(r.error is None for r in report.results)


def test_right_image_of_different_size(stereo_dir, ds, failed):
    manifest = ds.read_manifest(stereo_dir)
    right = np.zeros((32, 40, 3), dtype=np.uint8)  # left is 32 x 48
    ds.write_png(stereo_dir / manifest.loc[1, "right_path"], right)
    manifest.loc[1, "right_width"] = 40  # the manifest agrees with the file; the pair does not
    ds.write_manifest(stereo_dir, manifest)

    report = validate_dataset(stereo_dir)
    target = "pairs.file_left_width,file_right_width"
    assert failed(report) == {(PAIR_EQUAL, target)}
    assert result(report, PAIR_EQUAL, target).examples == [
        {"id": "pair-1", "file_left_width": 48, "file_right_width": 40}
    ]
    assert f"{PAIR_EQUAL} on {target}" in report.failures_text()


def test_right_image_resized_behind_the_manifest(stereo_dir, ds, failed):
    manifest = ds.read_manifest(stereo_dir)
    ds.write_png(stereo_dir / manifest.loc[0, "right_path"], np.zeros((30, 48), dtype=np.uint8))

    report = validate_dataset(stereo_dir)
    assert failed(report) == {
        (PAIR_EQUAL, "pairs.file_right_height,right_height"),
        (PAIR_EQUAL, "pairs.file_left_height,file_right_height"),
        (PAIR_EQUAL, "pairs.file_left_channels,file_right_channels"),
    }


def test_disparity_above_max_disp(stereo_dir, ds, failed):
    disparity = load_disparity(stereo_dir, ds, 0)
    disparity[tuple(np.argwhere(np.isfinite(disparity))[0])] = 21.0  # max_disp is 16
    rewrite_disparity(stereo_dir, ds, 0, disparity)

    report = validate_dataset(stereo_dir)
    target = "pairs.max_disp,file_disp_max"
    assert failed(report) == {(A_AT_LEAST_B, target)}
    assert result(report, A_AT_LEAST_B, target).examples == [
        {"id": "pair-0", "max_disp": 16.0, "file_disp_max": 21.0}
    ]
    assert f"{A_AT_LEAST_B} on {target}" in report.failures_text()


def test_negative_disparity(stereo_dir, ds, failed):
    disparity = load_disparity(stereo_dir, ds, 1)
    disparity[tuple(np.argwhere(np.isfinite(disparity))[0])] = -2.0
    rewrite_disparity(stereo_dir, ds, 1, disparity)

    report = validate_dataset(stereo_dir)
    assert failed(report) == {(BETWEEN, "pairs.file_disp_min")}


def test_disparity_changed_behind_the_manifest(stereo_dir, ds, failed):
    manifest = ds.read_manifest(stereo_dir)
    path = stereo_dir / manifest.loc[0, "disparity_path"]
    np.save(path, np.load(path) * 0.5)  # still valid, but the manifest range is stale

    report = validate_dataset(stereo_dir)
    assert failed(report) == {(IN_SET, "pairs.disparity_stats_match_file")}


def test_too_few_valid_pixels(stereo_dir, ds, failed):
    disparity = np.full((32, 48), 5.0, dtype=np.float32)
    disparity[:26] = np.nan  # 6 of 32 rows valid: fraction 0.1875 < 0.3
    rewrite_disparity(stereo_dir, ds, 1, disparity)

    report = validate_dataset(stereo_dir)
    assert failed(report) == {(BETWEEN, "pairs.file_valid_fraction")}
    assert result(report, BETWEEN, "pairs.file_valid_fraction").examples == [
        {"id": "pair-1", "file_valid_fraction": 0.1875}
    ]
    assert f"{BETWEEN} on pairs.file_valid_fraction" in report.failures_text()
    # the floor is configurable
    assert validate_dataset(stereo_dir, min_valid_fraction=0.18).success


def test_missing_disparity_file(stereo_dir, ds, failed):
    manifest = ds.read_manifest(stereo_dir)
    (stereo_dir / manifest.loc[0, "disparity_path"]).unlink()

    report = validate_dataset(stereo_dir)
    assert (IN_SET, "pairs.disparity_file_ok") in failed(report)
    assert result(report, IN_SET, "pairs.disparity_file_ok").examples == [
        {"id": "pair-0", "disparity_file_ok": False}
    ]


def test_same_left_image_in_train_and_test(stereo_dir, ds, failed):
    manifest = ds.read_manifest(stereo_dir)
    train_left = stereo_dir / manifest.loc[0, "left_path"]
    (stereo_dir / manifest.loc[1, "left_path"]).write_bytes(train_left.read_bytes())

    report = validate_dataset(stereo_dir)
    assert failed(report) == {(IN_SET, "pairs.in_train_and_test")}
    examples = result(report, IN_SET, "pairs.in_train_and_test").examples
    assert sorted(e["id"] for e in examples) == ["pair-0", "pair-1"]


def test_empty_or_truncated_disparity_file_fails_its_expectation(stereo_dir, ds, failed):
    manifest = ds.read_manifest(stereo_dir)
    (stereo_dir / manifest.loc[0, "disparity_path"]).write_bytes(b"")  # numpy: EOFError
    path = stereo_dir / manifest.loc[1, "disparity_path"]
    path.write_bytes(path.read_bytes()[:-64])  # numpy: ValueError

    report = validate_dataset(stereo_dir)  # no numpy traceback
    assert (IN_SET, "pairs.disparity_file_ok") in failed(report)
    assert result(report, IN_SET, "pairs.disparity_file_ok").examples == [
        {"id": "pair-0", "disparity_file_ok": False},
        {"id": "pair-1", "disparity_file_ok": False},
    ]
