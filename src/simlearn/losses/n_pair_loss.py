"""Multi-class N-pair loss (Sohn 2016)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simlearn import distances
from simlearn.distances import DOT, LOSS_NAMES, Distance, full_precision
from simlearn.losses._checks import check_nonnegative, check_same_shape


class NPairLoss(nn.Module):
    """Each anchor must score its own positive above the N-1 other classes' positives.

    K. Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective", NeurIPS 2016,
    https://papers.nips.cc/paper/6200-improved-deep-metric-learning-with-multi-class-n-pair-loss-objective

    Pair ``i`` is ``(f_i, f+_i)`` of class ``i`` and the ``N`` classes all differ. With the raw
    (unnormalised) dot product, as in the paper::

        L = 1/N sum_i log(1 + sum_{j != i} exp(f_i . f+_j - f_i . f+_i))
            + l2_reg * 1/(2N) sum_i (||f_i||^2 + ||f+_i||^2)

    The first term is the cross-entropy of the similarity matrix ``S[i, j] = f_i . f+_j`` with
    targets ``j = i``. The unnormalised dot product lets the loss shrink by growing the norms, so
    the paper adds an L2 penalty on the embeddings; here it is the mean squared norm over the 2N
    embeddings, times ``l2_reg``.

    The caller guarantees that the N pairs are of N distinct classes (e.g. a sampler that draws
    one pair per class); pairs sharing a class would be pushed apart as negatives.

    Args:
        l2_reg: weight ``>= 0`` of the embedding norm penalty (0 disables it).
        distance: the similarity ``S`` is built from (larger = closer; a distance is negated):
            a :mod:`simlearn.distances` object, default ``DOT``, the paper's raw dot product;
            a name is a loss name (:data:`simlearn.distances.LOSS_NAMES`, where "dot" is the
            cosine).
    """

    def __init__(self, l2_reg: float = 0.0, distance: Distance | str = DOT) -> None:
        super().__init__()
        self.l2_reg = check_nonnegative("l2_reg", l2_reg)
        self.distance = distances.get(distance, names=LOSS_NAMES)

    def extra_repr(self) -> str:
        return f"l2_reg={self.l2_reg}, distance={self.distance.name!r}"

    def forward(self, anchors: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
        """N-pair loss of ``anchors (N, D)`` against ``positives (N, D)``; row i is class i."""
        check_same_shape(("anchors", "positives"), (anchors, positives))
        if anchors.shape[0] == 0:
            raise ValueError("anchors and positives must hold at least one pair; got N=0")
        anchors, positives = full_precision(anchors), full_precision(positives)
        with torch.autocast(device_type=anchors.device.type, enabled=False):
            # (N, N): S[i, j] = f_i . f+_j, larger = closer
            logits = -self.distance.as_dissimilarity(self.distance.pairwise(anchors, positives))
            targets = torch.arange(anchors.shape[0], device=anchors.device)  # (N,)
            loss = F.cross_entropy(logits, targets)
            if self.l2_reg > 0:
                sq_norms = torch.cat([anchors, positives]).pow(2).sum(dim=1)  # (2N,)
                loss = loss + self.l2_reg * sq_norms.mean()
        return loss
