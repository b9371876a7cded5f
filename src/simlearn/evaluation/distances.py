"""The distances between embeddings, and the normalisations of the stored vectors.

Every evaluation and every search ranks a gallery by one of these dissimilarities ``d(q, g)``,
smaller = more alike:

- ``euclidean`` (alias ``l2``): ``||q - g||_2 = sqrt(sum_i (q_i - g_i)^2)``;
- ``manhattan`` (alias ``l1``): ``||q - g||_1 = sum_i |q_i - g_i|`` (Minkowski p = 1);
- ``chebyshev`` (alias ``linf``): ``||q - g||_inf = max_i |q_i - g_i|`` (Minkowski p -> inf);
- ``cosine``: ``1 - q.g / (||q|| ||g||)``, undefined for a zero vector;
- ``dot``: ``-q.g``, the negated dot product (inner product search ranks by the largest
  ``q.g``; negated, it ranks like the others). It is not a metric: it may be negative, and an
  item is not always nearest to itself.

On unit vectors ``||q - g||^2 = 2 - 2 q.g = 2 (1 - cos)``, so ``euclidean``, ``cosine`` and
``dot`` rank identically there.

Normalisations, applied to the stored vectors (queries and gallery alike) before any distance:

- ``none``: the vectors as the model gives them;
- ``l2``: ``x / ||x||_2``, onto the unit sphere;
- ``sqrt``: ``unit(sign(x) * sqrt(|x|))``, the signed square root then ``l2``. It damps the
  "burstiness" of a few large components, which otherwise dominate the distance: the power
  normalisation of Perronnin, Sanchez, Mensink, "Improving the Fisher kernel for large-scale
  image classification", ECCV 2010 (alpha = 1/2), also the RootSIFT of Arandjelovic &
  Zisserman, "Three things everyone should know to improve object retrieval", CVPR 2012.

A zero vector stays zero under ``l2`` and ``sqrt`` (it has no direction), as scikit-learn's
``normalize`` and faiss's ``normalize_L2`` leave it.
"""

from __future__ import annotations

from typing import Final, Literal, TypeVar

import numpy as np
import torch

__all__ = [
    "DISTANCES",
    "DISTANCE_ALIASES",
    "DISTANCE_LABELS",
    "NORMALIZATIONS",
    "canonical_distance",
    "check_normalization",
    "normalize_embeddings",
    "pairwise_distances",
]

Distance = Literal["euclidean", "cosine", "manhattan", "chebyshev", "dot", "l2", "l1", "linf"]
Normalization = Literal["none", "l2", "sqrt"]

#: canonical names, in the order tables show them
DISTANCES: Final[tuple[str, ...]] = ("manhattan", "euclidean", "chebyshev", "cosine", "dot")
#: other accepted names -> canonical name
DISTANCE_ALIASES: Final[dict[str, str]] = {
    "l1": "manhattan",
    "l2": "euclidean",
    "linf": "chebyshev",
}
#: how tables and figures name each distance
DISTANCE_LABELS: Final[dict[str, str]] = {
    "manhattan": "L1",
    "euclidean": "L2",
    "chebyshev": "L\u221e",
    "cosine": "cosine",
    "dot": "dot product",
}
NORMALIZATIONS: Final[tuple[str, ...]] = ("none", "l2", "sqrt")

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def canonical_distance(distance: str, name: str = "distance") -> str:
    """The canonical name of ``distance`` (``l1`` -> ``manhattan``, ...); ValueError listing the
    allowed names when it is none of them."""
    if isinstance(distance, str):
        if distance in DISTANCES:
            return distance
        if distance in DISTANCE_ALIASES:
            return DISTANCE_ALIASES[distance]
    allowed = ", ".join(repr(d) for d in (*DISTANCES, *DISTANCE_ALIASES))
    raise ValueError(f"{name}={distance!r} is not supported; allowed: {allowed}")


def check_normalization(normalize: str, name: str = "normalize") -> str:
    if normalize not in NORMALIZATIONS:
        allowed = ", ".join(repr(n) for n in NORMALIZATIONS)
        raise ValueError(f"{name}={normalize!r} is not supported; allowed: {allowed}")
    return normalize


def normalize_embeddings(x: ArrayT, normalize: Normalization | str) -> ArrayT:
    """``x`` (N, D) under ``normalize`` (none | l2 | sqrt), in its own type and dtype.

    ``none`` returns ``x`` itself; the others return a new array. Rows of zeros stay zero.
    """
    check_normalization(normalize)
    if normalize == "none":
        return x
    if isinstance(x, torch.Tensor):
        t = x.sign() * x.abs().sqrt() if normalize == "sqrt" else x
        return torch.nn.functional.normalize(t, dim=-1)  # x / max(||x||, eps): 0 stays 0
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if normalize == "sqrt":
        a = np.sign(a) * np.sqrt(np.abs(a))
    norms = np.linalg.norm(a, axis=-1, keepdims=True)  # (N, 1)
    return (a / np.where(norms > 0, norms, 1)).astype(a.dtype, copy=False)


def pairwise_distances(
    query: np.ndarray | torch.Tensor,
    gallery: np.ndarray | torch.Tensor,
    distance: Distance | str = "euclidean",
) -> torch.Tensor:
    """(Q, N) distances ``d(query_i, gallery_j)`` in the dtype of ``query``, computed directly
    (from the differences for the Minkowski distances, ``torch.cdist`` without its matrix-product
    shortcut), as a reference and for small blocks; the ranking paths of
    :mod:`~simlearn.evaluation.retrieval` and :mod:`simlearn.search` use faster forms.
    """
    distance = canonical_distance(distance)
    q = torch.as_tensor(query)
    g = torch.as_tensor(gallery).to(q.dtype)
    if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
        raise ValueError(
            f"query and gallery must be (Q, D) and (N, D), got {tuple(q.shape)}, {tuple(g.shape)}"
        )
    if distance == "euclidean":
        return torch.cdist(q, g, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")
    if distance == "manhattan":
        return torch.cdist(q, g, p=1.0)
    if distance == "chebyshev":
        return torch.cdist(q, g, p=float("inf"))
    if distance == "dot":
        return -(q @ g.T)
    qn, gn = q.norm(dim=1, keepdim=True), g.norm(dim=1, keepdim=True)  # (Q, 1), (N, 1)
    if bool((qn == 0).any()) or bool((gn == 0).any()):
        raise ValueError("a zero vector has no cosine distance")
    return 1.0 - (q / qn) @ (g / gn).T
