"""NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen et al. 2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simlearn import distances
from simlearn.distances import COSINE, LOSS_NAMES, Distance
from simlearn.losses._checks import check_positive, check_same_shape


class NTXentLoss(nn.Module):
    """Each view must pick the other view of its sample among the 2N-1 other views of the batch.

    T. Chen, S. Kornblith, M. Norouzi, G. Hinton, "A Simple Framework for Contrastive Learning of
    Visual Representations", ICML 2020, https://arxiv.org/abs/2002.05709 (Eq. 1 and Alg. 1)

    Stack the views as ``z = [z1; z2]`` (2N rows), let ``sim`` be cosine similarity, ``t`` the
    temperature and ``pos(k)`` the other view of sample ``k`` (``k +- N``)::

        l(k) = -log( exp(sim(z_k, z_pos(k)) / t) / sum_{a != k} exp(sim(z_k, z_a) / t) )
        L = 1/(2N) sum_k l(k)

    so each anchor has one positive and 2N-2 negatives (every view of every other sample).

    Args:
        temperature: ``t > 0``; the paper tunes it (0.1 to 1.0) with the batch size.
        distance: ``sim`` (larger = closer; a distance is negated): a :mod:`simlearn.distances`
            object or loss name, default ``COSINE``, the paper's.
    """

    def __init__(self, temperature: float = 0.5, distance: Distance | str = COSINE) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.distance = distances.get(distance, names=LOSS_NAMES)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, distance={self.distance.name!r}"

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """Mean over the 2N views; row i of ``z1 (N, D)`` and of ``z2 (N, D)`` is one sample."""
        check_same_shape(("z1", "z2"), (z1, z2))
        n = z1.shape[0]
        if n == 0:
            raise ValueError("z1 and z2 must hold at least one sample; got N=0")
        z = torch.cat([z1, z2])  # (2N, D)
        sim = -self.distance.as_dissimilarity(self.distance.pairwise(z, z))  # (2N, 2N)
        logits = sim / self.temperature  # (2N, 2N) cosine / t
        eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(eye, float("-inf"))  # a view is not its own candidate
        idx = torch.arange(n, device=z.device)
        targets = torch.cat([idx + n, idx])  # (2N,) row k's positive: the other view
        return F.cross_entropy(logits, targets)
