"""The one home of the distances between embeddings, and of the normalisations of stored vectors.

A distance is an object, passed to whatever compares embeddings (losses, miners, retrieval
metrics, pair verification, classification probes, the search index), as in
pytorch-metric-learning (``TripletMarginLoss(distance=CosineSimilarity())``): a loss never
assumes that "smaller is closer", it asks the object (``is_similarity``, PML's ``is_inverted``).

=============  =====================  ============  ==========================================
object         names                  label         values ``v(x, y)``
=============  =====================  ============  ==========================================
``MANHATTAN``  ``manhattan``, ``l1``  L1            ``||x - y||_1 = sum_i |x_i - y_i|``
``EUCLIDEAN``  ``euclidean``, ``l2``  L2            ``||x - y||_2 = sqrt(sum_i (x_i - y_i)^2)``
``SQUARED_L2`` ``squared_euclidean``  squared L2    ``||x - y||_2^2``
``CHEBYSHEV``  ``chebyshev``,         L∞            ``||x - y||_inf = max_i |x_i - y_i|``
               ``linf``
``COSINE``     ``cosine``             cosine        ``cos(x, y) = x/||x|| . y/||y||``, in [-1, 1]
``DOT``        ``dot``                dot product   ``x . y``
=============  =====================  ============  ==========================================

L1 and L-infinity are the Minkowski distances of p = 1 and p -> inf. ``COSINE`` and ``DOT`` are
similarities (larger = closer); the others are distances (smaller = closer). ``COSINE`` is the
one that normalises: it compares directions, so it is undefined for a zero vector.

Each object has three families of forms, one per kind of caller:

- **Training** (losses and miners; torch, differentiable): :meth:`Distance.pairwise`
  ``(N, D) x (M, D) -> (N, M)`` and :meth:`Distance.rowwise` ``(N, D) x (N, D) -> (N,)`` give
  the values above; :meth:`Distance.as_dissimilarity` turns them into an order where smaller is
  closer (a similarity is negated) and :meth:`Distance.violation` compares a positive with a
  negative. Half-precision inputs (float16 / bfloat16, e.g. under autocast) are computed in
  float32 with autocast off: these values feed exponentials and square roots, where half
  precision loses the ordering of near neighbours. The Euclidean distance is computed as
  ``sqrt(clamp(||x - y||^2, eps))`` so that its gradient stays finite where two embeddings
  coincide (0 there instead of NaN).
- **Evaluation** (retrieval, pair verification, probes, search): dissimilarities ``d(q, g)``,
  smaller = more alike: the distance itself, ``1 - cos(q, g)`` for ``COSINE`` and ``-q.g`` for
  ``DOT`` (:meth:`Distance.to_distance`). ``-q.g`` is not a metric: it may be negative, and an
  item is not always nearest to itself. :meth:`Distance.reference` computes the (Q, N) block
  directly (from the differences for the Minkowski distances), :meth:`Distance.exact` the
  dissimilarity of matched rows from the vectors (the distances a search reports), and the
  ``*_numpy`` forms the float64 numpy arithmetic of pair verification and the probes.
- **Ranking** (exact retrieval metrics and the flat index): :meth:`Distance.ranking_form` and
  :meth:`Distance.ranking_block`, a (Q, N) block of values that rank like the dissimilarity,
  fast and with exact ties on integer-valued embeddings (see :meth:`Distance.ranking_form`).

On unit vectors ``||q - g||^2 = 2 - 2 q.g = 2 (1 - cos)``, so ``euclidean``, ``cosine`` and
``dot`` rank identically there.

Names: :func:`get` resolves a name (or an alias, or an object) to its object and raises a
``ValueError`` listing the allowed names. The loss configs (``loss.distance``) have always
called the cosine similarity ``"dot"``, "the dot product of L2-normalised embeddings"
(pytorch-metric-learning's ``DotProductSimilarity`` with its default
``normalize_embeddings=True``): losses and miners resolve their names through
:data:`LOSS_NAMES`, where ``"dot"`` is ``COSINE``; everywhere else ``"dot"`` is the raw inner
product ``DOT``.

Normalisations, applied to the stored vectors (queries and gallery alike) before any distance
(:func:`normalize_embeddings`):

- ``none``: the vectors as the model gives them;
- ``l2``: ``x / ||x||_2``, onto the unit sphere;
- ``sqrt``: ``unit(sign(x) * sqrt(|x|))``, the signed square root then ``l2``. It damps the
  "burstiness" of a few large components, which otherwise dominate the distance: the power
  normalisation of Perronnin, Sanchez, Mensink, "Improving the Fisher kernel for large-scale
  image classification", ECCV 2010 (alpha = 1/2), also the RootSIFT of Arandjelovic &
  Zisserman, "Three things everyone should know to improve object retrieval", CVPR 2012.

A zero vector stays zero under ``l2`` and ``sqrt`` (it has no direction), as scikit-learn's
``normalize`` and faiss's ``normalize_L2`` leave it.

This module imports only torch and numpy (scipy for two numpy forms, on first use): it is the
lowest layer, and every other module takes its distances from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ALIASES",
    "CHEBYSHEV",
    "COSINE",
    "DISTANCES",
    "DOT",
    "EUCLIDEAN",
    "LOSS_NAMES",
    "MANHATTAN",
    "NAMES",
    "NORMALIZATIONS",
    "SQUARED_L2",
    "Distance",
    "check_embeddings",
    "check_normalization",
    "full_precision",
    "get",
    "normalize_embeddings",
]

Normalization = Literal["none", "l2", "sqrt"]
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# Floor under the squared distance before the square root: sqrt'(0) is infinite.
_SQRT_EPS: Final[float] = 1e-12
# Squared norms (and L1 bounds) above this could overflow float32 in the ranking forms.
MAX_RANKING_VALUE: Final[float] = 1e37


# --------------------------------------------------------------------------------------------
# Argument checks and precision
# --------------------------------------------------------------------------------------------


def check_embeddings(name: str, x: torch.Tensor) -> None:
    """Embeddings are a floating-point matrix ``(N, D)`` with ``D >= 1``."""
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"{name} must have shape (N, D) with D >= 1; got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor; got dtype {x.dtype}")


def full_precision(x: torch.Tensor) -> torch.Tensor:
    """Return ``x`` in float32 if it is float16 / bfloat16, unchanged otherwise."""
    if x.dtype in (torch.float16, torch.bfloat16):
        return x.float()
    return x


def _check_pairwise(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_embeddings("x", x)
    check_embeddings("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same embedding size D; got x "
            f"{tuple(x.shape)} and y {tuple(y.shape)}"
        )
    return full_precision(x), full_precision(y)


def _check_rowwise(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    check_embeddings("x", x)
    check_embeddings("y", y)
    if x.shape != y.shape:
        raise ValueError(
            f"x and y must have the same shape (N, D); got x {tuple(x.shape)} "
            f"and y {tuple(y.shape)}"
        )
    return full_precision(x), full_precision(y)


def _squared_l2_pairwise(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, M) ``||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y``: one matmul, no (N, M, D) intermediate.
    Rounding can make it slightly negative for coincident points, hence the clamp."""
    x2 = x.pow(2).sum(dim=1, keepdim=True)  # (N, 1)
    y2 = y.pow(2).sum(dim=1, keepdim=True).T  # (1, M)
    return (x2 + y2 - 2.0 * (x @ y.T)).clamp_min(0.0)  # (N, M)


def _check_magnitude(x: torch.Tensor, biggest: float, what: str) -> None:
    if not biggest < MAX_RANKING_VALUE:
        raise ValueError(
            f"embeddings are too large for {x.dtype} distances ({what} {biggest:.3g}); rescale them"
        )


# --------------------------------------------------------------------------------------------
# The distances
# --------------------------------------------------------------------------------------------


#: scipy metrics whose ``pdist`` works from the coordinate differences (no cancellation)
FROM_DIFFERENCES: frozenset[str] = frozenset({"euclidean", "sqeuclidean", "cityblock", "chebyshev"})


class Distance:
    """A distance or similarity between embeddings: its names, its ordering and its forms.

    Attributes:
        name: the canonical name; ``aliases``: the other accepted names.
        label: how tables and figures name it.
        is_similarity: True when a larger value means a closer pair (``COSINE``, ``DOT``).
        normalizes: True when it compares directions only (``COSINE``).
        signed: True when its ranking values may be negative (``DOT``): exact ranking keys then
            need the float's sign (see :mod:`simlearn.evaluation.retrieval`).
        product: True when its ranking block is one matrix product (else ``torch.cdist``).
        sklearn_metric / scipy_metric: its name in scikit-learn / scipy (None: none there).
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    label: str = ""
    is_similarity: bool = False
    normalizes: bool = False
    signed: bool = False
    product: bool = True
    sklearn_metric: str | None = None
    scipy_metric: str | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __str__(self) -> str:
        return self.name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Distance) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def is_inverted(self) -> bool:
        """pytorch-metric-learning's name for :attr:`is_similarity`."""
        return self.is_similarity

    # -- training form: torch, differentiable, the values of the table ---------------------

    def pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All pairs: ``out[i, j] = v(x_i, y_j)`` for ``x (N, D)``, ``y (M, D)`` -> ``(N, M)``."""
        x, y = _check_pairwise(x, y)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._pairwise(x, y)

    def rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Matched rows: ``out[i] = v(x_i, y_i)`` for ``x (N, D)``, ``y (N, D)`` -> ``(N,)``."""
        x, y = _check_rowwise(x, y)
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self._rowwise(x, y)

    def as_dissimilarity(self, values: ArrayT) -> ArrayT:
        """Values of this distance in an order where smaller = closer: a similarity is negated.

        The order only (what losses and miners compare); the dissimilarity that evaluation
        reports is :meth:`to_distance` (``1 - cos`` for the cosine)."""
        return -values if self.is_similarity else values

    def violation(self, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        """How much closer the negative is than the positive, in this distance's units.

        ``d_ap - d_an`` for a distance, ``s_an - s_ap`` for a similarity: > 0 when the negative is
        closer to the anchor than the positive (pytorch-metric-learning's ``margin(ap, an)``).
        """
        return self.as_dissimilarity(positive) - self.as_dissimilarity(negative)

    # -- evaluation forms: dissimilarities, smaller = more alike ----------------------------

    def to_distance(self, values: ArrayT) -> ArrayT:
        """The dissimilarity evaluation reports, from values of this distance: the value itself
        for a distance, ``1 - cos`` for ``COSINE``, ``-x.y`` for ``DOT``."""
        return values

    def reference(
        self, query: np.ndarray | torch.Tensor, gallery: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        """(Q, N) dissimilarities ``d(query_i, gallery_j)`` in the dtype of ``query``, computed
        directly (from the differences for the Minkowski distances, ``torch.cdist`` without its
        matrix-product shortcut), as a reference and for small blocks; ranking uses
        :meth:`ranking_block`."""
        q = torch.as_tensor(query)
        g = torch.as_tensor(gallery).to(q.dtype)
        if q.ndim != 2 or g.ndim != 2 or q.shape[1] != g.shape[1]:
            raise ValueError(
                f"query and gallery must be (Q, D) and (N, D), got {tuple(q.shape)}, "
                f"{tuple(g.shape)}"
            )
        return self._reference(q, g)

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """Dissimilarities of matched rows from the vectors themselves, broadcasting: ``q``
        ``(..., D)`` and ``g`` ``(..., D)`` -> ``(...)``; e.g. ``q[:, None, :]`` against the
        ``(Q, k, D)`` results of a search. No cancellation between close points (the Euclidean
        distance comes from the differences), so these are the distances a search reports."""
        raise NotImplementedError

    def prepare_numpy(self, x: np.ndarray, name: str = "x") -> np.ndarray:
        """The float64 rows the ``*_numpy`` forms compare: unit rows for ``COSINE`` (ValueError
        naming ``name`` for a zero row), ``x`` itself otherwise."""
        return x

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Values ``v(a_i, b_i)`` of matched rows ``(B, D)`` -> ``(B,)`` in numpy, of rows from
        :meth:`prepare_numpy`."""
        raise NotImplementedError

    def pairwise_numpy(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Values ``v(x_i, y_j)``, ``(M, D) x (C, D) -> (M, C)`` in numpy, ``x`` from
        :meth:`prepare_numpy`."""
        if self.scipy_metric is None:
            raise NotImplementedError
        from scipy.spatial.distance import cdist

        return cdist(x, y, self.scipy_metric)

    def all_pairs_numpy(self, x: np.ndarray) -> np.ndarray | None:
        """Evaluation dissimilarities of every pair ``i < j`` of rows ``(N, D)`` from
        :meth:`prepare_numpy`, row-major (scipy's condensed order) ``(N (N - 1) / 2,)``, by one
        scipy ``pdist`` call where it computes them from the differences in float64 like
        :meth:`rowwise_numpy` (``FROM_DIFFERENCES``); None for the others, which go pair by
        pair. On 1,000 raw 64x64 RGB images (D = 12,288), Euclidean: 2.5 s against 10.4 s for
        the rows pair by pair on 2 AMD EPYC cores (4.2x; 2.4 s against 15.9 s on another 2-core
        machine), distances within 2e-14 relative (the sums run in another order)
        (``python benchmarks/bench_pairs.py`` prints these figures)."""
        if self.scipy_metric not in FROM_DIFFERENCES:
            return None
        from scipy.spatial.distance import pdist

        return pdist(x, self.scipy_metric)

    # -- ranking form: exact retrieval and the flat index -----------------------------------

    def ranking_form(self, x: torch.Tensor, *, gallery: bool, name: str = "x") -> torch.Tensor:
        """Queries (``gallery=False``) or gallery (``gallery=True``) rows ``(N, D)`` in the form
        :meth:`ranking_block` ranks: augmented matrices whose product is a value that ranks like
        the dissimilarity, so one matrix product yields it with no further pass over the block:

        - euclidean (and squared): ``[q, ||q||^2, 1] . [-2g, 1, ||g||^2] = ||q - g||^2``;
        - cosine: ``[q/||q||, 1, 0] . [-g/||g||, 1, 0] = 1 - cos(q, g)``;
        - dot: ``q . (-g) = -q.g``.

        manhattan and chebyshev keep the rows as they are (their distances come from the
        differences). For integer-valued embeddings whose squared distances stay below 2**24
        (float32) every partial sum is an exact integer, so the values and their ties are exact.
        ValueError (naming ``name``) when a value could overflow, or for a zero vector (cosine).
        """
        raise NotImplementedError

    def ranking_block(
        self, q: torch.Tensor, g: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(Qc, N) ranking values of :meth:`ranking_form`'s rows, into ``out``: the squared
        Euclidean distance or ``1 - cos`` clamped at 0, the negated dot product, or the
        Minkowski distance (p = 1, inf). In float32, values between close points carry the
        cancellation error of the Euclidean formula (about 1e-7 of the squared norms), as in
        faiss or ``torch.cdist``, and BLAS may round the last bit differently for another block
        shape."""
        d = torch.mm(q, g.T, out=out)
        return d if self.signed else d.clamp_min_(0.0)

    # -- the forms each subclass writes -----------------------------------------------------

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _reference(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class _Minkowski(Distance):
    """L1 and L-infinity: ``torch.cdist`` of the rows as they are, for every form."""

    p: float = 1.0
    product = False

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cdist(x, y, p=self.p)  # (N, M)

    def _reference(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.cdist(q, g, p=self.p)

    def ranking_form(self, x: torch.Tensor, *, gallery: bool, name: str = "x") -> torch.Tensor:
        # |q_i - g_i| <= 2 max|x|, summed over D terms
        _check_magnitude(x, 2.0 * x.shape[1] * float(x.abs().max()), "bound")
        return x

    def ranking_block(
        self, q: torch.Tensor, g: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        d = torch.cdist(q, g, p=self.p)
        return d if out is None else out.copy_(d)


class Manhattan(_Minkowski):
    """``||x - y||_1 = sum_i |x_i - y_i|`` (Minkowski p = 1)."""

    name, aliases, label = "manhattan", ("l1",), "L1"
    sklearn_metric, scipy_metric = "manhattan", "cityblock"
    p = 1.0

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).abs().sum(dim=1)  # (N,)

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (q - g).abs().sum(-1)

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(a - b).sum(axis=1)


class Chebyshev(_Minkowski):
    """``||x - y||_inf = max_i |x_i - y_i|`` (Minkowski p -> inf)."""

    name, aliases, label = "chebyshev", ("linf",), "L\u221e"
    sklearn_metric, scipy_metric = "chebyshev", "chebyshev"
    p = float("inf")

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).abs().amax(dim=1)  # (N,)

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (q - g).abs().amax(-1)

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(a - b).max(axis=1)


class _SquaredNormRanking(Distance):
    """Euclidean ranking: ``[q, ||q||^2, 1] . [-2g, 1, ||g||^2] = ||q - g||^2``."""

    def ranking_form(self, x: torch.Tensor, *, gallery: bool, name: str = "x") -> torch.Tensor:
        sq = (x * x).sum(dim=1, keepdim=True)  # (N, 1)
        _check_magnitude(x, float(sq.max()), "squared norm")
        if gallery:
            return torch.cat([-2.0 * x, torch.ones_like(sq), sq], 1)  # (N, D + 2)
        return torch.cat([x, sq, torch.ones_like(sq)], 1)  # (N, D + 2)


class Euclidean(_SquaredNormRanking):
    """``||x - y||_2``; in training ``sqrt(clamp(||x - y||^2, 1e-12))`` (finite gradient where
    two embeddings coincide). Its ranking values are the squared distances (same order, exact
    ties)."""

    name, aliases, label = "euclidean", ("l2",), "L2"
    sklearn_metric = scipy_metric = "euclidean"

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _squared_l2_pairwise(x, y).clamp_min(_SQRT_EPS).sqrt()  # (N, M)

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).pow(2).sum(dim=1).clamp_min(_SQRT_EPS).sqrt()  # (N,)

    def _reference(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.cdist(q, g, p=2.0, compute_mode="donot_use_mm_for_euclid_dist")

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (q - g).norm(dim=-1)

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.linalg.norm(a - b, axis=1)


class SquaredEuclidean(_SquaredNormRanking):
    """``||x - y||_2^2`` (FaceNet's triplet distance; the soft nearest neighbour loss's)."""

    name, label = "squared_euclidean", "squared L2"
    sklearn_metric = scipy_metric = "sqeuclidean"

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return _squared_l2_pairwise(x, y)  # (N, M)

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x - y).pow(2).sum(dim=1)  # (N,)

    def _reference(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return torch.cdist(q, g, p=2.0, compute_mode="donot_use_mm_for_euclid_dist").square()

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return (q - g).pow(2).sum(-1)

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.square(a - b).sum(axis=1)


class Cosine(Distance):
    """The cosine similarity ``x/||x|| . y/||y||`` (a similarity, in [-1, 1]); its evaluation
    dissimilarity is ``1 - cos``. Undefined for a zero vector."""

    name, label = "cosine", "cosine"
    is_similarity = normalizes = True
    sklearn_metric = scipy_metric = "cosine"

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1) @ F.normalize(y, dim=1).T  # (N, M)

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (F.normalize(x, dim=1) * F.normalize(y, dim=1)).sum(dim=1)  # (N,)

    def to_distance(self, values: ArrayT) -> ArrayT:
        return 1.0 - values

    def _reference(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        qn, gn = q.norm(dim=1, keepdim=True), g.norm(dim=1, keepdim=True)  # (Q, 1), (N, 1)
        if bool((qn == 0).any()) or bool((gn == 0).any()):
            raise ValueError("a zero vector has no cosine distance")
        return 1.0 - (q / qn) @ (g / gn).T

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return 1.0 - (F.normalize(q, dim=-1) * F.normalize(g, dim=-1)).sum(-1)

    def prepare_numpy(self, x: np.ndarray, name: str = "x") -> np.ndarray:
        norms = np.linalg.norm(x, axis=1, keepdims=True)  # (N, 1)
        if (norms == 0).any():
            raise ValueError(f"{name} has a zero vector: its cosine distance is undefined")
        return x / norms

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("bd,bd->b", a, b)  # unit rows: their dot product

    def pairwise_numpy(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``x`` unit rows (:meth:`prepare_numpy`); the rows of ``y`` are normalised here, and a
        zero row of ``y`` (e.g. a class mean whose directions cancel out) scores 0."""
        y_norm = np.linalg.norm(y, axis=1)  # (C,)
        return x @ y.T / np.where(y_norm > 0, y_norm, 1.0)  # (M, C)

    def ranking_form(self, x: torch.Tensor, *, gallery: bool, name: str = "x") -> torch.Tensor:
        if bool((x.norm(dim=1) == 0).any()):
            raise ValueError(f"{name} has a zero vector: its cosine distance is undefined")
        xn = F.normalize(x, dim=1)
        one = torch.ones_like(xn[:, :1])
        return torch.cat([-xn if gallery else xn, one, 0 * one], 1)  # (N, D + 2)


class DotProduct(Distance):
    """The inner product ``x . y`` (a similarity; unnormalised, so it grows with the norms); its
    evaluation dissimilarity is ``-x.y``, which inner-product search ranks by."""

    name, label = "dot", "dot product"
    is_similarity = signed = True

    def _pairwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x @ y.T  # (N, M)

    def _rowwise(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * y).sum(dim=1)  # (N,)

    def to_distance(self, values: ArrayT) -> ArrayT:
        return -values

    def _reference(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return -(q @ g.T)

    def exact(self, q: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return -(q * g).sum(-1)

    def rowwise_numpy(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.einsum("bd,bd->b", a, b)

    def pairwise_numpy(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x @ y.T  # (M, C)

    def ranking_form(self, x: torch.Tensor, *, gallery: bool, name: str = "x") -> torch.Tensor:
        _check_magnitude(x, float((x * x).sum(dim=1).max()), "squared norm")
        return -x if gallery else x


MANHATTAN: Final[Distance] = Manhattan()
EUCLIDEAN: Final[Distance] = Euclidean()
SQUARED_L2: Final[Distance] = SquaredEuclidean()
CHEBYSHEV: Final[Distance] = Chebyshev()
COSINE: Final[Distance] = Cosine()
DOT: Final[Distance] = DotProduct()

#: the evaluation distances by canonical name, in the order tables show them
DISTANCES: Final[tuple[str, ...]] = ("manhattan", "euclidean", "chebyshev", "cosine", "dot")
#: other accepted names -> canonical name
ALIASES: Final[dict[str, str]] = {
    a: d.name for d in (MANHATTAN, EUCLIDEAN, CHEBYSHEV) for a in d.aliases
}
#: every accepted name -> its object: the canonical names, squared_euclidean, then the aliases
NAMES: Final[dict[str, Distance]] = {
    **{d.name: d for d in (MANHATTAN, EUCLIDEAN, CHEBYSHEV, COSINE, DOT, SQUARED_L2)},
    **{a: d for d in (MANHATTAN, EUCLIDEAN, CHEBYSHEV) for a in d.aliases},
}
#: the names of the loss configs (``loss.distance``) and of the losses and miners: "dot" is the
#: dot product of L2-normalised embeddings, the cosine similarity (see the module docstring)
LOSS_NAMES: Final[dict[str, Distance]] = {
    "euclidean": EUCLIDEAN,
    "squared_euclidean": SQUARED_L2,
    "dot": COSINE,
    "cosine": COSINE,
}


def get(
    distance: Distance | str,
    allowed: Iterable[str] | None = None,
    *,
    names: Mapping[str, Distance] = NAMES,
    key: str = "distance",
) -> Distance:
    """The distance object of ``distance``: an object is returned as it is, a name (or alias)
    is looked up in ``names``, among the ``allowed`` ones (default: all of ``names``).

    Raises:
        ValueError: ``"<key>=<value> is not supported; allowed: <names>"``.
    """
    if isinstance(distance, Distance):
        return distance
    choices = tuple(names if allowed is None else allowed)
    if isinstance(distance, str) and distance in choices and distance in names:
        return names[distance]
    listed = ", ".join(repr(a) for a in choices)
    raise ValueError(f"{key}={distance!r} is not supported; allowed: {listed}")


# --------------------------------------------------------------------------------------------
# Normalisations of the stored vectors
# --------------------------------------------------------------------------------------------

NORMALIZATIONS: Final[tuple[str, ...]] = ("none", "l2", "sqrt")


def check_normalization(normalize: str, name: str = "normalize") -> str:
    """Return ``normalize`` if it is one of :data:`NORMALIZATIONS`, else raise ``ValueError``."""
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
        return F.normalize(t, dim=-1)  # x / max(||x||, eps): 0 stays 0
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64)
    if normalize == "sqrt":
        a = np.sign(a) * np.sqrt(np.abs(a))
    norms = np.linalg.norm(a, axis=-1, keepdims=True)  # (N, 1)
    return (a / np.where(norms > 0, norms, 1)).astype(a.dtype, copy=False)
