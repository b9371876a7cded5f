"""Seeded, class-stratified, leak-free splits: which sample goes to train, val or test.

Identical samples (same SHA-256) and related ones (a photo and its sketches) form a group, and a
group is never cut across splits. Every function draws from the generator or seed it is given and
visits groups in sorted order, so a split depends on the seed and the data alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SPLITS = ("train", "val", "test")


def _round_half_up(x: float) -> int:
    return int(np.floor(x + 0.5))


def carve_stratified(
    labels: np.ndarray, groups: np.ndarray, fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Pick about ``fraction`` of the groups of every class, keeping each group whole.

    A group (e.g. all samples with one SHA-256, or one photo with its sketches) takes the label
    of its first member. In each class, ``round(n_groups * fraction)`` groups are drawn at
    random. Groups are visited in sorted order, so the result depends on the seed and the data,
    not on the order of the rows.

    Returns:
        bool (N,): True for the samples of the picked groups.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction={fraction}: must be in [0, 1)")
    if len(labels) != len(groups):
        raise ValueError(f"labels ({len(labels)}) and groups ({len(groups)}) differ in length")
    if len(labels) == 0:
        return np.zeros(0, dtype=bool)
    unique, first, inverse = np.unique(groups, return_index=True, return_inverse=True)
    group_labels = labels[first]  # (G,)
    picked = np.zeros(len(unique), dtype=bool)
    for c in np.unique(group_labels):
        members = np.flatnonzero(group_labels == c)
        take = _round_half_up(len(members) * fraction)
        picked[rng.permutation(members)[:take]] = True
    return picked[inverse.reshape(-1)]


def assign_splits(
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    official: np.ndarray | None = None,
) -> np.ndarray:
    """Seeded, class-stratified, group-aware train/val/test split.

    Without ``official``: ``test_fraction`` of the groups of every class go to test, then
    ``val_fraction`` of the remaining pool to val, the rest to train. With ``official`` (values
    "train" | "test"): its test is kept and val is carved from its train only.

    Returns:
        str array (N,) of "train" | "val" | "test".
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    rng = np.random.default_rng(seed)
    split = np.full(len(labels), "train", dtype=object)
    if official is None:
        is_test = carve_stratified(labels, groups, test_fraction, rng)
    else:
        official = np.asarray(official)
        bad = sorted(set(official.tolist()) - {"train", "test"})
        if bad:
            raise ValueError(f"official split values {bad}: allowed are 'train' and 'test'")
        is_test = official == "test"
    split[is_test] = "test"
    pool = np.flatnonzero(~is_test)
    is_val = carve_stratified(labels[pool], groups[pool], val_fraction, rng)
    split[pool[is_val]] = "val"
    return split


def drop_cross_split_duplicates(split: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Mark for dropping every val/test sample whose hash also occurs in an earlier split.

    Earlier means train before val before test: a test image identical to a training image would
    measure memory, not generalisation.

    Returns:
        bool (N,): True for the samples to keep.
    """
    split = np.asarray(split)
    hashes = np.asarray(hashes)
    keep = np.ones(len(split), dtype=bool)
    seen: set[str] = set()
    for name in SPLITS:
        rows = np.flatnonzero(split == name)
        keep[rows] = [h not in seen for h in hashes[rows]]
        seen.update(hashes[rows].tolist())
    return keep


def stratified_subsample(labels: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` indices, drawn at random with class proportions kept.

    Quotas are ``cap * n_c / n`` rounded by largest remainder, so they sum to ``cap`` exactly.

    Returns:
        sorted int64 indices into ``labels``.
    """
    labels = np.asarray(labels)
    if cap < 1:
        raise ValueError(f"cap={cap}: must be >= 1")
    n = len(labels)
    if n <= cap:
        return np.arange(n, dtype=np.int64)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * cap / n
    quota = np.floor(exact).astype(np.int64)
    remainder = cap - int(quota.sum())
    order = np.argsort(-(exact - quota), kind="stable")  # largest fractional parts first
    quota[order[:remainder]] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=q, replace=False)
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def split_pairs(
    pair_ids: Sequence[str], *, val_fraction: float, seed: int, max_per_split: int | None = None
) -> dict[str, str]:
    """Seeded train/val split of stereo pairs (no test: public stereo test sets have no GT).

    ``round(n * val_fraction)`` pairs go to val. With ``max_per_split`` each split keeps at most
    that many pairs (a seeded random subset).

    Returns:
        pair_id -> "train" | "val", for the kept pairs only.
    """
    ids = sorted(pair_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("pair ids are not unique")
    rng = np.random.default_rng(seed)
    order = [ids[i] for i in rng.permutation(len(ids))]
    n_val = _round_half_up(len(ids) * val_fraction)
    parts = {"val": order[:n_val], "train": order[n_val:]}
    if max_per_split is not None:
        parts = {k: v[:max_per_split] for k, v in parts.items()}
    return {pid: split for split, members in parts.items() for pid in members}
