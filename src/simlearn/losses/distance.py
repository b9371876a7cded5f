"""Pairwise distances and similarities shared by every loss and by in-batch mining.

A loss never assumes that "smaller is closer": it asks the :class:`Distance` whether its values
are a similarity (``is_similarity``, larger = closer, as pytorch-metric-learning's
``is_inverted``) and uses :meth:`Distance.violation` / :meth:`Distance.as_dissimilarity` to
compare a positive with a negative.

Names:

- ``"euclidean"``: ``d(x, y) = ||x - y||_2``, computed as ``sqrt(clamp(||x - y||^2, eps))`` so the
  gradient stays finite where two embeddings coincide (it is 0 there instead of NaN).
- ``"squared_euclidean"``: ``d(x, y) = ||x - y||_2^2``.
- ``"dot"``: ``s(x, y) = x/||x|| . y/||y||``, the dot product of L2-normalised embeddings (cosine
  similarity, in [-1, 1]); a similarity.

Half-precision inputs (float16 / bfloat16, e.g. under autocast) are computed in float32 with
autocast off: these values feed exponentials and square roots, where half precision loses the
ordering of near neighbours.
"""

from __future__ import annotations

from typing import Final

import torch
import torch.nn.functional as F

from simlearn.losses._checks import check_embeddings

DISTANCES: Final[tuple[str, ...]] = ("euclidean", "squared_euclidean", "dot")

# Floor under the squared distance before the square root: sqrt'(0) is infinite.
_SQRT_EPS: Final[float] = 1e-12


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in float32 if it is float16 / bfloat16, unchanged otherwise."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def check_distance(name: str, allowed: tuple[str, ...] = DISTANCES) -> str:
    """Return ``name`` if it is one of ``allowed``, else raise ``ValueError`` naming the choices."""
    if name not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"distance={name!r} is not supported; allowed: {choices}")
    return name


class Distance:
    """One of :data:`DISTANCES`, with its ordering (``is_similarity``) and its two layouts.

    ``pairwise(x (N, D), y (M, D)) -> (N, M)`` and ``rowwise(x (N, D), y (N, D)) -> (N,)``.
    """

    def __init__(self, name: str = "euclidean") -> None:
        self.name: str = check_distance(name)
        # True: larger value = closer pair (pytorch-metric-learning calls this is_inverted).
        self.is_similarity: bool = name == "dot"

    def __repr__(self) -> str:
        return f"Distance({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distance) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All pairs: ``out[i, j] = d(x_i, y_j)`` for ``x (N, D)``, ``y (M, D)`` -> ``(N, M)``."""
        check_embeddings("x", x)
        check_embeddings("y", y)
        if x.shape[1] != y.shape[1]:
            raise ValueError(
                f"x and y must have the same embedding size D; got x "
                f"{tuple(x.shape)} and y {tuple(y.shape)}"
            )
        x, y = full_precision(x), full_precision(y)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.name == "dot":
                return F.normalize(x, dim=1) @ F.normalize(y, dim=1).T  # (N, M)
            # ||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y: one matmul, no (N, M, D) intermediate.
            # Rounding can make it slightly negative for coincident points, hence the clamp.
            x2 = x.pow(2).sum(dim=1, keepdim=True)  # (N, 1)
            y2 = y.pow(2).sum(dim=1, keepdim=True).T  # (1, M)
            d2 = (x2 + y2 - 2.0 * (x @ y.T)).clamp_min(0.0)  # (N, M)
            if self.name == "squared_euclidean":
                return d2
            return d2.clamp_min(_SQRT_EPS).sqrt()  # (N, M)

    def rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Matched rows: ``out[i] = d(x_i, y_i)`` for ``x (N, D)``, ``y (N, D)`` -> ``(N,)``."""
        check_embeddings("x", x)
        check_embeddings("y", y)
        if x.shape != y.shape:
            raise ValueError(
                f"x and y must have the same shape (N, D); got x {tuple(x.shape)} "
                f"and y {tuple(y.shape)}"
            )
        x, y = full_precision(x), full_precision(y)
        with torch.autocast(device_type=x.device.type, enabled=False):
            if self.name == "dot":
                return (F.normalize(x, dim=1) * F.normalize(y, dim=1)).sum(dim=1)  # (N,)
            d2 = (x - y).pow(2).sum(dim=1)  # (N,)
            if self.name == "squared_euclidean":
                return d2
            return d2.clamp_min(_SQRT_EPS).sqrt()  # (N,)

    def as_dissimilarity(self, values: torch.Tensor) -> torch.Tensor:
        """Map values of this distance to an order where smaller = closer (negate similarities)."""
        return -values if self.is_similarity else values

    def violation(self, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """How much closer the negative is than the positive, in this distance's units.

        ``d_ap - d_an`` for a distance, ``s_an - s_ap`` for a similarity: > 0 when the negative is
        closer to the anchor than the positive (pytorch-metric-learning's ``margin(ap, an)``).
        """
        return self.as_dissimilarity(positive) - self.as_dissimilarity(negative)
