"""Batch-hard triplet loss (Hermans, Beyer, Leibe 2017)."""

from __future__ import annotations

import torch

from simlearn.losses._checks import check_embeddings, check_labels
from simlearn.losses.triplet_margin_loss import TripletObjective


class BatchHardTripletLoss(TripletObjective):
    """Triplet loss on each anchor's hardest positive and hardest negative in the batch.

    A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
    Re-Identification", 2017, https://arxiv.org/abs/1703.07737 (Eq. 5)

    For a batch ``x_1..x_B`` with labels ``y``, using the distance ``d``::

        L = 1/|A| sum_{i in A} max(0, alpha + max_{p: y_p = y_i, p != i} d(x_i, x_p)
                                            - min_{n: y_n != y_i} d(x_i, x_n))

    where ``A`` holds the anchors that have at least one positive and one negative; the others are
    skipped. For a similarity (e.g. ``"dot"``) the hardest positive is the least similar, the
    hardest negative the most similar, and the term is ``max(0, alpha + s_an - s_ap)``.
    ``soft=True`` uses the paper's soft margin ``softplus(d_ap - d_an)`` instead, and ignores
    ``margin``.

    If no anchor qualifies (one class only, or every class a singleton), the loss is a zero that
    still has a ``grad_fn``, so ``backward()`` works and the step changes nothing.

    Args:
        margin: ``alpha >= 0``, in the units of ``distance``; unused when ``soft=True``.
        distance: a :mod:`simlearn.distances` object, or a loss name: ``"euclidean"`` (the
            paper's choice), ``"squared_euclidean"``, ``"dot"`` (the cosine similarity).
        soft: softplus instead of the hinge.
    """

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over qualifying anchors of ``emb (B, D)`` with ``labels (B,)``."""
        check_embeddings("emb", emb)
        check_labels(labels, emb.shape[0])
        # Smaller = closer whatever the distance, so "hardest" is a max / min below.
        dist = self.distance.as_dissimilarity(self.distance.pairwise(emb, emb))  # (B, B)
        same = labels[:, None] == labels[None, :]  # (B, B)
        eye = torch.eye(emb.shape[0], dtype=torch.bool, device=emb.device)
        pos_mask = same & ~eye  # (B, B)
        neg_mask = ~same  # (B, B)
        valid = pos_mask.any(dim=1) & neg_mask.any(dim=1)  # (B,)
        if not bool(valid.any()):
            return emb.sum() * 0.0
        dist, pos_mask, neg_mask = dist[valid], pos_mask[valid], neg_mask[valid]  # (A, B)
        inf = torch.tensor(float("inf"), dtype=dist.dtype, device=dist.device)
        hardest_pos = torch.where(pos_mask, dist, -inf).amax(dim=1)  # (A,) farthest positive
        hardest_neg = torch.where(neg_mask, dist, inf).amin(dim=1)  # (A,) closest negative
        violation = hardest_pos - hardest_neg  # (A,)
        return self.penalty(violation)
