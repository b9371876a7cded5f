"""Batch samplers for metric learning. Each yields index arrays, deterministic per (seed, epoch,
rank), so a resumed run sees exactly the batches an uninterrupted one would have seen, and each
rank of a distributed run draws its own share of the epoch's batches.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def _rng(seed: int, epoch: int, rank: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, rank])


def _steps(total: int, world_size: int) -> int:
    return max(1, total // world_size)


class _ByClass:
    def __init__(self, labels: np.ndarray) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or len(labels) == 0:
            raise ValueError(f"labels must be a non-empty 1-D array, got shape {labels.shape}")
        self.labels = labels
        self.classes = np.unique(labels)
        self.members = {c: np.flatnonzero(labels == c) for c in self.classes}


class PKSampler(_ByClass):
    """Batches of P classes x K samples each (Hermans et al. 2017).

    A class with fewer than K samples is drawn with replacement. One epoch has
    ``steps_per_epoch`` batches (default: ``len(labels) // (P*K)``), split across ranks.
    Each batch is ordered class by class: ``[c1 x K, c2 x K, ...]``.
    """

    def __init__(
        self, labels: np.ndarray, p: int, k: int, seed: int = 0, steps_per_epoch: int | None = None
    ) -> None:
        super().__init__(labels)
        if p < 2 or p > len(self.classes):
            raise ValueError(
                f"sampler.classes_per_batch={p}: must be between 2 and the number of training "
                f"classes ({len(self.classes)})"
            )
        if k < 2:
            raise ValueError(f"sampler.samples_per_class={k}: must be >= 2")
        self.p, self.k, self.seed = p, k, seed
        self.steps_per_epoch = steps_per_epoch or max(1, len(self.labels) // (p * k))

    def epoch(self, epoch: int, rank: int = 0, world_size: int = 1) -> Iterator[np.ndarray]:
        rng = _rng(self.seed, epoch, rank)
        for _ in range(_steps(self.steps_per_epoch, world_size)):
            chosen = rng.choice(self.classes, size=self.p, replace=False)
            yield np.concatenate(
                [
                    rng.choice(m, size=self.k, replace=len(m) < self.k)
                    for m in (self.members[c] for c in chosen)
                ]
            )


class PairSampler(_ByClass):
    """Balanced siamese pairs: half of each batch same-class pairs, half different-class pairs.

    Yields ``(i, j, same)``: index arrays (B,) and a bool array (B,). A positive pair never pairs
    a sample with itself.
    """

    def __init__(
        self, labels: np.ndarray, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None
    ) -> None:
        super().__init__(labels)
        if len(self.classes) < 2:
            raise ValueError("pair sampling needs at least 2 classes in the training split")
        if not any(len(m) >= 2 for m in self.members.values()):
            raise ValueError("pair sampling needs a class with at least 2 samples")
        self.batch_size, self.seed = batch_size, seed
        self.steps_per_epoch = steps_per_epoch or max(1, len(self.labels) // batch_size)
        self._pos_classes = np.array([c for c in self.classes if len(self.members[c]) >= 2])

    def epoch(
        self, epoch: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        rng = _rng(self.seed, epoch, rank)
        n_pos = self.batch_size // 2
        n_neg = self.batch_size - n_pos
        for _ in range(_steps(self.steps_per_epoch, world_size)):
            pc = rng.choice(self._pos_classes, size=n_pos)
            pos = np.array([rng.choice(self.members[c], size=2, replace=False) for c in pc])
            nc = np.array([rng.choice(self.classes, size=2, replace=False) for _ in range(n_neg)])
            neg = np.array(
                [[rng.choice(self.members[a]), rng.choice(self.members[b])] for a, b in nc]
            )
            i = np.concatenate([pos[:, 0], neg[:, 0]])
            j = np.concatenate([pos[:, 1], neg[:, 1]])
            same = np.concatenate([np.ones(n_pos, bool), np.zeros(n_neg, bool)])
            yield i, j, same


class TripletSampler(_ByClass):
    """Random triplets (a, p, n): a uniform anchor, a different sample of its class, a sample of
    another class."""

    def __init__(
        self, labels: np.ndarray, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None
    ) -> None:
        super().__init__(labels)
        if len(self.classes) < 2:
            raise ValueError("triplet sampling needs at least 2 classes in the training split")
        self.batch_size, self.seed = batch_size, seed
        self.steps_per_epoch = steps_per_epoch or max(1, len(self.labels) // batch_size)
        self._anchors = np.concatenate([m for m in self.members.values() if len(m) >= 2])

    def epoch(
        self, epoch: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        rng = _rng(self.seed, epoch, rank)
        for _ in range(_steps(self.steps_per_epoch, world_size)):
            a = rng.choice(self._anchors, size=self.batch_size)
            p = np.empty_like(a)
            n = np.empty_like(a)
            for t, anchor in enumerate(a):
                c = self.labels[anchor]
                m = self.members[c]
                p[t] = m[(np.searchsorted(m, anchor) + rng.integers(1, len(m))) % len(m)]
                other = self.classes[self.classes != c]
                n[t] = rng.choice(self.members[rng.choice(other)])
            yield a, p, n


class RandomBatchSampler:
    """Batches of ``batch_size`` distinct samples, labels unused (self-supervised training).

    Each rank shuffles with its own generator and takes ``steps_per_epoch // world_size`` batches
    (default: one pass over the data, the last partial batch dropped). Every batch also carries a
    seed for its random views, so those too are fixed by (seed, epoch, rank)."""

    def __init__(
        self, n: int, batch_size: int, seed: int = 0, steps_per_epoch: int | None = None
    ) -> None:
        if n < 2:
            raise ValueError(f"random batches need at least 2 samples, got {n}")
        self.n, self.seed = n, seed
        self.batch_size = min(batch_size, n)
        self.steps_per_epoch = steps_per_epoch or max(1, n // self.batch_size)

    def epoch(
        self, epoch: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[tuple[np.ndarray, int]]:
        rng = _rng(self.seed, epoch, rank)
        order, start = rng.permutation(self.n), 0
        for _ in range(_steps(self.steps_per_epoch, world_size)):
            if start + self.batch_size > self.n:  # a new pass over the data
                order, start = rng.permutation(self.n), 0
            yield order[start : start + self.batch_size], int(rng.integers(2**62))
            start += self.batch_size
