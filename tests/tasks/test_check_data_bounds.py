"""Sizes only the data can bound are refused by each task's ``check_data`` (which ``train@`` runs
before any MLflow run exists), with one ConfigError naming the key, the value, what the data has
and the largest value allowed; the largest allowed value passes. Each bound is computed here by
a loop over the data, and each refusal is shown to be one the real sampler (or evaluation)
needs: beyond the bound it fails, or it only repeats what the data holds.

Values the code clamps are not refused: simclr's batch (the random sampler takes the whole split
at most) and sbir's embedding batch (a smaller set is one batch)."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from simlearn import tasks
from simlearn.config import ConfigError
from simlearn.data.samplers import PairSampler, PKSampler, RandomBatchSampler, TripletSampler
from simlearn.data.sources import DatasetConfig, build_dataset

ROOT = Path(__file__).resolve().parents[2]

BASE = {  # a section's defaults, where they do not fit the digits with 3 classes held out
    "metric": {"sampler": {"classes_per_batch": 5}},
    "simclr": {"loss": {"name": "ntxent"}, "sampler": {"name": "random"}},
    "protonet": {},
}


def cfg_for(task: str, **section):
    """``experiments.e`` of ``task`` built and checked as the stages build it (no data yet)."""
    exp = {"task": task, "dataset": "d", **BASE.get(task, {}), **section}
    return tasks.experiment_config({"datasets": {"d": {}}, "experiments": {"e": exp}}, "e")


def refused(cfg, data) -> str:
    """The message of the ConfigError ``check_data`` raises, which must come within a second."""
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as e:
        tasks.get(cfg.task).check_data(cfg, data)
    assert time.perf_counter() - t0 < 1.0
    return str(e.value)


def passes(cfg, data) -> None:
    tasks.get(cfg.task).check_data(cfg, data)


def train_counts(labels, splits, holdout=()) -> dict[int, int]:
    """Brute force: images per class in the training split, held-out classes left out."""
    counts: dict[int, int] = {}
    for label, split in zip(labels, splits, strict=True):
        if split == "train" and int(label) not in holdout:
            counts[int(label)] = counts.get(int(label), 0) + 1
    return counts


def with_train_rows(ds, keep: dict[int, int]):
    """``ds`` whose training split keeps the first ``keep[c]`` rows of class c (the others go to
    val), so a test sets the class sizes it needs."""
    splits, seen = ds.splits.copy(), dict.fromkeys(keep, 0)
    for i, label in enumerate(ds.labels):
        if splits[i] == "train":
            seen[int(label)] = seen.get(int(label), 0) + 1
            if seen[int(label)] > keep.get(int(label), 0):
                splits[i] = "val"
    return dataclasses.replace(ds, splits=splits)


# ----------------------------------------------------------------------------- metric


def test_metric_p_counts_the_classes_that_have_training_images(digits):
    """A class with no training image (class-disjoint splits) cannot be drawn: the bound is the
    training split's classes, not the dataset's."""
    no9 = dataclasses.replace(
        digits, splits=np.where((digits.labels == 9) & (digits.splits == "train"), "val",
                                digits.splits)
    )  # fmt: skip
    c = len(train_counts(no9.labels, no9.splits))
    assert c == 9 and no9.num_classes == 10
    passes(cfg_for("metric", sampler={"classes_per_batch": c}), no9)
    msg = refused(cfg_for("metric", sampler={"classes_per_batch": c + 1}), no9)
    assert msg == "sampler.classes_per_batch=10: the training split has 9 classes; use at most 9"
    labels = no9.labels[no9.splits == "train"]
    PKSampler(labels, c, 8)  # the real sampler: 9 classes draw, 10 fail
    with pytest.raises(ValueError, match="classes_per_batch=10"):
        PKSampler(labels, c + 1, 8)


@pytest.mark.parametrize("name", ["mahalanobis", "lda"])
def test_fitted_baselines_refuse_images_whose_matrix_would_not_fit(digits, name):
    """mahalanobis and lda fit a D x D matrix of the pixels: D = 128 x 128 x 1 = 16,384 passes,
    one more row of pixels is refused, naming the size and the image_size that fits; raw, with
    no matrix, takes both."""
    n = len(digits.labels)
    at = dataclasses.replace(digits, images=np.zeros((n, 128, 128, 1), np.uint8))
    over = dataclasses.replace(digits, images=np.zeros((n, 129, 128, 1), np.uint8))
    passes(cfg_for("metric", model={"name": name}), at)
    msg = refused(cfg_for("metric", model={"name": name}), over)
    d = 129 * 128
    assert msg.startswith(f"model.name={name!r} fits a {d:,} x {d:,} matrix of the pixels")
    assert f"{d * d * 8 / 2**30:.1f} GiB" in msg and "at most 16,384" in msg
    assert "datasets.d.image_size to 128 or less" in msg
    passes(cfg_for("metric", model={"name": "raw"}), over)


@pytest.mark.parametrize(("loss", "most"), [("batch_hard", 7), ("npairs", 6)])
def test_metric_k_is_bounded_by_the_largest_class(digits, loss, most):
    """K beyond every class's images makes every class repeat an image in every batch (the
    sampler draws such a class with replacement); npairs pairs the K samples, so its bound is
    the largest even number."""
    ds = with_train_rows(digits, {c: 7 if c == 3 else 5 for c in range(10)})
    assert max(train_counts(ds.labels, ds.splits).values()) == 7
    passes(cfg_for("metric", loss={"name": loss}, sampler={"samples_per_class": most}), ds)
    msg = refused(cfg_for("metric", loss={"name": loss}, sampler={"samples_per_class": 8}), ds)
    even = " (even, for the npairs loss)" if loss == "npairs" else ""
    assert msg == (
        "sampler.samples_per_class=8: the largest class of the training split has 7 images, so "
        f"every class would repeat its images in every batch; use at most {most}{even}"
    )
    labels = ds.labels[ds.splits == "train"]
    batch = next(PKSampler(labels, 10, 8, seed=0).epoch(0))  # (10 * 8,) class by class
    assert all(len(set(block)) < 8 for block in batch.reshape(10, 8))  # every class repeats


@pytest.mark.parametrize("sampler", ["pairs", "triplets"])
def test_pairs_and_triplets_refuse_a_split_that_cannot_make_them(digits, sampler):
    loss = "contrastive" if sampler == "pairs" else "triplet"
    cfg = cfg_for("metric", loss={"name": loss}, sampler={"name": sampler, "batch_size": 4})
    real = PairSampler if sampler == "pairs" else TripletSampler

    one_class = with_train_rows(digits, {0: 50})
    assert refused(cfg, one_class) == (
        f"sampler.name={sampler!r}: the training split has 1 class; {sampler} need a sample "
        "of another class"
    )
    with pytest.raises(ValueError):  # the real sampler
        next(real(one_class.labels[one_class.splits == "train"], 4).epoch(0))

    singletons = with_train_rows(digits, dict.fromkeys(range(10), 1))
    assert refused(cfg, singletons) == (
        f"sampler.name={sampler!r}: no class of the training split has 2 images; {sampler} "
        "need a positive other than the anchor"
    )
    with pytest.raises(ValueError):
        next(real(singletons.labels[singletons.splits == "train"], 4).epoch(0))


# ----------------------------------------------------------------------------- kNN probe


@pytest.mark.parametrize("task", ["metric", "simclr", "protonet"])
@pytest.mark.parametrize("holdout", [(), (7, 8, 9)])
def test_knn_k_is_bounded_by_the_probe_references(digits, task, holdout):
    """The kNN probe's references are the training images of the classes trained on;
    :func:`knn_accuracy` refuses a larger k, which would fail the evaluation after training."""
    from simlearn.evaluation.classify import knn_accuracy

    n = sum(train_counts(digits.labels, digits.splits, holdout).values())
    passes(cfg_for(task, holdout_classes=list(holdout), eval={"knn_k": n}), digits)
    msg = refused(cfg_for(task, holdout_classes=list(holdout), eval={"knn_k": n + 1}), digits)
    assert msg == (
        f"eval.knn_k={n + 1}: the kNN probe's reference set (the training split's images of the "
        f"classes trained on) has {n} images; use at most {n}"
    )
    ref = np.zeros((n, 2))
    with pytest.raises(ValueError, match="training size"):
        knn_accuracy(ref, np.arange(n) % 7, ref[:3], np.arange(3), k=n + 1)


# ----------------------------------------------------------------------------- simclr


def test_simclr_batch_beyond_the_split_trains_as_the_whole_split(digits):
    """Not refused: the random sampler clamps the batch to the training split (one batch of
    every image per epoch), so 10**9 trains exactly as the split's size does."""
    n = sum(train_counts(digits.labels, digits.splits).values())
    passes(cfg_for("simclr", sampler={"name": "random", "batch_size": 10**9}), digits)
    huge, exact = RandomBatchSampler(n, 10**9, seed=3), RandomBatchSampler(n, n, seed=3)
    (rows, _), *more = list(huge.epoch(0))
    assert not more and sorted(rows) == list(range(n))
    assert all(
        np.array_equal(a, b) and s == t
        for (a, s), (b, t) in zip(huge.epoch(1), exact.epoch(1), strict=True)
    )


def test_simclr_refuses_fewshot_episodes_the_held_out_classes_cannot_fill(digits):
    """As the metric and protonet tasks do: otherwise the few-shot figures would silently be
    left out of the evaluation."""
    held = (7, 8, 9)
    fewest = min(
        int(((digits.labels == c) & (digits.splits == "test")).sum()) for c in held
    )  # max(shots) = 5 by default
    ok = cfg_for("simclr", holdout_classes=list(held), eval={"fewshot": {"queries": fewest - 5}})
    passes(ok, digits)
    bad = cfg_for("simclr", holdout_classes=list(held),
                  eval={"fewshot": {"queries": fewest - 4}})  # fmt: skip
    msg = refused(bad, digits)
    assert msg.startswith(f"eval.fewshot.queries={fewest - 4}: held-out class ")
    assert f"has {fewest} test images, fewer than max(eval.fewshot.shots) + queries" in msg


# ----------------------------------------------------------------------------- protonet


def test_protonet_ways_shots_and_queries_are_bounded_by_the_training_classes(digits):
    counts = train_counts(digits.labels, digits.splits, (8, 9))
    c, fewest = len(counts), min(counts.values())
    small = min(counts, key=lambda k: (counts[k], k))
    ep = lambda **e: cfg_for("protonet", holdout_classes=[8, 9], episode=e)  # noqa: E731
    passes(ep(ways=c), digits)
    assert refused(ep(ways=c + 1), digits) == (
        f"episode.ways={c + 1}: the training split has {c} classes once holdout_classes are "
        f"removed; use at most {c}"
    )
    passes(ep(shots=5, queries=fewest - 5), digits)
    assert refused(ep(shots=5, queries=fewest - 4), digits) == (
        f"episode.queries={fewest - 4}: training class {small} has {fewest} images, fewer than "
        f"episode.shots + queries = {fewest + 1}; use at most {fewest - 5} (with shots = 5)"
    )
    passes(ep(shots=fewest - 1, queries=1), digits)
    assert refused(ep(shots=fewest, queries=1), digits) == (
        f"episode.shots={fewest}: training class {small} has {fewest} images, fewer than "
        f"episode.shots + queries = {fewest + 1}; use at most shots = {fewest - 1} "
        "(with queries = 1)"
    )
    # the real sampler, one image past the bound: the smallest class repeats an image, so
    # one image could be its class's support and query at once
    train = (digits.splits == "train") & ~np.isin(digits.labels, [8, 9])
    batch = next(PKSampler(digits.labels[train], c, fewest + 1, seed=0).epoch(0))
    blocks = batch.reshape(c, fewest + 1)
    block = next(b for b in blocks if digits.labels[train][b[0]] == small)
    assert len(set(block)) < fewest + 1


# ----------------------------------------------------------------------------- stereo

H, W, D = 32, 80, 6  # one pair, constant disparity D


@pytest.fixture(scope="module")
def stereo_pair(tmp_path_factory):
    """One textured greyscale pair in a ``stereo_folder``, built by the real source: a one-pair
    dataset, trained on its top rows and tested on its bottom block."""
    from simlearn.data.readers import write_pfm
    from simlearn.data.stereo_dataset import StereoDataset

    root = tmp_path_factory.mktemp("stereo")
    rng = np.random.default_rng(0)
    right = rng.integers(0, 256, (H, W), dtype=np.uint8)
    left = right[:, np.clip(np.arange(W) - D, 0, W - 1)]  # left x shows right x - D
    for sub in ("left", "right", "disparity"):
        (root / "pairs" / sub).mkdir(parents=True)
    Image.fromarray(left).save(root / "pairs" / "left" / "a.png")
    Image.fromarray(right).save(root / "pairs" / "right" / "a.png")
    write_pfm(root / "pairs" / "disparity" / "a.pfm", np.full((H, W), float(D), np.float32))
    cfg = DatasetConfig(source="stereo_folder", path=str(root / "pairs"), max_disparity=16)
    build_dataset("x", cfg, root / "data")
    return StereoDataset(root / "data")


def stereo_cfg(row_gap: int = 2, **sampler):
    from simlearn.config import from_dict
    from simlearn.config.stereo import Config

    section = {"task": "stereo", "dataset": "x",
               "split": {"holdout_rows": 0.25, "row_gap": row_gap},
               "sampler": {"nonoccluded": False, **sampler}}  # fmt: skip
    return from_dict(Config, section, "experiments.s")


def stereo_anchors() -> tuple[int, int]:
    """Brute force: (pixels, rows) that can anchor a triplet: in the training rows (above the
    test block and its gap), the 9x9 patch inside the left image and every positive and
    negative (offsets up to max(pos_offset 1, neg_high 10)) inside the right one."""
    first_test = H - round(0.25 * H)
    pixels, rows = 0, set()
    for y in range(first_test - 2):
        for x in range(W):
            xr = x - D
            if 4 <= y < H - 4 and 4 <= x < W - 4 and xr - 10 >= 4 and xr + 10 < W - 4:
                pixels += 1
                rows.add(y)
    return pixels, len(rows)


def test_stereo_batch_and_rows_are_bounded_by_the_anchors(stereo_pair):
    from simlearn.stereo.sampling import TripletPatchSampler

    n, rows = stereo_anchors()
    assert (n, rows) == (18 * 52, 18)  # the premise: rows 4..21, columns 20..71
    passes(stereo_cfg(batch_size=n), stereo_pair)
    for value in (n + 1, 10**9):
        assert refused(stereo_cfg(batch_size=value), stereo_pair) == (
            f"sampler.batch_size={value}: dataset 'x' has {n} training pixels with ground "
            f"truth to anchor triplets; use at most {n}"
        )
    passes(stereo_cfg(rows_per_step=rows, batch_size=10**9), stereo_pair)  # batch_size unused
    assert refused(stereo_cfg(rows_per_step=rows + 1), stereo_pair) == (
        f"sampler.rows_per_step={rows + 1}: dataset 'x' has {rows} training rows with ground "
        f"truth to anchor triplets; use at most {rows}"
    )
    anchors = [a for _, a in tasks.get("stereo").training_anchors(stereo_cfg(), stereo_pair)]
    TripletPatchSampler(anchors, n, 1, 0, rows_per_step=rows)  # the real sampler
    with pytest.raises(ValueError, match=f"only {rows} rows hold training anchors"):
        TripletPatchSampler(anchors, n, 1, 0, rows_per_step=rows + 1)


def test_stereo_without_anchors_is_a_config_error_naming_the_keys(stereo_pair):
    msg = refused(stereo_cfg(row_gap=20), stereo_pair)  # training rows 0..3: no patch fits
    assert msg.startswith("dataset 'x': no pixel with ground truth can anchor a training triplet")
    assert "model.layers" in msg and "split.holdout_rows" in msg


# ----------------------------------------------------------------------------- sbir


@pytest.fixture(scope="module")
def sketches(tmp_path_factory):
    """The tiny Sketchy-layout tree of tests/sbir (3 categories, 4 photos with 2 sketches
    each), built by the real ``sketchy`` source."""
    from tests.sbir.sketchy_tree import make_sketchy_tree

    from simlearn.data.sketch_dataset import load_sketch_dataset

    root = tmp_path_factory.mktemp("sbir")
    tree = make_sketchy_tree(root / "downloads")
    cfg = DatasetConfig(source="sketchy", val_fraction=0.25, test_fraction=0.25)
    build_dataset("sketchy", cfg, root / "data", downloads_dir=tree)
    return load_sketch_dataset(root / "data")


def sbir_cfg(**sampler):
    # the defaults, 8 categories of 4 photos, are beyond the tree's 3 of 2 training photos
    sampler = {"classes_per_batch": 2, "photos_per_class": 2, **sampler}
    params = {"datasets": {"sk": {}}, "experiments": {"e": {
        "task": "sbir", "dataset": "sk", "zero_shot": "none", "sampler": sampler}}}  # fmt: skip
    return tasks.experiment_config(params, "e")


def sbir_photos(ds) -> dict[int, int]:
    """Brute force: per category, the training photos that have a training sketch."""
    rows = range(len(ds.labels))
    sketched = {
        ds.photo_ids[j] for j in rows if (ds.domains[j], ds.splits[j]) == ("sketch", "train")
    }
    out: dict[int, int] = {}
    for i in rows:
        if (ds.domains[i], ds.splits[i]) == ("photo", "train") and ds.photo_ids[i] in sketched:
            out[int(ds.labels[i])] = out.get(int(ds.labels[i]), 0) + 1
    return out


def test_sbir_p_and_k_are_bounded_by_the_training_photos_with_sketches(sketches):
    counts = sbir_photos(sketches)
    c, largest = len(counts), max(counts.values())
    assert c == 3 and largest >= 1
    passes(sbir_cfg(classes_per_batch=c, photos_per_class=largest), sketches)
    assert refused(sbir_cfg(photos_per_class=largest + 1), sketches) == (
        f"sampler.photos_per_class={largest + 1}: the largest seen category of the training "
        f"split has {largest} photos with sketches, so every category would repeat its photos "
        f"in every batch; use at most {largest}"
    )
    assert refused(sbir_cfg(classes_per_batch=c + 1), sketches) == (
        f"sampler.classes_per_batch={c + 1}: the training split has {c} seen categories with "
        f"photos and their sketches (of 3 seen); use at most {c}"
    )


def test_sbir_p_counts_only_categories_with_training_photos(sketches):
    """A seen category whose photos are all outside the training split cannot be drawn: the
    real sampler fails at P = the seen categories, so that value is refused too."""
    photos_of_0 = (sketches.labels == 0) & (sketches.domains == "photo")
    ds = dataclasses.replace(sketches, splits=np.where(photos_of_0, "val", sketches.splits))
    assert len(sbir_photos(ds)) == 2
    passes(sbir_cfg(classes_per_batch=2), ds)
    assert refused(sbir_cfg(classes_per_batch=3), ds) == (
        "sampler.classes_per_batch=3: the training split has 2 seen categories with photos "
        "and their sketches (of 3 seen); use at most 2"
    )
    labels = ds.labels[tasks.get("sbir").training_photos(ds, np.array([], np.int64))]
    with pytest.raises(ValueError, match="classes_per_batch=3"):
        PKSampler(labels, 3, 2)


def test_sbir_embedding_batch_beyond_the_set_is_one_batch(sketches):
    """Not refused: ``sampler.batch_size`` chunks the rows embedded, so a larger value embeds
    the whole set in one batch."""
    from simlearn.data.sketch_dataset import ImageStream

    passes(sbir_cfg(batch_size=10**9), sketches)
    rows = sketches.rows("photo")
    stream = ImageStream(sketches, 8, workers=1)
    try:
        chunks = [r for r, _ in stream.iterate(rows, 10**9)]
    finally:
        stream.close()
    assert len(chunks) == 1 and np.array_equal(chunks[0], rows)


# ----------------------------------------------------------------------------- the stage


@pytest.mark.slow  # a stage process that imports torch
def test_train_stage_refuses_a_huge_batch_in_one_line_before_any_mlflow_run(tmp_path):
    """``python stages/train.py`` in a copy of the project, as DVC runs it: exit status 1, one
    message line naming the full key and the bound, no traceback, no MLflow store, no output."""
    for item in ("stages", "src"):
        shutil.copytree(ROOT / item, tmp_path / item, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")  # the MLflow store's root
    exp = {"task": "metric", "dataset": "digits", "loss": {"name": "triplet"},
           "sampler": {"name": "triplets", "batch_size": 1_000_000_000}}  # fmt: skip
    params = {"datasets": {"digits": {"source": "digits"}}, "experiments": {"huge": exp}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    build_dataset("digits", DatasetConfig(source="digits"), tmp_path / "data" / "digits")
    from simlearn.data.image_dataset import load_image_dataset

    data = load_image_dataset(tmp_path / "data" / "digits")
    n = sum(train_counts(data.labels, data.splits).values())
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "SIMLEARN_WARM": "0"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store: <project>/mlflow.db
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "stages/train.py", "huge", "data/digits", "models/huge",
         "reports/train/huge"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert res.stderr == (
        "train@huge failed:\nexperiments.huge.sampler.batch_size=1000000000: the training split "
        f"has {n} images; use at most {n}\n"
    )
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()
    assert not (tmp_path / "models").exists() and not (tmp_path / "checkpoints").exists()
    assert seconds < 15, seconds
