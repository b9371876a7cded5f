"""Soft nearest neighbour loss (Frosst, Papernot, Hinton 2019)."""

from __future__ import annotations

import torch
from torch import nn

from simlearn import distances
from simlearn.distances import LOSS_NAMES, SQUARED_L2, Distance
from simlearn.losses._checks import check_embeddings, check_labels, check_positive


class SoftNearestNeighborLoss(nn.Module):
    """Negative log-probability that a point's stochastic nearest neighbour is of its class.

    N. Frosst, N. Papernot, G. Hinton, "Analyzing and Improving Representations with the Soft
    Nearest Neighbor Loss", ICML 2019, https://arxiv.org/abs/1902.01889 (Eq. 1)

    For a batch ``x_1..x_b`` with labels ``y`` and temperature ``T``::

        L = -1/b sum_i log( sum_{j != i, y_j = y_i} exp(-||x_i - x_j||^2 / T)
                            / sum_{k != i} exp(-||x_i - x_k||^2 / T) )

    Anchors with no other sample of their class have an empty numerator (log 0) and are skipped:
    the mean runs over the anchors that have a positive. Both sums are computed with logsumexp,
    so far-apart points (all ``exp`` underflowing) still give a finite loss and gradient. If no
    anchor has a positive, the loss is a zero that still has a ``grad_fn``.

    The paper also learns ``T`` (optimising over ``1/T``); here it is a fixed hyper-parameter.

    Args:
        temperature: ``T > 0``; small values make the neighbour choice hard, large values soft.
        distance: the ``||x_i - x_j||^2`` above (a similarity's values are used as ``-d``): a
            :mod:`simlearn.distances` object or loss name, default ``SQUARED_L2``, the paper's.
    """

    def __init__(self, temperature: float = 1.0, distance: Distance | str = SQUARED_L2) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.distance = distances.get(distance, names=LOSS_NAMES)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, distance={self.distance.name!r}"

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over anchors with a positive, of ``emb (B, D)`` with ``labels (B,)``."""
        check_embeddings("emb", emb)
        check_labels(labels, emb.shape[0])
        d = self.distance.as_dissimilarity(self.distance.pairwise(emb, emb))  # (B, B)
        logits = -d / self.temperature  # (B, B)
        same = labels[:, None] == labels[None, :]  # (B, B)
        eye = torch.eye(emb.shape[0], dtype=torch.bool, device=emb.device)
        pos_mask = same & ~eye  # (B, B)
        has_pos = pos_mask.any(dim=1)  # (B,)
        if not bool(has_pos.any()):
            return emb.sum() * 0.0
        # Keep only anchors with a positive: an all -inf row would give a NaN gradient.
        logits, pos_mask, others = logits[has_pos], pos_mask[has_pos], ~eye[has_pos]  # (A, B)
        neg_inf = torch.tensor(float("-inf"), dtype=logits.dtype, device=logits.device)
        log_num = torch.where(pos_mask, logits, neg_inf).logsumexp(dim=1)  # (A,)
        log_den = torch.where(others, logits, neg_inf).logsumexp(dim=1)  # (A,)
        return -(log_num - log_den).mean()
