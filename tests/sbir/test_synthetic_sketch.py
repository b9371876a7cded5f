"""The embedded sketch set: seeded, >= 12 categories, sketches of one specific photo."""

from __future__ import annotations

import hashlib

import numpy as np

from simlearn.data.readers import list_sketchy
from simlearn.data.synthetic_sketch import (
    CATEGORIES,
    UNSEEN_CATEGORIES,
    generate_sketch_set,
    instance,
)


def digest(root) -> str:
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.png")):
        h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    kw = {"classes": ("star", "car"), "photos_per_class": 2, "sketches_per_photo": 2}
    a = generate_sketch_set(tmp_path / "a", seed=3, **kw)
    b = generate_sketch_set(tmp_path / "b", seed=3, **kw)
    c = generate_sketch_set(tmp_path / "c", seed=4, **kw)
    assert digest(a) == digest(b) != digest(c)


def test_worker_processes_write_the_same_bytes(tmp_path):
    kw = {"classes": ("star", "car", "cup"), "photos_per_class": 2, "sketches_per_photo": 2}
    one = generate_sketch_set(tmp_path / "one", seed=5, workers=1, **kw)
    two = generate_sketch_set(tmp_path / "two", seed=5, workers=2, **kw)
    assert len(list(two.rglob("*.png"))) == 3 * 2 * 3
    assert digest(one) == digest(two)


def test_layout_counts_and_categories(tmp_path):
    assert len(CATEGORIES) >= 12 and set(UNSEEN_CATEGORIES) < set(CATEGORIES)
    root = generate_sketch_set(tmp_path, photos_per_class=2, sketches_per_photo=5)
    listing = list_sketchy(root)  # the Sketchy reader: the same as for the real set
    assert sorted(listing["class_name"].unique()) == sorted(CATEGORIES)
    assert (listing["domain"] == "photo").sum() == 2 * len(CATEGORIES)
    assert (listing["domain"] == "sketch").sum() == 10 * len(CATEGORIES)


def test_a_sketch_traces_its_own_photo_better_than_other_photos(tmp_path):
    """A sketch's strokes lie near the outline of its own photo's object (pose included): the
    share of stroke pixels within 4 px of the object's outline is highest for its own photo."""
    from PIL import Image, ImageDraw
    from scipy.ndimage import binary_dilation

    size, n = 64, 6
    root = generate_sketch_set(tmp_path, classes=("house",), photos_per_class=n,
                               sketches_per_photo=1, size=size)  # fmt: skip
    outlines = []
    for i in range(n):
        parts, _ = instance("house", 0, i, size)
        img = Image.new("L", (size, size), 0)
        for p in parts:
            ImageDraw.Draw(img).line([tuple(v) for v in np.vstack([p.points, p.points[:1]])],
                                     fill=255, width=1)  # fmt: skip
        outlines.append(binary_dilation(np.asarray(img) > 0, iterations=4))
    base = root / "rendered_256x256/256x256/sketch/tx_000000000000/house"
    near = np.zeros((n, n))  # (sketch, photo)
    for i in range(n):
        strokes = np.asarray(Image.open(base / f"house_{i:03d}-1.png")) < 128
        near[i] = [(strokes & o).sum() / strokes.sum() for o in outlines]
    own, other = np.diag(near), near[~np.eye(n, dtype=bool)]
    assert (near.argmax(axis=1) == np.arange(n)).sum() >= 4  # similar poses of a class may tie
    assert own.mean() > 0.6 and own.mean() > other.mean() + 0.15
