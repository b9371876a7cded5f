"""In-batch mining: the triplets or pairs a batch offers to a triplet or contrastive loss.

Mining only chooses indices, so it runs under ``torch.no_grad()`` on detached embeddings; the loss
then recomputes distances on the selected rows with gradients, e.g.::

    a, p, n = mine_triplets(emb, labels, "semihard", margin=0.2)
    loss = TripletMarginLoss(margin=0.2)(emb[a], emb[p], emb[n])

    i, j, same = all_pairs(labels)
    loss = ContrastiveLoss(margin=1.0)(emb[i], emb[j], same)
"""

from __future__ import annotations

from typing import Final

import torch

from simlearn import distances
from simlearn.distances import LOSS_NAMES, Distance
from simlearn.losses._checks import check_embeddings, check_labels, check_nonnegative

STRATEGIES: Final[tuple[str, ...]] = ("all", "hard", "semihard")

# Anchors are processed in chunks so the (chunk, B, B) triplet mask stays under ~16M entries.
_MAX_MASK_ENTRIES: Final[int] = 1 << 24


@torch.no_grad()
def mine_triplets(
    emb: torch.Tensor,
    labels: torch.Tensor,
    strategy: str = "all",
    margin: float = 0.2,
    distance: Distance | str = "euclidean",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices ``(a_idx, p_idx, n_idx)`` of the in-batch triplets that ``strategy`` keeps.

    A valid triplet has ``y_a = y_p``, ``a != p`` and ``y_n != y_a``. With ``d`` the distance
    (for a similarity, e.g. ``"dot"``, every inequality is mirrored: ``s_an > s_ap`` etc.):

    - ``"all"``: every valid triplet.
    - ``"hard"``: the negative is closer than the positive, ``d_an < d_ap`` (the triplet is
      ordered wrongly).
    - ``"semihard"``: the negative is farther than the positive but inside the margin,
      ``d_ap < d_an < d_ap + margin`` (FaceNet, Schroff et al. 2015,
      https://arxiv.org/abs/1503.03832, Eq. 4).

    Args:
        emb: ``(B, D)`` embeddings; used detached.
        labels: ``(B,)`` class labels.
        strategy: one of ``"all"``, ``"hard"``, ``"semihard"``.
        margin: ``>= 0``, in the units of ``distance``; used by ``"semihard"``.
        distance: a :mod:`simlearn.distances` object, or a loss name: ``"euclidean"``,
            ``"squared_euclidean"``, ``"dot"`` (the cosine similarity, see
            :data:`simlearn.distances.LOSS_NAMES`).

    Returns:
        Three int64 tensors ``(T,)`` on ``emb``'s device, in lexicographic ``(a, p, n)`` order.
    """
    if strategy not in STRATEGIES:
        choices = ", ".join(repr(s) for s in STRATEGIES)
        raise ValueError(f"strategy={strategy!r} is not supported; allowed: {choices}")
    margin = check_nonnegative("margin", margin)
    dist_fn = distances.get(distance, names=LOSS_NAMES)
    check_embeddings("emb", emb)
    check_labels(labels, emb.shape[0])

    emb = emb.detach()
    labels = labels.to(emb.device)
    b = emb.shape[0]
    same = labels[:, None] == labels[None, :]  # (B, B)
    eye = torch.eye(b, dtype=torch.bool, device=emb.device)
    pos_mask = same & ~eye  # (B, B) [a, p]
    neg_mask = ~same  # (B, B) [a, n]
    # Smaller = closer whatever the distance, so one set of inequalities serves all of them.
    dist = None if strategy == "all" else dist_fn.as_dissimilarity(dist_fn.pairwise(emb, emb))

    chunk = max(1, _MAX_MASK_ENTRIES // max(1, b * b))
    found: list[torch.Tensor] = []
    for start in range(0, b, chunk):
        rows = slice(start, min(start + chunk, b))
        keep = pos_mask[rows, :, None] & neg_mask[rows, None, :]  # (C, B, B) [a, p, n]
        if dist is not None:
            d_ap = dist[rows, :, None]  # (C, B, 1)
            d_an = dist[rows, None, :]  # (C, 1, B)
            if strategy == "hard":
                keep &= d_an < d_ap
            else:  # semihard
                keep &= (d_ap < d_an) & (d_an < d_ap + margin)
        idx = keep.nonzero()  # (T_c, 3), row-major: lexicographic in (a, p, n)
        idx[:, 0] += start
        found.append(idx)
    triplets = torch.cat(found) if found else torch.empty(0, 3, dtype=torch.long, device=emb.device)
    return triplets[:, 0], triplets[:, 1], triplets[:, 2]


def all_pairs(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every unordered pair ``i < j`` of a batch, for a contrastive loss.

    Args:
        labels: ``(B,)`` class labels.

    Returns:
        ``(i, j, same)``: int64 ``(P,)``, int64 ``(P,)`` and bool ``(P,)`` with
        ``P = B (B - 1) / 2`` and ``same[k] = labels[i[k]] == labels[j[k]]``, in lexicographic
        ``(i, j)`` order on ``labels``' device.
    """
    if labels.ndim != 1:
        raise ValueError(f"labels must have shape (B,); got {tuple(labels.shape)}")
    i, j = torch.triu_indices(
        labels.shape[0], labels.shape[0], offset=1, device=labels.device
    )  # (2, P) -> (P,), (P,)
    return i, j, labels[i] == labels[j]
