"""Contrastive (siamese) loss of Hadsell, Chopra and LeCun (2006)."""

from __future__ import annotations

import torch
from torch import nn

from simlearn import distances
from simlearn.distances import LOSS_NAMES, Distance
from simlearn.losses._checks import check_nonnegative, check_same_shape


class ContrastiveLoss(nn.Module):
    """Pull same-class pairs together, push different-class pairs beyond a margin.

    R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an Invariant Mapping",
    CVPR 2006, http://yann.lecun.com/exdb/publis/pdf/hadsell-chopra-lecun-06.pdf

    For pairs ``(a_k, b_k)`` with ``y_k = 1`` when they are of one class and ``d = d(a_k, b_k)``::

        L = 1/B sum_k [ y_k * d^2 + (1 - y_k) * max(0, m - d)^2 ]

    The paper writes each term with a factor 1/2; it is dropped here (it only halves the
    gradient, i.e. the learning rate), so ``L`` is the plain mean of the per-pair terms.

    The margin form needs a distance (smaller = closer), so ``distance`` is ``"euclidean"`` (the
    paper's choice) or ``"squared_euclidean"`` (then ``d`` itself is the squared distance and the
    terms are its squares), or another distance object of :mod:`simlearn.distances` (L1,
    L-infinity); similarities (``"dot"``, the cosine) are rejected.

    Args:
        margin: ``m >= 0``; different-class pairs farther apart than ``m`` cost nothing.
        distance: ``"euclidean"``, ``"squared_euclidean"`` or a non-similarity distance object.
    """

    def __init__(self, margin: float = 1.0, distance: Distance | str = "euclidean") -> None:
        super().__init__()
        self.margin = check_nonnegative("margin", margin)
        self.distance = distances.get(
            distance, ("euclidean", "squared_euclidean"), names=LOSS_NAMES
        )
        if self.distance.is_similarity:
            raise ValueError(
                f"distance={self.distance.name!r} is a similarity; the contrastive margin "
                "needs a distance (smaller = closer), e.g. 'euclidean'"
            )

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance.name!r}"

    def forward(self, a: torch.Tensor, b: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
        """Mean contrastive loss over pairs ``(a (B, D), b (B, D))`` labelled ``same (B,) bool``.

        ``B = 0`` gives a zero that still has a ``grad_fn``.
        """
        check_same_shape(("a", "b"), (a, b))
        if same.shape != (a.shape[0],):
            raise ValueError(
                f"same must have shape ({a.shape[0]},) to match a and b; got {tuple(same.shape)}"
            )
        if a.shape[0] == 0:
            # No pair (e.g. a batch of one): a zero that keeps the graph connected.
            return (a.sum() + b.sum()) * 0.0
        d = self.distance.rowwise(a, b)  # (B,)
        same = same.to(device=d.device, dtype=torch.bool)  # labels may come from the CPU
        pull = d.pow(2)  # (B,) same class: shrink the distance
        push = (self.margin - d).clamp_min(0.0).pow(2)  # (B,) other class: grow it past m
        return torch.where(same, pull, push).mean()
