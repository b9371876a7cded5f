"""Triplet margin loss (Hoffer & Ailon 2015; Schroff et al. 2015, FaceNet)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from simlearn import distances
from simlearn.distances import LOSS_NAMES, Distance
from simlearn.losses._checks import check_nonnegative, check_same_shape


class TripletObjective(nn.Module):
    """What every triplet loss shares: margin, distance, hinge or soft margin.

    ``penalty(v)`` turns violations ``v = d_ap - d_an`` (mirrored for similarities) into the
    loss: ``mean(max(0, v + margin))``, or ``mean(softplus(v))`` when ``soft``.
    """

    def __init__(
        self, margin: float = 0.2, distance: Distance | str = "euclidean", soft: bool = False
    ) -> None:
        super().__init__()
        self.margin = check_nonnegative("margin", margin)
        self.distance = distances.get(distance, names=LOSS_NAMES)
        if not isinstance(soft, bool):
            raise ValueError(f"soft={soft!r} is not allowed; expected True or False")
        self.soft = soft

    def extra_repr(self) -> str:
        return f"margin={self.margin}, distance={self.distance.name!r}, soft={self.soft}"

    def penalty(self, violation: torch.Tensor) -> torch.Tensor:
        if self.soft:
            return F.softplus(violation).mean()
        return (violation + self.margin).clamp_min(0.0).mean()


class TripletMarginLoss(TripletObjective):
    """Each anchor must be closer to its positive than to its negative, by a margin.

    E. Hoffer, N. Ailon, "Deep metric learning using Triplet network", SIMBAD 2015,
    https://arxiv.org/abs/1412.6622 ; F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A
    Unified Embedding for Face Recognition and Clustering", CVPR 2015,
    https://arxiv.org/abs/1503.03832

    Over ``T`` triplets (anchor, positive, negative)::

        distance:   L = 1/T sum_t max(0, d(a_t, p_t) - d(a_t, n_t) + alpha)
        similarity: L = 1/T sum_t max(0, s(a_t, n_t) - s(a_t, p_t) + alpha)    (e.g. "dot")

    ``soft=True`` replaces the hinge by the soft margin of A. Hermans, L. Beyer, B. Leibe, "In
    Defense of the Triplet Loss for Person Re-Identification", 2017,
    https://arxiv.org/abs/1703.07737 : ``L = 1/T sum_t softplus(d_ap - d_an)`` (resp.
    ``softplus(s_an - s_ap)``). The soft margin has no ``alpha``: ``margin`` is then ignored.

    FaceNet uses squared Euclidean distances on L2-normalised embeddings (``"squared_euclidean"``
    on normalised inputs); Hermans et al. prefer the plain Euclidean distance (the default).

    Args:
        margin: ``alpha >= 0``, in the units of ``distance``; unused when ``soft=True``.
        distance: a :mod:`simlearn.distances` object, or a loss name: ``"euclidean"``,
            ``"squared_euclidean"``, ``"dot"`` (the cosine similarity, see
            :data:`simlearn.distances.LOSS_NAMES`).
        soft: softplus instead of the hinge.
    """

    def forward(
        self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
    ) -> torch.Tensor:
        """Mean loss over triplets; ``anchor``, ``positive``, ``negative`` are each ``(T, D)``.

        ``T = 0`` (nothing mined) gives a zero that still has a ``grad_fn``.
        """
        check_same_shape(("anchor", "positive", "negative"), (anchor, positive, negative))
        if anchor.shape[0] == 0:
            # No triplet (e.g. none mined in this batch): a zero that keeps the graph connected.
            return (anchor.sum() + positive.sum() + negative.sum()) * 0.0
        d_ap = self.distance.rowwise(anchor, positive)  # (T,)
        d_an = self.distance.rowwise(anchor, negative)  # (T,)
        violation = self.distance.violation(d_ap, d_an)  # (T,) > 0: negative is the closer
        return self.penalty(violation)
