import numpy as np
import pytest

from simlearn.data.samplers import PairSampler, PKSampler, TripletSampler

LABELS = np.repeat(np.arange(5), [6, 3, 8, 5, 7])


def test_pk_batches_have_p_classes_k_each_and_are_deterministic():
    s = PKSampler(LABELS, p=3, k=4, seed=1)
    batches = list(s.epoch(0))
    assert len(batches) == len(LABELS) // 12
    for b in batches:
        lab = LABELS[b].reshape(3, 4)
        assert (lab == lab[:, :1]).all() and len(set(lab[:, 0])) == 3
        # classes with >= K members are drawn without replacement
        for row, idx in zip(lab, b.reshape(3, 4), strict=True):
            if (LABELS == row[0]).sum() >= 4:
                assert len(set(idx)) == 4
    again = list(PKSampler(LABELS, p=3, k=4, seed=1).epoch(0))
    assert all((a == b).all() for a, b in zip(batches, again, strict=True))
    other_epoch = list(s.epoch(1))
    assert any((a != b).any() for a, b in zip(batches, other_epoch, strict=True))


def test_ranks_draw_different_shares():
    s = PKSampler(LABELS, p=2, k=2, seed=0, steps_per_epoch=6)
    r0, r1 = list(s.epoch(0, 0, 2)), list(s.epoch(0, 1, 2))
    assert len(r0) == len(r1) == 3
    assert any((a != b).any() for a, b in zip(r0, r1, strict=True))


def test_pk_rejects_more_classes_than_exist():
    with pytest.raises(ValueError, match="classes_per_batch=6: must be between 2 and .* \\(5\\)"):
        PKSampler(LABELS, p=6, k=2)


def test_pairs_are_balanced_and_correct():
    i, j, same = next(PairSampler(LABELS, batch_size=64, seed=0).epoch(0))
    assert same.sum() == 32
    assert (LABELS[i[same]] == LABELS[j[same]]).all() and (i[same] != j[same]).all()
    assert (LABELS[i[~same]] != LABELS[j[~same]]).all()


def test_random_triplets_are_valid():
    a, p, n = next(TripletSampler(LABELS, batch_size=200, seed=0).epoch(0))
    assert (LABELS[a] == LABELS[p]).all() and (a != p).all()
    assert (LABELS[a] != LABELS[n]).all()
    # every other member of the anchor's class can be the positive (uniform choice)
    c0 = np.flatnonzero(LABELS == 0)
    assert set(p[np.isin(a, c0)]) <= set(c0)


def test_random_batches_cover_the_data_once_per_pass_and_are_deterministic():
    from simlearn.data.samplers import RandomBatchSampler

    s = RandomBatchSampler(10, 4, seed=3)
    batches = list(s.epoch(0))
    assert len(batches) == 2  # 10 // 4, the partial batch dropped
    rows = np.concatenate([b for b, _ in batches])
    assert len(set(rows.tolist())) == 8 and rows.max() < 10  # distinct within the pass
    again = list(s.epoch(0))
    assert all(
        np.array_equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(batches, again, strict=True)
    )
    assert not np.array_equal(np.concatenate([b for b, _ in s.epoch(1)]), rows)
    assert len({seed for _, seed in batches}) == 2  # each batch its own view seed
    # more steps than one pass: a new permutation once the data run out, batches stay distinct
    long = list(RandomBatchSampler(10, 4, seed=3, steps_per_epoch=5).epoch(0))
    assert len(long) == 5 and all(len(set(b.tolist())) == 4 for b, _ in long)
    # two ranks draw different shares of the same size
    r0 = [b for b, _ in RandomBatchSampler(100, 10, seed=0).epoch(0, 0, 2)]
    r1 = [b for b, _ in RandomBatchSampler(100, 10, seed=0).epoch(0, 1, 2)]
    assert len(r0) == len(r1) == 5 and not np.array_equal(r0[0], r1[0])
    with pytest.raises(ValueError, match="at least 2 samples"):
        RandomBatchSampler(1, 4)
