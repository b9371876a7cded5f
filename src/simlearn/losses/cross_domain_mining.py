"""Cross-domain triplet mining: a sketch as anchor, photos as positive and negative (the sbir
task's triplet loss). Like :mod:`simlearn.losses.mining` it only chooses indices; the loss then
recomputes the distances of the chosen rows with gradients::

    a, p, n = cross_domain_triplets(es.detach(), ep.detach(), y, "semihard", 0.2, "euclidean")
    loss = TripletMarginLoss(margin=0.2)(es[a], ep[p], ep[n])
"""

from __future__ import annotations

import torch

from simlearn.losses.mining import mine_triplets

__all__ = ["cross_domain_triplets"]


@torch.no_grad()
def cross_domain_triplets(
    es: torch.Tensor,
    ep: torch.Tensor,
    y: torch.Tensor,
    strategy: str,
    margin: float,
    distance: str,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triplets (sketch a, photo p, photo n): ``y_p = y_a != y_n``; indices into ``es``/``ep``.

    ``all`` / ``hard`` / ``semihard``: :func:`simlearn.losses.mine_triplets` on the joint batch
    ``[sketches; photos]``, keeping the triplets whose anchor is a sketch and whose positive and
    negative are photos. ``own``: each sketch with its own photo (row i) and one random photo of
    another category (drawn from ``generator``, by default one seeded with 0); a sketch whose
    category fills the batch has no negative and is left out.

    Args:
        es: (B, D) sketch embeddings; row i is the sketch of photo i.
        ep: (B, D) photo embeddings.
        y: (B,) category of row i (both domains).
        strategy: ``all``, ``hard``, ``semihard`` or ``own``.
        margin: ``>= 0``, in the units of ``distance``; used by ``semihard``.
        distance: a name :func:`~simlearn.losses.mine_triplets` takes (``euclidean``,
            ``squared_euclidean``, ``dot``).
        generator: ``own``: the negatives' random draw (on the CPU).

    Returns:
        Three int64 tensors (T,) on ``es``'s device: sketch rows, photo rows, photo rows.
    """
    b = es.shape[0]
    if strategy == "own":
        g = generator or torch.Generator().manual_seed(0)
        other = (y[None, :] != y[:, None]).cpu()  # (B, B)
        keep = other.any(dim=1)
        scores = torch.rand(b, b, generator=g).masked_fill(~other, -1.0)
        n = scores.argmax(dim=1).to(es.device)
        a = torch.arange(b, device=es.device)[keep.to(es.device)]
        return a, a, n[keep.to(es.device)]
    e = torch.cat([es, ep])  # (2B, D)
    a, p, n = mine_triplets(e, torch.cat([y, y]), strategy, margin, distance)
    keep = (a < b) & (p >= b) & (n >= b)
    return a[keep], p[keep] - b, n[keep] - b
