"""Few-shot episodes: can the embedding recognise a class from a handful of its images?

The protocol of Snell, Swersky and Zemel, "Prototypical Networks for Few-shot Learning",
NeurIPS 2017 (https://arxiv.org/abs/1703.05175), on embeddings that are already computed. An
*N-way K-shot* episode draws N classes, then K support and Q query images of each, all distinct;
the prototype of class n is the mean of its support embeddings,

    c_n = (1 / K) sum_{k} f(x_{n,k}),

and a query is given the class of its nearest prototype, ``argmin_n d(f(q), c_n)`` under the
experiment's distance (:mod:`simlearn.distances`, evaluation dissimilarities: cosine
``1 - cos``, dot ``-q.c``). An episode scores the share of its N x Q queries classified right;
the figure is the mean over E episodes with its 95% confidence interval,
``1.96 * std(acc, ddof=1) / sqrt(E)``, the normal approximation that the field's tables quote
(Snell et al. test on miniImageNet with 600 episodes and 15 queries per class).

Episodes are drawn from a seeded generator of their own per (way, shot), all at once
(:func:`sample_episodes`), and classified a block of episodes per tensor operation
(:func:`episode_accuracies`): no Python loop runs over single episodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import torch

from simlearn import distances
from simlearn.distances import Distance

__all__ = [
    "Episodes",
    "episode_accuracies",
    "fewshot_metrics",
    "mean_ci95",
    "sample_episodes",
]

# elements gathered per block of episodes (queries and supports, or the broadcast differences of
# the Minkowski distances): 4 M (32 MB of float64) whatever D, so raw 784-pixel embeddings cost
# no more memory than 32-d ones
_BLOCK_ELEMENTS: Final[int] = 1 << 22


@dataclass(frozen=True)
class Episodes:
    """Rows of the embedded set, per episode: way n of episode e is class ``classes[e, n]``, its
    support images ``support[e, n]`` and its query images ``query[e, n]`` (all distinct)."""

    classes: np.ndarray  # (E, N) labels
    support: np.ndarray  # (E, N, K) int64 rows
    query: np.ndarray  # (E, N, Q) int64 rows

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(episodes E, ways N, shots K, queries Q)."""
        e, n, k = self.support.shape
        return e, n, k, self.query.shape[2]


def sample_episodes(
    labels: np.ndarray,
    ways: int,
    shots: int,
    queries: int,
    episodes: int,
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> Episodes:
    """``episodes`` N-way K-shot episodes over ``rows`` (default: every row) of ``labels``.

    Each episode draws ``ways`` distinct classes uniformly, then ``shots + queries`` distinct
    images of each class uniformly without replacement (the first ``shots`` support, the rest
    query). Vectorised: one random key per (episode, way, image of the class), sorted.

    Raises:
        ValueError: fewer than ``ways`` classes, or a class with fewer than ``shots + queries``
            images (the message names the keys ``eval.fewshot.*`` to lower).
    """
    labels = np.asarray(labels)
    rows = np.arange(len(labels)) if rows is None else np.asarray(rows, dtype=np.int64)
    classes, inverse, counts = np.unique(labels[rows], return_inverse=True, return_counts=True)
    per_class = shots + queries
    if len(classes) < ways:
        raise ValueError(
            f"eval.fewshot.ways: {ways}-way episodes need {ways} classes; there are {len(classes)}"
        )
    if counts.min() < per_class:
        c = classes[int(np.argmin(counts))]
        raise ValueError(
            f"eval.fewshot: class {c} has {counts.min()} images, fewer than shots + queries = "
            f"{shots} + {queries}; lower eval.fewshot.queries or eval.fewshot.shots"
        )
    # members[c, :counts[c]]: the rows of class c, padded with -1
    order = np.argsort(inverse, kind="stable")
    members = np.full((len(classes), counts.max()), -1, dtype=np.int64)  # (C, M)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(order)) - np.repeat(starts, counts)
    members[inverse[order], slot] = rows[order]
    # N distinct classes per episode: the N smallest of C uniform keys
    picked = np.argsort(rng.random((episodes, len(classes))), axis=1)[:, :ways]  # (E, N)
    # K + Q distinct images per (episode, way): the smallest keys among the class's real members
    keys = rng.random((episodes, ways, members.shape[1]))  # (E, N, M)
    keys[members[picked] < 0] = 2.0  # padding sorts last
    take = np.argsort(keys, axis=2)[:, :, :per_class]  # (E, N, K + Q)
    chosen = np.take_along_axis(members[picked], take, axis=2)
    return Episodes(classes[picked], chosen[:, :, :shots], chosen[:, :, shots:])


def episode_accuracies(
    emb: np.ndarray | torch.Tensor,
    episodes: Episodes,
    distance: Distance | str = "euclidean",
    *,
    block_elements: int = _BLOCK_ELEMENTS,
) -> np.ndarray:
    """(E,) share of each episode's queries whose nearest prototype is their own class's.

    ``emb`` (N_rows, D) holds every row the episodes index; the arithmetic is float64 (in
    float32 the ranking values' cancellation, about 1e-7 of the squared norms, flips near ties
    between the prototypes of 784-d raw pixels). Only the order of the dissimilarities matters,
    so a distance whose ranking values are one matrix product (euclidean, cosine, dot:
    :meth:`~simlearn.distances.Distance.ranking_form`) scores a block of episodes with one
    batched product ``(B, N*Q, D+2) x (B, D+2, N)``; the Minkowski ones (manhattan, chebyshev)
    take :meth:`~simlearn.distances.Distance.exact`, broadcast over the block. A tie goes to the
    lower way index.
    """
    distance = distances.get(distance)
    x = torch.as_tensor(emb.detach().cpu() if isinstance(emb, torch.Tensor) else np.asarray(emb))
    if x.ndim != 2 or not x.is_floating_point():
        raise ValueError(f"emb must be a float (N, D) array, got {x.dtype} {tuple(x.shape)}")
    x = x.double()
    n_ep, ways, shots, n_q = episodes.shape
    dim = x.shape[1]
    support = torch.from_numpy(episodes.support)  # (E, N, K)
    query = torch.from_numpy(episodes.query).reshape(n_ep, ways * n_q)  # (E, N*Q), way by way
    truth = torch.arange(ways).repeat_interleave(n_q)  # (N*Q,) way of each query
    if distance.product:
        q_form = distance.ranking_form(x, gallery=False, name="emb")  # (rows, D + 2)
        per_episode = (ways * n_q + ways * shots) * (dim + 2)
    else:
        per_episode = ways * n_q * ways * dim  # the broadcast differences
    block = max(1, block_elements // per_episode)
    acc = torch.empty(n_ep, dtype=torch.float64)
    for s in range(0, n_ep, block):
        protos = x[support[s : s + block]].mean(dim=2)  # (B, N, D)
        if distance.product:
            b = protos.shape[0]
            p_form = distance.ranking_form(protos.reshape(-1, dim), gallery=True, name="prototypes")
            d = torch.bmm(q_form[query[s : s + block]], p_form.view(b, ways, -1).transpose(1, 2))
        else:
            d = distance.exact(x[query[s : s + block]][:, :, None, :], protos[:, None, :, :])
        acc[s : s + block] = (d.argmin(dim=2) == truth).double().mean(dim=1)  # d: (B, N*Q, N)
    return acc.numpy()


def mean_ci95(acc: np.ndarray) -> tuple[float, float]:
    """Mean of the per-episode accuracies and the half-width of its 95% confidence interval,
    ``1.96 * std(ddof=1) / sqrt(E)``."""
    a = np.asarray(acc, dtype=np.float64)
    if a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need the accuracies of at least 2 episodes, got shape {a.shape}")
    return float(a.mean()), float(1.96 * a.std(ddof=1) / np.sqrt(len(a)))


def fewshot_metrics(
    emb: np.ndarray,
    labels: np.ndarray,
    rows: np.ndarray,
    cfg: Any,
    distance: Distance | str,
    seed: int,
) -> dict[str, float]:
    """Few-shot figures of ``rows`` (the held-out classes' test images) under ``cfg``
    (:class:`~simlearn.config.FewShotConfig`).

    Every configured way N runs as ``min(N, classes)``-way (the same way twice runs once), with
    every shot K. Keys: ``fewshot_<N>way_<K>shot_accuracy`` and ``..._ci95`` (the half-width),
    and, at the first configured way, ``fewshot_<K>shot_accuracy`` / ``fewshot_<K>shot_ci95``
    with ``fewshot_way`` = its N, the headline the report shows whatever N the data allow.
    Each (N, K) draws its episodes from its own generator, seeded by (seed, N, K): adding a shot
    leaves the other figures as they were. A shot K is left out (its keys absent) when a class
    has fewer than ``K + queries`` images: the task's ``check_data`` refuses such params before
    training (:func:`simlearn.evaluation.protocol.check_heldout_evaluation`), so this happens
    only to callers of the library.
    """
    labels = np.asarray(labels)
    _, counts = np.unique(labels[rows], return_counts=True)
    if len(counts) < 2:
        raise ValueError(f"few-shot episodes need 2 classes or more; the rows hold {len(counts)}")
    ways = list(dict.fromkeys(min(w, len(counts)) for w in cfg.ways))
    out: dict[str, float] = {"fewshot_way": float(ways[0])}
    for way in ways:
        for shot in cfg.shots:
            if counts.min() < shot + cfg.queries:
                continue  # too few images to draw from (the tasks' check_data says so earlier)
            rng = np.random.default_rng([seed, way, shot])
            ep = sample_episodes(labels, way, shot, cfg.queries, cfg.episodes, rng, rows)
            mean, ci = mean_ci95(episode_accuracies(emb, ep, distance))
            out[f"fewshot_{way}way_{shot}shot_accuracy"] = mean
            out[f"fewshot_{way}way_{shot}shot_ci95"] = ci
            if way == ways[0]:
                out[f"fewshot_{shot}shot_accuracy"] = mean
                out[f"fewshot_{shot}shot_ci95"] = ci
    return out
