"""Triplet sampling: offsets within their ranges, patches inside the images, seeded draws."""

from __future__ import annotations

import numpy as np
import torch

from simlearn.stereo.sampling import TripletPatchSampler, candidate_anchors, gather_patches


def _anchors(rng_seed: int, holes: float = 0.0) -> tuple[tuple, np.ndarray]:
    """Anchors of a random 30x60 disparity map (rows 20+ not allowed): row 5 has no ground truth,
    or, with ``holes``, that fraction of random pixels."""
    rng = np.random.default_rng(rng_seed)
    disp = rng.uniform(0, 12, (30, 60)).astype(np.float32)
    if holes:
        disp[rng.random(disp.shape) < holes] = np.nan
    else:
        disp[5, :] = np.nan
    allowed = np.ones_like(disp, dtype=bool)
    allowed[20:] = False
    return candidate_anchors(disp, allowed, radius=4, pos_offset=1, neg_high=10), disp


def _sampler(seed: int = 0) -> tuple[TripletPatchSampler, np.ndarray]:
    anchors, disp = _anchors(0)
    return TripletPatchSampler([anchors], 64, 5, seed, 1, 4, 10), disp


def test_offsets_and_bounds():
    s, disp = _sampler()
    for b in s.epoch(0):
        d = np.rint(disp[b.y, b.x_anchor])
        xr = b.x_anchor - d
        assert np.all(np.abs(b.x_pos - xr) <= 1)
        o = np.abs(b.x_neg - xr)
        assert np.all((o >= 4) & (o <= 10))
        assert np.all(b.y < 20) and np.all(b.y != 5)  # allowed rows, ground truth only
        for xs in (b.x_anchor, b.x_pos, b.x_neg):
            assert np.all((xs >= 4) & (xs < 60 - 4))
        assert np.all((b.y >= 4) & (b.y < 30 - 4))


def test_both_signs_and_every_offset_appear():
    s, disp = _sampler()
    b = s.draw(np.random.default_rng(1), 5000)
    xr = b.x_anchor - np.rint(disp[b.y, b.x_anchor])
    assert set(np.unique(b.x_pos - xr)) == {-1, 0, 1}
    assert set(np.unique(b.x_neg - xr)) == set(range(-10, -3)) | set(range(4, 11))


def test_draws_are_fixed_by_seed_and_epoch_and_split_across_ranks():
    a, _ = _sampler(3)
    b, _ = _sampler(3)
    ea, eb = list(a.epoch(2)), list(b.epoch(2))
    assert all(np.array_equal(x.x_neg, y.x_neg) for x, y in zip(ea, eb, strict=True))
    assert not np.array_equal(ea[0].x_neg, next(iter(a.epoch(3))).x_neg)
    r0, r1 = list(a.epoch(2, 0, 2)), list(a.epoch(2, 1, 2))
    assert len(r0) + len(r1) == len(ea)
    assert np.array_equal(r1[0].x_anchor, ea[1].x_anchor)


def test_gather_patches_equals_slicing():
    img = torch.arange(2 * 3 * 12 * 14, dtype=torch.float32).view(2, 3, 12, 14)
    pair, y, x = torch.tensor([1, 0]), torch.tensor([5, 4]), torch.tensor([6, 9])
    p = gather_patches(img, pair, y, x, 4)
    assert p.shape == (2, 3, 9, 9)
    assert torch.equal(p[0], img[1, :, 1:10, 2:11])
    assert torch.equal(p[1], img[0, :, 0:9, 5:14])


def _rows_sampler(rows: int, negatives: str = "one") -> tuple[TripletPatchSampler, tuple]:
    anchors, _ = _anchors(2, holes=0.2)
    s = TripletPatchSampler([anchors, anchors], 64, 6, 0, 1, 4, 10, rows, negatives)
    return s, anchors


def test_a_row_step_takes_every_anchor_of_distinct_rows():
    s, (ys, xs, _) = _rows_sampler(3)
    per_row = {y: set(xs[ys == y].tolist()) for y in np.unique(ys)}
    seen = set()
    for b in s.epoch(0):
        rows = set(zip(b.pair.tolist(), b.y.tolist(), strict=True))
        assert len(rows) == 3  # distinct (pair, row)s
        for p, y in rows:
            got = b.x_anchor[(b.pair == p) & (b.y == y)]
            assert sorted(got.tolist()) == sorted(per_row[y])  # all of the row, each once
        seen |= rows
    assert len(seen) > 3  # steps differ
    a = [b.x_anchor for b in _rows_sampler(3)[0].epoch(0)]
    assert all(np.array_equal(x, b.x_anchor) for x, b in zip(a, s.epoch(0), strict=True))


def test_hardest_form_gives_every_negative_candidate():
    s, (ys, xs, ds) = _rows_sampler(2, "hardest")
    b = next(iter(s.epoch(1)))
    d = {(y, x): dd for y, x, dd in zip(ys, xs, ds, strict=True)}
    xr = np.array([x - d[(y, x)] for y, x in zip(b.y, b.x_anchor, strict=True)])
    want = np.r_[np.arange(-10, -3), np.arange(4, 11)]
    assert b.x_neg.shape == (len(b.y), 14)
    assert np.array_equal(b.x_neg - xr[:, None], np.broadcast_to(want, b.x_neg.shape))
    assert np.all(np.abs(b.x_pos - xr) <= 1)
    one = s.draw(np.random.default_rng(0), 50, negatives="one")  # the validation form
    assert one.x_neg.shape == (50,)


def test_pixel_form_is_unchanged_by_the_row_option():
    a, _ = _sampler(5)
    anchors, _ = _anchors(0)
    b = TripletPatchSampler([anchors], 64, 5, 5, 1, 4, 10, rows_per_step=0, negatives="one")
    for x, y in zip(a.epoch(1), b.epoch(1), strict=True):
        assert np.array_equal(x.x_neg, y.x_neg) and np.array_equal(x.x_anchor, y.x_anchor)
    # the draws of the first version, recomputed by hand: integers, offsets, signs in that order
    g = np.random.default_rng([5, 1])
    i = g.integers(0, len(a), 64)
    o_pos = g.integers(-1, 2, 64)
    o_neg = g.integers(4, 11, 64) * g.choice([-1, 1], 64)
    first = next(iter(a.epoch(1)))
    xr = a.x[i] - a.d[i]
    assert np.array_equal(first.x_pos, xr + o_pos) and np.array_equal(first.x_neg, xr + o_neg)
