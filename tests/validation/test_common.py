"""Derived columns shared by the suites, against brute-force loops and worked examples."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from simlearn.validation.common import (
    class_table,
    expected_splits,
    label_matches_class_name,
    shared_between,
    split_table,
    stats_match,
    with_columns,
)


def test_shared_between_matches_brute_force():
    rng = np.random.default_rng(0)
    split = pd.Series(rng.choice(["train", "val", "test"], size=60))
    digest = pd.Series(rng.choice(list("abcdefghij"), size=60), dtype=object)
    digest[rng.random(60) < 0.1] = None  # rows whose file could not be read
    flags = shared_between(split, digest, "train", "test")
    for i in range(60):
        expected = (
            split[i] in ("train", "test")
            and digest[i] is not None
            and any(digest[j] == digest[i] for j in range(60) if split[j] == "train")
            and any(digest[j] == digest[i] for j in range(60) if split[j] == "test")
        )
        assert flags[i] == expected, i


def test_label_matches_class_name_with_meta_names():
    labels = pd.Series([0, 1, 2, 3, None])
    names = pd.Series(["a", "b", "a", "d", "a"])
    got = label_matches_class_name(labels, names, ["a", "b", "c"])
    assert got.tolist() == [True, True, False, False, False]


def test_label_matches_class_name_one_to_one_without_meta():
    labels = pd.Series([0, 0, 1, 1, 2, 2])
    names = pd.Series(["a", "a", "b", "c", "d", "d"])  # label 1 has two names
    got = label_matches_class_name(labels, names, None)
    assert got.tolist() == [True, True, False, False, True, True]
    for i, j in itertools.combinations(range(6), 2):  # brute force: a pair agrees iff both valid
        if got[i] and got[j]:
            assert (labels[i] == labels[j]) == (names[i] == names[j])


def test_expected_splits_precedence():
    manifest = pd.DataFrame({"split": ["train", "test", "bogus"]})
    counts = {"split_counts": {"train": 2, "val": 1}}
    assert expected_splits(counts, manifest, ["test"]) == ["test"]
    assert expected_splits(counts, manifest, None) == ["train", "val"]
    assert expected_splits({}, manifest, None) == ["train", "test"]
    assert expected_splits({}, pd.DataFrame({"split": ["test"]}), None) == ["train", "test"]


def test_split_and_class_tables_count_rows():
    samples = pd.DataFrame(
        {
            "split": ["train", "train", "train", "test"],
            "label": [0, 0, 2, 1],
            "domain": ["photo", "sketch", "sketch", "photo"],
        }
    )
    meta = {"split_counts": {"train": {"photo": 1, "sketch": 2}, "val": 0}}
    splits = split_table(samples, ["train", "val"], meta, {"photos": samples.domain == "photo"})
    assert splits.to_dict("list") == {
        "split": ["train", "val"],
        "rows": [3, 0],
        "photos": [1, 0],
        "meta_rows": [3, 0],
    }
    classes = class_table(samples, ["a", "b", "c"], {"train_rows": samples.domain != ""})
    assert classes["train_rows"].tolist() == [2, 0, 1]


def test_with_columns_adds_missing_columns_and_names_nulls():
    manifest = pd.DataFrame({"id": ["x", None], "split": ["train", "test"]})
    frame = with_columns(manifest, ["id", "split", "label"])
    assert frame["label"].isna().all()
    assert frame["null_fields"].tolist() == ["label", "id, label"]
    assert "label" not in manifest.columns  # the input is not modified


@pytest.mark.parametrize("value", [np.nan, None])
def test_with_columns_treats_nan_and_none_as_null(value):
    frame = with_columns(pd.DataFrame({"mean": [1.0, value]}), ["mean"])
    assert frame["null_fields"].tolist() == ["", "mean"]


def test_stats_match_tolerance_and_nulls():
    manifest = pd.Series([1.0, 1.0, np.nan, None, 2.0], dtype=object)
    recomputed = pd.Series([1.0 + 1e-6, 1.1, np.nan, 3.0, np.nan])
    # within tolerance; off by 0.1; NaN == NaN; null manifest (reported elsewhere); NaN != 2
    assert stats_match(manifest, recomputed).tolist() == [True, False, True, True, False]


def test_leakage_flags_cover_every_pair_of_splits():
    from simlearn.validation.common import add_leakage_flags

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "split": rng.choice(["train", "val", "test"], size=40),
            "digest": pd.Series(rng.choice(list("abcdefgh"), size=40), dtype=object),
        }
    )
    add_leakage_flags(frame, "digest")
    for a, b, column in [
        ("train", "test", "in_train_and_test"),
        ("train", "val", "in_train_and_val"),
        ("val", "test", "in_val_and_test"),
    ]:
        for i in range(40):  # brute force: row i is in a or b, and its digest occurs in both
            in_a = any(
                frame.digest[j] == frame.digest[i] and frame.split[j] == a for j in range(40)
            )
            in_b = any(
                frame.digest[j] == frame.digest[i] and frame.split[j] == b for j in range(40)
            )
            assert frame[column][i] == (frame.split[i] in (a, b) and in_a and in_b), (column, i)
