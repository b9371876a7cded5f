"""The Sketchy reader and validation on a tree in the true layout: a valid tree passes, and a
sketch whose photo is missing is caught by validation (and stops the reader and the build)."""

from __future__ import annotations

import pytest
from tests.sbir.sketchy_tree import CLASSES, PHOTOS_PER_CLASS, SKETCHES_PER_PHOTO

from simlearn.data.readers import list_sketchy
from simlearn.data.sketch_dataset import load_sketch_dataset
from simlearn.data.sources import DatasetConfig, build_dataset
from simlearn.validation import validate_dataset
from simlearn.validation.runner import check_raw_tree, validate_sketchy_tree


def test_valid_tree_reads_and_validates(sketchy_tree, sketchy_data):
    report = validate_sketchy_tree(sketchy_tree)
    assert report.success, report.failures_text()
    listing = list_sketchy(sketchy_tree)
    n_photos = len(CLASSES) * PHOTOS_PER_CLASS
    assert (listing["domain"] == "photo").sum() == n_photos
    assert (listing["domain"] == "sketch").sum() == n_photos * SKETCHES_PER_PHOTO
    canonical = validate_dataset(sketchy_data)
    assert canonical.success, canonical.failures_text()
    ds = load_sketch_dataset(sketchy_data)
    assert ds.class_names == list(CLASSES)
    # every sketch's photo is in the manifest, same class and split
    photos = {p: (lab, s) for p, lab, s, d in zip(ds.photo_ids, ds.labels, ds.splits, ds.domains,
                                                   strict=True) if d == "photo"}  # fmt: skip
    for p, lab, s, d in zip(ds.photo_ids, ds.labels, ds.splits, ds.domains, strict=True):
        if d == "sketch":
            assert photos[p] == (lab, s)


def test_sketch_whose_photo_is_missing_is_caught(sketchy_tree, tmp_path):
    photo = sketchy_tree / "rendered_256x256/256x256/photo/tx_000000000000/dog/dog_2.jpg"
    photo.unlink()

    report = validate_sketchy_tree(sketchy_tree)
    assert not report.success
    failed = {(r.table, r.column) for r in report.failures}
    assert failed == {("tree", "photo_exists")}
    (result,) = report.failures
    assert sorted(e["id"] for e in result.examples) == [
        "sketch/dog/dog_2-1.png",
        "sketch/dog/dog_2-2.png",
    ]
    with pytest.raises(ValueError, match="have no photo"):
        list_sketchy(sketchy_tree)
    with pytest.raises(ValueError, match="photo_exists"):
        build_dataset(
            "sketchy",
            DatasetConfig(source="sketchy"),
            tmp_path / "out",
            downloads_dir=sketchy_tree,
            check_raw=check_raw_tree,
        )
    assert not (tmp_path / "out").exists()


def test_misnamed_sketch_and_photo_without_sketch_are_caught(sketchy_tree):
    sk = sketchy_tree / "rendered_256x256/256x256/sketch/tx_000000000000/owl"
    (sk / "owl_1-1.png").rename(sk / "owl_1_first.png")
    (sk / "owl_1-2.png").unlink()

    report = validate_sketchy_tree(sketchy_tree)
    failed = {(r.table, r.column) for r in report.failures}
    assert failed == {("tree", "name_ok"), ("tree", "num_sketches")}


def test_canonical_images_hold_the_source_pixels_and_plain_pngs_are_copied(sketchy_tree, tmp_path):
    """Plain 8-bit L/RGB PNG sketches are stored as byte copies; JPEG photos and sketches in
    other modes (RGBA, palette) are decoded to L or RGB and re-encoded; every stored file
    decodes to what the reader decodes from its source."""
    import numpy as np
    import pandas as pd
    from PIL import Image

    from simlearn.data.readers import read_image

    sdir = sketchy_tree / "rendered_256x256/256x256/sketch/tx_000000000000/cat"
    rgba, pal = sdir / "cat_0-1.png", sdir / "cat_0-2.png"
    grey = np.asarray(Image.open(rgba))
    Image.fromarray(np.stack([grey] * 3 + [np.full_like(grey, 200)], -1), "RGBA").save(rgba)
    Image.open(pal).convert("P").save(pal)
    for f in (sdir.parent / "dog").glob("*.png"):  # stored uncompressed: a re-encoding differs
        Image.open(f).save(f, compress_level=0)
    out = tmp_path / "canonical"
    build_dataset("sketchy", DatasetConfig(source="sketchy"), out, downloads_dir=sketchy_tree)
    listing = list_sketchy(sketchy_tree)
    manifest = pd.read_parquet(out / "manifest.parquet")
    src_of = {
        (f"photo-{r.photo_id}" if r.domain == "photo" else f"sketch-{r.photo_id}-{r.sketch_index}"):
        r.source_path for r in listing.itertuples()
    }  # fmt: skip
    copied = 0
    for row in manifest.itertuples():
        src, dest = src_of[row.id], out / row.path
        assert np.array_equal(read_image(dest), read_image(src)), row.id
        with Image.open(dest) as img:
            assert img.format == "PNG" and img.mode in ("L", "RGB")
        same_bytes = dest.read_bytes() == open(src, "rb").read()
        plain = row.domain == "sketch" and src not in (str(rgba), str(pal))
        assert same_bytes == plain, row.id
        copied += same_bytes
    assert copied == len(CLASSES) * PHOTOS_PER_CLASS * SKETCHES_PER_PHOTO - 2
