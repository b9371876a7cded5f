"""The README's seed example on mnist5k: three real digits of classes never seen in training, whose
pixel L2 distances pair the wrong two, while a learned embedding's distances pair the right two."""

from __future__ import annotations

import numpy as np
import pytest
from benchmarks.seed_example import (
    PAIRS,
    SECTION,
    TRIPLE,
    build_mnist5k,
    distances,
    draw,
    pair_distances,
    train_embedding,
    triple_rows,
)

from simlearn.data.image_dataset import load_image_dataset


@pytest.fixture(scope="module")
def mnist5k(tmp_path_factory):
    data_dir = build_mnist5k(tmp_path_factory.mktemp("seed"), reuse=False)
    return data_dir, load_image_dataset(data_dir)


def test_pair_distances_against_a_worked_example():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])  # A-B 5, A-C 1, B-C sqrt(9 + 9)
    np.testing.assert_allclose(pair_distances(x), [5.0, 1.0, np.sqrt(18.0)])
    assert PAIRS[0] == (0, 1)  # the same-class pair comes first


def test_the_triple_is_two_of_one_held_out_class_and_one_of_another(mnist5k):
    _, ds = mnist5k
    rows = triple_rows(ds)
    labels = ds.labels[rows]
    assert labels[0] == labels[1] != labels[2]
    assert set(labels) <= set(SECTION["holdout_classes"])  # classes the network never sees
    assert (ds.splits[rows] == "test").all()


def test_pixel_l2_ranks_a_cross_class_pair_closest(mnist5k):
    _, ds = mnist5k
    pixel = pair_distances(ds.images[triple_rows(ds)] / 255.0)
    # brute force: every pixel difference, one by one
    images = ds.images[triple_rows(ds)].astype(np.float64) / 255.0
    loop = [np.sqrt(sum(d * d for d in (images[i] - images[j]).ravel())) for i, j in PAIRS]
    np.testing.assert_allclose(pixel, loop)
    assert int(np.argmin(pixel)) != 0
    assert pixel[0] > 1.3 * pixel[1:].min()  # not a near tie: the wrong pair is clearly closer


@pytest.mark.slow
def test_learned_embedding_ranks_the_same_class_pair_closest(mnist5k, tmp_path):
    data_dir, ds = mnist5k
    model = train_embedding(data_dir, seed=0, checkpoint_dir=tmp_path / "ck")
    pixel, embedding = distances(ds, model)
    assert int(np.argmin(pixel)) != 0
    assert int(np.argmin(embedding)) == 0
    assert embedding[1:].min() > 1.2 * embedding[0]  # picked with a 1.49x margin over 3 seeds
    out = draw(ds, pixel, embedding, tmp_path / "seed_example.png")
    assert out.stat().st_size > 10_000
    assert TRIPLE[0] in ds.ids
