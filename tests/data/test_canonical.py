"""Canonical writers (simlearn.data.canonical) and the split logic (simlearn.data.splits), on
tiny arrays made here."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from simlearn.data.canonical import (
    IMAGE_COLUMNS,
    STEREO_COLUMNS,
    StereoPair,
    pixel_stats,
    sample_sha256,
    staging_dir,
    write_image_dataset,
    write_stereo_dataset,
)
from simlearn.data.splits import (
    assign_splits,
    carve_stratified,
    drop_cross_split_duplicates,
    split_pairs,
    stratified_subsample,
)

# ----------------------------------------------------------------------------- split helpers


def test_carve_stratified_takes_rounded_share_of_groups_per_class_and_keeps_groups_whole():
    # class 0: 10 groups of 2 samples; class 1: 5 singleton groups
    labels = np.array([0] * 20 + [1] * 5)
    groups = np.array([f"a{i // 2}" for i in range(20)] + [f"b{i}" for i in range(5)])
    picked = carve_stratified(labels, groups, 0.3, np.random.default_rng(0))
    assert len({g for g in groups[picked] if g.startswith("a")}) == 3  # round(10 * 0.3)
    assert len({g for g in groups[picked] if g.startswith("b")}) == 2  # round(5 * 0.3) = 1.5 -> 2
    for g in set(groups):  # every group entirely in or entirely out
        assert len(set(picked[groups == g])) == 1


def test_carve_stratified_is_independent_of_row_order():
    labels = np.repeat(np.arange(3), 10)
    groups = np.array([f"g{i}" for i in range(30)])
    a = carve_stratified(labels, groups, 0.2, np.random.default_rng(5))
    perm = np.random.default_rng(1).permutation(30)
    b = carve_stratified(labels[perm], groups[perm], 0.2, np.random.default_rng(5))
    assert set(groups[a]) == set(groups[perm][b])


def test_assign_splits_fractions_with_and_without_official_test():
    labels = np.repeat(np.arange(4), 25)  # 4 classes x 25
    groups = np.array([f"s{i}" for i in range(100)])
    split = assign_splits(labels, groups, val_fraction=0.2, test_fraction=0.2, seed=0)
    for c in range(4):  # test: round(25 * .2) = 5, then val: round(20 * .2) = 4 per class
        s = split[labels == c]
        assert ((s == "test").sum(), (s == "val").sum(), (s == "train").sum()) == (5, 4, 16)
    official = np.array(["train"] * 80 + ["test"] * 20)
    split = assign_splits(
        labels, groups, val_fraction=0.25, test_fraction=0.5, seed=0, official=official
    )
    assert (split[80:] == "test").all()  # official test kept; test_fraction unused
    # val from the official train only: classes 0-2 have 25 there, class 3 has 5
    assert (split[:80] == "val").sum() == 3 * 6 + 1 and not (split[:80] == "test").any()


def test_drop_cross_split_duplicates_worked_example():
    split = np.array(["train", "train", "val", "val", "test", "test", "test"])
    hashes = np.array(["a", "b", "a", "c", "b", "c", "d"], dtype=object)
    keep = drop_cross_split_duplicates(split, hashes)
    # val "a" is in train; test "b" in train, test "c" in val; "d" is new
    np.testing.assert_array_equal(keep, [True, True, False, True, False, False, True])


def test_stratified_subsample_keeps_class_proportions():
    labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    idx = stratified_subsample(labels, 10, np.random.default_rng(0))
    assert len(idx) == 10 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [6, 3, 1]
    idx = stratified_subsample(labels, 7, np.random.default_rng(0))  # 4.2, 2.1, 0.7 -> 4, 2, 1
    assert np.bincount(labels[idx], minlength=3).tolist() == [4, 2, 1]
    assert stratified_subsample(labels, 500, np.random.default_rng(0)).tolist() == list(range(100))


def test_split_pairs_is_seeded_and_capped():
    ids = [f"p{i}" for i in range(10)]
    a = split_pairs(ids, val_fraction=0.3, seed=3)
    assert sum(v == "val" for v in a.values()) == 3 and len(a) == 10
    assert split_pairs(list(reversed(ids)), val_fraction=0.3, seed=3) == a
    capped = split_pairs(ids, val_fraction=0.3, seed=3, max_per_split=2)
    assert sorted(capped.values()) == ["train", "train", "val", "val"]
    assert all(a[k] == v for k, v in capped.items())


def test_pixel_stats_matches_a_loop():
    x = np.random.default_rng(0).integers(0, 256, size=(7, 3, 4, 2), dtype=np.uint8)
    got = pixel_stats(x, chunk=3)
    for i, img in enumerate(x):
        v = [float(p) for p in img.ravel()]
        mean = sum(v) / len(v)
        std = (sum((p - mean) ** 2 for p in v) / len(v)) ** 0.5
        np.testing.assert_allclose(got[i], [mean, std, min(v), max(v)], rtol=1e-12)


# ----------------------------------------------------------------------------- atomic folder


def test_staging_dir_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    out = tmp_path / "ds"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), staging_dir(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no partial sibling left
    assert (out / "old.txt").read_text() == "old"
    with staging_dir(out) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]


# ----------------------------------------------------------------------------- images


def _toy_images(n_per_class: int = 10, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n_per_class * classes, 4, 5, 1), dtype=np.uint8)
    return images, np.repeat(np.arange(classes), n_per_class)


def test_write_image_dataset_drops_test_copies_of_training_images(tmp_path):
    images, labels = _toy_images()  # 30 unique images
    official = np.array(["train"] * 24 + ["test"] * 6, dtype=object)
    images[25] = images[3]  # a test image that is also a training image
    images[27] = images[10]
    images[5] = images[4]  # two identical training-pool images: must share a split
    m = write_image_dataset(
        tmp_path, images, labels, ["a", "b", "c"], official_split=official,
        source="toy", name="toy", seed=0, val_fraction=0.25, test_fraction=0.0,
    )  # fmt: skip
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["dropped_duplicates"] == 2
    assert "toy-00025" not in set(m["id"]) and "toy-00027" not in set(m["id"])
    assert m.groupby("sha256")["split"].nunique().max() == 1  # no hash in two splits
    s4, s5 = (m.loc[m["id"] == f"toy-0000{i}", "split"].item() for i in (4, 5))
    assert s4 == s5
    assert meta["split_counts"] == m["split"].value_counts().to_dict()
    assert meta["split_counts"]["test"] == 4
    stored = np.load(tmp_path / "images.npy")
    assert stored.shape == (28, 4, 5, 1) and stored.dtype == np.uint8
    for row in m.itertuples():  # index points at the right pixels, hash and stats agree
        src = int(row.id.split("-")[1])
        np.testing.assert_array_equal(stored[row.index], images[src])
        assert row.sha256 == sample_sha256(images[src])
        assert row.mean == pytest.approx(images[src].mean()) and row.max == images[src].max()
    assert list(m.columns) == list(IMAGE_COLUMNS)
    assert pd.read_parquet(tmp_path / "manifest.parquet").equals(m)


def test_write_image_dataset_caps_each_split(tmp_path):
    images, labels = _toy_images(n_per_class=20)
    m = write_image_dataset(
        tmp_path, images, labels, ["a", "b", "c"], source="toy", name="toy", seed=1,
        val_fraction=0.2, test_fraction=0.2, max_per_split=6,
    )  # fmt: skip
    counts = m["split"].value_counts().to_dict()
    assert counts == {"train": 6, "val": 6, "test": 6}
    for s in ("train", "val", "test"):  # 2 per class each: stratified
        assert m.loc[m["split"] == s, "label"].value_counts().tolist() == [2, 2, 2]
    assert len(np.load(tmp_path / "images.npy")) == 18


def test_write_image_dataset_rejects_bad_input(tmp_path):
    images, labels = _toy_images()
    with pytest.raises(ValueError, match="uint8"):
        write_image_dataset(
            tmp_path, images.astype(np.float32), labels, ["a", "b", "c"], source="t", name="t",
            seed=0, val_fraction=0.2, test_fraction=0.2,
        )  # fmt: skip
    with pytest.raises(ValueError, match="labels must lie in 0..1"):
        write_image_dataset(
            tmp_path, images, labels, ["a", "b"], source="t", name="t", seed=0,
            val_fraction=0.2, test_fraction=0.2,
        )  # fmt: skip


# ----------------------------------------------------------------------------- stereo


def _pair(max_disp: float = 10.0) -> StereoPair:
    rng = np.random.default_rng(0)
    left = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    right = rng.integers(0, 256, size=(4, 6, 3), dtype=np.uint8)
    disp = np.array(
        [[1, 2, np.inf, 4, 5, 6], [np.nan] * 6, [2.5] * 6, [0, 9.5, 3, 3, 3, 3]], dtype=np.float32
    )
    return StereoPair(left, right, disp, max_disp)


def test_write_stereo_dataset_stores_nan_for_missing_ground_truth(tmp_path):
    pair = _pair()
    m = write_stereo_dataset(tmp_path, {"p0": lambda: pair}, {"p0": "train"}, source="s", name="s")
    assert list(m.columns) == list(STEREO_COLUMNS)
    row = m.iloc[0]
    disp = np.load(tmp_path / row.disparity_path)
    assert disp.dtype == np.float32 and disp.shape == (4, 6)
    assert np.isnan(disp).sum() == 7 and not np.isinf(disp).any()  # inf -> NaN
    # 7 NaN and one 0: ground truth is finite and > 0 (KITTI stores 0 for "none")
    assert row.valid_fraction == pytest.approx(16 / 24)
    assert (row.disp_min, row.disp_max, row.max_disp) == (0.0, 9.5, 10.0)
    with Image.open(tmp_path / row.left_path) as img:
        np.testing.assert_array_equal(np.array(img), pair.left)
    assert row["mean"] == pytest.approx(pair.left.mean())
    assert row["std"] == pytest.approx(pair.left.std())
    assert (row.height, row.width, row.right_width, row.channels) == (4, 6, 6, 3)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["kind"] == "stereo" and meta["split_counts"] == {"train": 1}


def test_write_stereo_dataset_refuses_ground_truth_beyond_max_disp(tmp_path):
    pair = _pair(max_disp=9.0)
    with pytest.raises(ValueError, match=r"reaches 9.5 > max_disp 9.0"):
        write_stereo_dataset(tmp_path, {"p": lambda: pair}, {"p": "val"}, source="s", name="s")


def test_write_stereo_dataset_only_loads_the_pairs_it_keeps(tmp_path):
    calls = []

    def load(pid):
        calls.append(pid)
        return _pair()

    loaders = {p: (lambda p=p: load(p)) for p in ("a", "b", "c")}
    m = write_stereo_dataset(tmp_path, loaders, {"b": "val"}, source="s", name="s")
    assert calls == ["b"] and m["id"].tolist() == ["b"]


def test_a_killed_builds_leftovers_are_swept_and_a_live_ones_kept(tmp_path):
    import subprocess

    from simlearn.data.canonical import staging_dir

    out = tmp_path / "digits"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a PID that no longer runs
    left = [tmp_path / f".digits.partial-{dead.pid}", tmp_path / f".digits.old-{dead.pid}",
            tmp_path / f".digits.partial-{dead.pid}.raw"]  # fmt: skip
    for folder in left:
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "x.npy").write_bytes(b"half")
    alive = tmp_path / f".digits.partial-{os.getppid()}"  # a running process's build
    alive.mkdir()
    other = tmp_path / f".mnist.partial-{dead.pid}"  # another dataset's: not this build's
    other.mkdir()
    with staging_dir(out) as tmp:
        (tmp / "meta.json").write_text("{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["digits", alive.name, other.name])
