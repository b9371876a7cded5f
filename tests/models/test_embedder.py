"""Embedding and channel statistics over images that are read lazily (files), in bounded chunks."""

import numpy as np
import pytest
import torch

from simlearn.config.metric import ModelConfig
from simlearn.models import ConvNet, Embedder
from simlearn.models.embedder import (
    STATS_SAMPLE,
    channel_stats,
    embed_images,
    new_embedder,
    sampled_channel_stats,
)


class LazyImages:
    """An array-like over uint8 images (N, H, W, C) that, like ``FileImages``, materialises only
    the rows it is indexed with; it records how many rows each read asked for."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images
        self.shape = images.shape
        self.dtype = images.dtype
        self.ndim = images.ndim
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, rows):
        out = np.array(self._images[rows])
        self.reads.append(len(out))
        return out


def _images(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def _model(channels: int = 3) -> Embedder:
    torch.manual_seed(0)
    return Embedder(ConvNet(channels, 6, width=4), [0.5] * channels, [0.25] * channels).eval()


@pytest.mark.parametrize("rows", [None, np.array([9, 2, 40, 41, 0, 7, 33, 12, 5, 18, 27])])
def test_embed_images_reads_lazy_images_chunk_by_chunk(rows):
    images = _images(50)
    lazy = LazyImages(images)
    model = _model()
    got = embed_images(model, lazy, batch_size=4, rows=rows)
    want = embed_images(model, images if rows is None else images[rows], batch_size=4)
    np.testing.assert_array_equal(got, want)
    n = 50 if rows is None else len(rows)
    assert got.shape == (n, 6)
    assert max(lazy.reads) <= 4 and sum(lazy.reads) == n  # every row once, 4 at a time


def test_embed_images_of_an_array_is_unchanged_by_rows():
    images = _images(30)
    model = _model()
    rows = np.arange(5, 25)
    np.testing.assert_array_equal(
        embed_images(model, images, rows=rows), embed_images(model, images[rows])
    )
    with pytest.raises(ValueError, match="no images"):
        embed_images(model, LazyImages(images), rows=np.array([], dtype=np.int64))


def test_sampled_channel_stats_equal_the_exact_ones_of_the_sample():
    images = _images(300, size=6)
    lazy = LazyImages(images)
    rows = np.arange(10, 300)
    mean, std = sampled_channel_stats(lazy, rows, seed=3, n=100, chunk=16)
    assert sum(lazy.reads) == 100 and max(lazy.reads) <= 16
    pick = np.sort(np.random.default_rng(3).choice(rows, size=100, replace=False))
    want_mean, want_std = channel_stats(images[pick])
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12)
    np.testing.assert_allclose(std, want_std, rtol=1e-10)
    # fewer rows than the sample: all of them, the same figures as channel_stats
    few = np.arange(0, 40)
    np.testing.assert_allclose(
        sampled_channel_stats(LazyImages(images), few, seed=0),
        channel_stats(images[few]),
        rtol=1e-10,
    )


def test_new_embedder_reads_a_bounded_sample_of_lazy_images():
    images = _images(STATS_SAMPLE + 500, size=4, channels=1)
    lazy = LazyImages(images)
    rows = np.arange(200, len(images))
    cfg = ModelConfig(name="convnet", embedding_dim=4, width=4)
    model, spec = new_embedder(cfg, lazy, seed=11, rows=rows)
    assert sum(lazy.reads) == STATS_SAMPLE and max(lazy.reads) <= 64
    assert spec["in_channels"] == 1
    assert (spec["input_mean"], spec["input_std"]) == sampled_channel_stats(images, rows, 11)
    # an array: the exact statistics of every training row, as always
    _, spec2 = new_embedder(cfg, images, seed=11, rows=rows)
    assert (spec2["input_mean"], spec2["input_std"]) == channel_stats(images[rows])
    # the network's weights depend on the seed alone, not on how the images are held
    model2, _ = new_embedder(cfg, images, seed=11, rows=rows)
    b = model2.encoder.state_dict()
    for k, a in model.encoder.state_dict().items():
        assert torch.equal(a, b[k]), k
