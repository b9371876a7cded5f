"""The streaming reader: batches decoded in worker threads equal a direct read, lazily."""

from __future__ import annotations

import numpy as np
from PIL import Image

from simlearn.data.sketch_dataset import ImageStream, load_sketch_dataset


def test_stream_equals_direct_decoding_and_is_lazy(sketchy_data):
    ds = load_sketch_dataset(sketchy_data)
    stream = ImageStream(ds, 24, workers=2, depth=1)
    sk, ph = ds.rows("sketch"), ds.rows("photo")
    parts = [(sk[:3], ph[:3]), (sk[3:5], ph[3:4]), (sk[5:9], ph[4:8])]
    batches = list(stream.lazy(parts))  # nothing read yet
    assert stream._pool is None
    for part, lazy in zip(parts, batches, strict=True):
        xs, xp = lazy.get()
        assert xs.shape == (len(part[0]), 1, 24, 24) and xp.shape == (len(part[1]), 3, 24, 24)
        for x, rows in ((xs, part[0]), (xp, part[1])):
            for i, r in enumerate(rows):
                img = np.asarray(Image.open(ds.root / ds.paths[r]))
                img = img[..., None] if img.ndim == 2 else img
                assert np.array_equal((x[i].permute(1, 2, 0).numpy() * 255).round(), img)
    got = np.concatenate([r for r, _ in stream.iterate(sk, 4)])
    assert np.array_equal(got, sk)
    stream.close()


def test_rows_filters_domain_split_and_classes(sketchy_data):
    ds = load_sketch_dataset(sketchy_data)
    rows = ds.rows("photo", ["train"], exclude=[1])
    assert set(ds.domains[rows]) == {"photo"} and set(ds.splits[rows]) == {"train"}
    assert 1 not in set(ds.labels[rows])
    assert ds.class_ids(["owl", "cat"]).tolist() == [2, 0]


def test_a_decoded_image_is_read_from_its_file_once_within_the_cache_budget(
    sketchy_data, monkeypatch
):
    from simlearn.data import sketch_dataset

    ds = load_sketch_dataset(sketchy_data)
    opened = []
    real = sketch_dataset.read_resized
    monkeypatch.setattr(
        sketch_dataset, "read_resized", lambda path, c, s: opened.append(path) or real(path, c, s)
    )
    rows = ds.rows("photo")[:6]
    one_image = 24 * 24 * 3  # bytes of one cached photo at 24 px
    for cache_mb, reads in ((256, 6), (0, 12), (2.5 * one_image / 2**20, 6 + 4)):
        opened.clear()
        stream = ImageStream(ds, 24, workers=2, cache_mb=cache_mb)
        first, second = stream.read(rows), stream.read(rows)
        assert np.array_equal(first, second)
        assert np.array_equal(first, np.stack([real(ds.root / ds.paths[r], 3, 24) for r in rows]))
        assert len(opened) == reads, cache_mb  # the budget holds 2 of the 6 images
        first[:] = 0  # the caller's array is a copy: the cache is not changed through it
        assert np.array_equal(stream.read(rows), second)
