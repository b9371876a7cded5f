"""Prototypical loss (Snell et al. 2017): an episode's queries against their class prototypes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simlearn import distances
from simlearn.distances import LOSS_NAMES, SQUARED_L2, Distance
from simlearn.losses._checks import check_embeddings, check_positive


class PrototypicalLoss(nn.Module):
    """Cross-entropy of a softmax over negative distances to the class prototypes of an episode.

    J. Snell, K. Swersky, R. Zemel, "Prototypical Networks for Few-shot Learning", NeurIPS 2017,
    https://arxiv.org/abs/1703.05175 (Eq. 1-2, Algorithm 1). An N-way episode has K support
    embeddings ``f(s_{n,k})`` and Q query embeddings ``f(q_{n,j})`` of each class n. The
    prototype of class n is the mean of its support embeddings and each query is classified by
    a softmax over its negative distances to the prototypes::

        c_n = 1/K sum_k f(s_{n,k})
        p(y = n | q) = exp(-d(f(q), c_n) / t) / sum_{n'} exp(-d(f(q), c_n') / t)
        L = -1/(N Q) sum_{n, j} log p(y = n | q_{n,j})

    ``d`` is the squared Euclidean distance in the paper (it makes the classifier linear in
    ``f(q)``, a Bregman divergence). A similarity ``s`` (cosine) enters as ``+s / t``.

    Args:
        distance: ``d``: a :mod:`simlearn.distances` object or loss name (``squared_euclidean``,
            the paper's and the default; ``euclidean``; ``dot``/``cosine``: the cosine
            similarity of the embeddings).
        temperature: ``t > 0``; 1 in the paper (squared distances of unnormalised embeddings).
            Embeddings on the unit sphere have squared distances in [0, 4] and a cosine in
            [-1, 1], where a smaller ``t`` sharpens the softmax.
    """

    def __init__(self, distance: Distance | str = SQUARED_L2, temperature: float = 1.0) -> None:
        super().__init__()
        self.distance = distances.get(distance, names=LOSS_NAMES)
        self.temperature = check_positive("temperature", temperature)

    def extra_repr(self) -> str:
        return f"distance={self.distance.name!r}, temperature={self.temperature}"

    def forward(self, support: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """The mean loss of the queries of one episode.

        Args:
            support: (N, K, D) support embeddings, class n in row n.
            query: (N, Q, D) query embeddings, class n in row n.
        """
        if support.ndim != 3 or query.ndim != 3 or support.shape[0] != query.shape[0]:
            raise ValueError(
                "support and query must be (N, K, D) and (N, Q, D) with the same N classes; got "
                f"{tuple(support.shape)} and {tuple(query.shape)}"
            )
        n, q, dim = query.shape
        check_embeddings("support", support.reshape(-1, support.shape[-1]))
        protos = support.mean(dim=1)  # (N, D)
        values = self.distance.pairwise(query.reshape(n * q, dim), protos)  # (N*Q, N)
        logits = -self.distance.as_dissimilarity(values) / self.temperature  # (N*Q, N)
        target = torch.arange(n, device=query.device).repeat_interleave(q)  # (N*Q,)
        return F.cross_entropy(logits, target)
