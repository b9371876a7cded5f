"""Exact retrieval metrics over the full ranking, in bounded memory and fast.

Every query ``q`` ranks the whole gallery by distance. With ``r_i = 1`` when the item at rank
``i`` (1-based) shares the query's label, ``R`` the number of such items in the gallery and
``p_1 < p_2 < ... < p_R`` the ranks of the relevant items:

- ``P@K = (1 / K) * sum_{i <= K} r_i`` (a gallery shorter than ``K`` counts the missing places
  as misses, as pytorch-metric-learning does);
- Recall@K ``= 1 if sum_{i <= K} r_i >= 1 else 0``: the query counts when at least one of its
  ``K`` nearest gallery items shares its label (the "Recall@K" of metric learning: Oh Song et
  al., "Deep Metric Learning via Lifted Structured Feature Embedding", CVPR 2016,
  https://arxiv.org/abs/1511.06452; Musgrave et al. below). It is not the recall of
  information retrieval (the fraction of the R relevant items found). Its mean is the fraction
  of queries with a hit in their top K; Recall@1 equals P@1 exactly, and Recall@K grows with K;
- R-precision ``= P@R`` (Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020,
  https://arxiv.org/abs/2003.08505);
- ``MAP@R = (1 / R) * sum_{i <= R} r_i * P@i`` (same paper);
- reciprocal rank ``= 1 / p_1`` (its mean over queries is the MRR);
- AP, the area under the query's step precision-recall curve over the full ranking, exactly
  scikit-learn's ``average_precision_score(relevant, -distance)``:
  ``AP = sum_t (recall_t - recall_{t-1}) * precision_t`` over the distinct distances ``t`` taken
  as thresholds (no interpolation). Without ties ``AP = (1 / R) * sum_j j / p_j``. mAP (also
  reported as ``aupr``) is its mean over queries;
- the 11-point interpolated precision-recall curve of PASCAL VOC 2007 (Everingham et al., "The
  PASCAL Visual Object Classes (VOC) Challenge", IJCV 2010): at recall levels
  ``t in {0, 0.1, ..., 1}``, ``p_interp(t) = max {precision_s : recall_s >= t}`` over the same
  threshold points as AP, averaged over queries. ``recall >= t`` is decided in exact integer
  arithmetic (``10 * tp >= level * R``), so a recall of exactly 0.3 reaches the level 0.3.

Ties, never resolved in the query's favour:

- cut-off metrics (P@K, Recall@K, R-precision, MAP@R, reciprocal rank) rank by
  ``(distance, relevant)``: among equal distances the non-matches come first. The ranking is
  deterministic and a tie never helps the query.
- AP and the 11-point curve use scikit-learn's threshold rule: a group of equal distances is one
  threshold, so every relevant item of the group gets the precision reached at the group's end,
  after all of the group's non-matches. Because the non-matches of a group rank before its
  matches, that end is the group's last relevant item, and both metrics come from the ranks of
  the relevant items alone.

When the gallery is the query set, a query is never its own match: it is removed by index, not
by distance (a duplicate of the query still counts). With a distinct gallery that holds some of
the queries (a dataset's rows marked both ``is_query`` and ``is_gallery``), ``exclude`` names
each query's own gallery position, removed by index the same way. A query with no relevant item
in the gallery has no defined metric: its per-query values are NaN, it is left out of every
mean and it is counted in ``n_queries_without_relevant``.

This AP is scikit-learn's, not the rank-by-rank sum ``(1 / R) * sum_j j / p_j`` that
pytorch-metric-learning's ``mean_average_precision`` computes: the two differ exactly when a
relevant item ties with another item.

Distances are the objects of :mod:`simlearn.distances` (or their names), computed in chunks of
queries in their ranking form (:meth:`~simlearn.distances.Distance.ranking_form`): ``euclidean``,
``cosine`` and ``dot`` are one matrix product of augmented embeddings each, giving the squared
Euclidean distance ``||q||^2 + ||g||^2 - 2 q.g`` (clamped at 0; ranking by it equals ranking by
the distance and keeps ties exact), the cosine distance ``1 - q.g / (||q|| ||g||)`` or the
negated dot product ``-q.g``. In the default float32 arithmetic, distances between close points
carry the cancellation error of the Euclidean formula (about 1e-7 of the squared norms), as in
faiss or ``torch.cdist``: items closer than that may swap, and BLAS may round the last bit
differently for another ``chunk_size``. It is exact for integer-valued embeddings whose squared
norms and distances stay below 2**24. ``precision="float64"`` shrinks the error to about 1e-16
at roughly twice the cost. ``manhattan`` and ``chebyshev`` come from the differences
(``torch.cdist``, p = 1 or inf): no cancellation, exact for integer-valued embeddings whose
distances stay below 2**24.

How it is fast: a non-negative float's bit pattern read as an unsigned integer orders like the
float, so each (query, item) becomes one integer key ``(bits << 1) | relevant`` (32 bits for
float32: non-match = 0 sorts first within a tie). A row of keys is sorted by value alone
(``np.sort``, AVX-512 sorting networks, in threads; ``torch.sort`` on a GPU), and the ranks of
the relevant items are the positions of the odd keys. Every metric then needs only O(R) work
per query. ``dot`` distances may be negative: their sign-magnitude bits become an order-keeping
32-bit unsigned integer (``+0`` and ``-0`` tie), so its keys take 64 bits (float32 only).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from simlearn import distances
from simlearn.distances import Distance

__all__ = [
    "RECALL_KS",
    "RECALL_LEVELS",
    "FlatIndex",
    "QueryPRCurve",
    "RetrievalResult",
    "nearest_neighbors",
    "query_pr_curve",
    "retrieval_metrics",
]

Precision = Literal["float32", "float64"]
Backend = Literal["auto", "numpy", "torch"]

PRECISIONS: Final[tuple[str, ...]] = ("float32", "float64")
BACKENDS: Final[tuple[str, ...]] = ("auto", "numpy", "torch")

#: recall levels of the 11-point interpolated curve (PASCAL VOC 2007)
RECALL_LEVELS: Final[np.ndarray] = np.arange(11, dtype=np.float64) / 10.0

#: cut-offs of Recall@K reported by the metric-learning literature (Musgrave et al. 2020, and
#: the CUB-200 / Cars196 / SOP tables since Oh Song et al. 2016)
RECALL_KS: Final[tuple[int, ...]] = (1, 2, 4, 8)

# Working memory for one chunk of queries; 512 MiB keeps N = 100,000 far under 4 GB.
DEFAULT_MEMORY_BUDGET: Final[int] = 512 * 2**20
# Bytes per relevant item of a chunk: rows/cols/keys from nonzero plus about ten float64/int64
# temporaries of the per-item arithmetic.
_BYTES_PER_RELEVANT: Final[int] = 112
# Keys handled by one task of the numpy path: small enough to stay in cache through its passes.
_TASK_BYTES: Final[int] = 2 * 2**20
# Fewest queries in one matrix product of the numpy path: fewer would re-read the gallery from
# memory for too little work.
_MIN_TASK_ROWS: Final[int] = 32


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrievalResult:
    """Per-query retrieval metrics, in the order of the queries given.

    Every per-query array is NaN where the query has no relevant item (``n_relevant == 0``).
    """

    average_precision: np.ndarray  # (Q,) float64, sklearn's AP over the full ranking
    map_at_r: np.ndarray  # (Q,) float64
    r_precision: np.ndarray  # (Q,) float64
    reciprocal_rank: np.ndarray  # (Q,) float64, 1 / rank of the first relevant item
    precision_at_k: dict[int, np.ndarray]  # k -> (Q,) float64
    n_relevant: np.ndarray  # (Q,) int64, R: relevant items in the gallery (self excluded)
    interpolated_precision: np.ndarray  # (Q, 11) float64, VOC 2007 at RECALL_LEVELS
    distance: str = "euclidean"
    recall_levels: np.ndarray = field(default_factory=lambda: RECALL_LEVELS.copy())  # (11,)
    recall_at_k: dict[int, np.ndarray] = field(default_factory=dict)  # k -> (Q,) float64 0/1

    @property
    def valid(self) -> np.ndarray:
        """(Q,) bool: queries with at least one relevant item, the ones every mean uses."""
        return self.n_relevant > 0

    @property
    def n_queries(self) -> int:
        return int(self.n_relevant.shape[0])

    @property
    def n_queries_without_relevant(self) -> int:
        return int(np.count_nonzero(self.n_relevant == 0))

    @property
    def pr_curve(self) -> np.ndarray:
        """(11,) mean 11-point interpolated precision at :attr:`recall_levels` (NaN: no query)."""
        v = self.valid
        if not v.any():
            return np.full(self.recall_levels.shape, np.nan)
        return self.interpolated_precision[v].mean(axis=0)

    def _mean(self, values: np.ndarray) -> float:
        v = self.valid
        return float(values[v].mean()) if v.any() else math.nan

    def summary(self) -> dict[str, float]:
        """Flat means over the queries that have a relevant item.

        Keys: ``map``, ``aupr`` (the same value), ``map_at_r``, ``r_precision``,
        ``precision_at_<k>`` per k, ``recall_at_<k>`` per recall cut-off, ``mrr``,
        ``n_queries`` (all queries given),
        ``n_queries_without_relevant`` (left out of the means). Means are NaN when no query has
        a relevant item.
        """
        m = self._mean(self.average_precision)
        out: dict[str, float] = {
            "map": m,
            "aupr": m,
            "map_at_r": self._mean(self.map_at_r),
            "r_precision": self._mean(self.r_precision),
        }
        for k in sorted(self.precision_at_k):
            out[f"precision_at_{k}"] = self._mean(self.precision_at_k[k])
        for k in sorted(self.recall_at_k):
            out[f"recall_at_{k}"] = self._mean(self.recall_at_k[k])
        out["mrr"] = self._mean(self.reciprocal_rank)
        out["n_queries"] = float(self.n_queries)
        out["n_queries_without_relevant"] = float(self.n_queries_without_relevant)
        return out


class QueryPRCurve(NamedTuple):
    """One query's precision-recall points, one per distinct distance (sklearn's thresholds).

    Ordered by increasing distance, so ``recall`` is non-decreasing and ends at 1. The area
    under the step curve, ``sum_t (recall_t - recall_{t-1}) * precision_t``, is ``ap``. Matches
    :class:`simlearn.plots.PRExample` field for field.
    """

    recall: np.ndarray  # (T,) float64
    precision: np.ndarray  # (T,) float64
    ap: float


# --------------------------------------------------------------------------------------------
# Argument checks and preparation
# --------------------------------------------------------------------------------------------


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{name}={value!r} is not supported; allowed: {choices}")


def _as_embeddings(name: str, x: object, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(N, D) real, finite embeddings as a contiguous ``dtype`` tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            t = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as e:
            raise ValueError(f"{name} must be a numeric (N, D) array: {e}") from e
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column, got {tuple(t.shape)}")
    if t.is_complex():
        raise ValueError(f"{name} must hold real numbers, got dtype {t.dtype}")
    t = t.to(device=device, dtype=dtype).contiguous()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def _as_labels(name: str, y: object, n: int) -> np.ndarray:
    a = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D (N,), got shape {a.shape}")
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} labels for {n} embeddings")
    return a


def _resolve_device(device: str | torch.device | None) -> torch.device:
    return torch.device("cpu") if device is None else torch.device(device)


def _check_ks(ks: Sequence[int], name: str = "ks") -> tuple[int, ...]:
    ks_t = tuple(ks)
    if not ks_t:
        raise ValueError(f"{name} must hold at least one cut-off, got ()")
    for k in ks_t:
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"{name} must hold integers >= 1, got {k!r} in {name}={ks_t!r}")
    return tuple(sorted({int(k) for k in ks_t}))


class _Prepared(NamedTuple):
    query: torch.Tensor  # (Q, D') queries in ranking form (Distance.ranking_form), sorted by label
    gallery: torch.Tensor  # (N, D') gallery in ranking form, sorted by label code
    query_codes: np.ndarray  # (Q,) int64 label codes, sorted
    query_order: np.ndarray  # (Q,) sorted position -> original query index
    code_start: np.ndarray  # (C,) first gallery column of each label code
    code_end: np.ndarray  # (C,) one past the last
    self_source: bool  # gallery is the query set: sorted query i is sorted column i
    distance: Distance
    # (Q,) int64 per sorted query: the sorted gallery column left out of its ranking (the query
    # itself), -1 for none; None when no query leaves anything out. Self-source: arange(Q).
    exclude_cols: np.ndarray | None = None


def _prepare(
    query_emb: object,
    query_labels: object,
    gallery_emb: object | None,
    gallery_labels: object | None,
    distance: Distance | str,
    dtype: torch.dtype,
    device: torch.device,
    exclude: object | None = None,
) -> _Prepared:
    """Check the inputs, sort queries and gallery by label so that each query's relevant items
    are one contiguous block of gallery columns, and build their ranking forms."""
    distance = distances.get(distance)
    if (gallery_emb is None) != (gallery_labels is None):
        raise ValueError(
            "gallery_emb and gallery_labels go together: give both, or neither to use the query "
            "set as the gallery"
        )
    if exclude is not None and gallery_emb is None:
        raise ValueError(
            "exclude names gallery items to leave out of a distinct gallery; without "
            "gallery_emb the query set is the gallery and each query already leaves itself out"
        )
    q = _as_embeddings("query_emb", query_emb, dtype, device)
    ql = _as_labels("query_labels", query_labels, q.shape[0])
    self_source = gallery_emb is None
    if self_source:
        if q.shape[0] < 2:
            raise ValueError(
                f"query_emb needs at least 2 rows when it is also the gallery, got {q.shape[0]}"
            )
        g, gl = q, ql
    else:
        g = _as_embeddings("gallery_emb", gallery_emb, dtype, device)
        gl = _as_labels("gallery_labels", gallery_labels, g.shape[0])
        if g.shape[1] != q.shape[1]:
            raise ValueError(
                f"query_emb has dimension {q.shape[1]} but gallery_emb has {g.shape[1]}"
            )
    try:
        uniq, inv = np.unique(np.concatenate([ql, gl]), return_inverse=True)
    except TypeError as e:
        raise ValueError(f"query_labels and gallery_labels must be comparable: {e}") from e
    inv = inv.reshape(-1).astype(np.int64)
    q_codes, g_codes = inv[: len(ql)], inv[len(ql) :]
    q_order = np.argsort(q_codes, kind="stable")
    g_order = q_order if self_source else np.argsort(g_codes, kind="stable")
    g_sorted_codes = g_codes[g_order]
    n_codes = len(uniq)
    code_start = np.searchsorted(g_sorted_codes, np.arange(n_codes), side="left")
    code_end = np.searchsorted(g_sorted_codes, np.arange(n_codes), side="right")

    exclude_cols = None
    if self_source:
        exclude_cols = np.arange(len(ql), dtype=np.int64)
    elif exclude is not None:
        ex = _as_exclude(exclude, len(ql), len(gl))
        if (ex >= 0).any():
            col_of = np.empty(len(gl), dtype=np.int64)  # gallery index -> sorted column
            col_of[g_order] = np.arange(len(gl))
            ex = ex[q_order]
            exclude_cols = np.where(ex >= 0, col_of[np.maximum(ex, 0)], -1)

    qs = q.index_select(0, torch.from_numpy(q_order).to(device))
    gs = qs if self_source else g.index_select(0, torch.from_numpy(g_order).to(device))
    q_aug = distance.ranking_form(qs, gallery=False, name="query_emb")
    g_aug = distance.ranking_form(gs, gallery=True, name="gallery_emb")
    return _Prepared(
        q_aug,
        g_aug,
        q_codes[q_order],
        q_order,
        code_start,
        code_end,
        self_source,
        distance,
        exclude_cols,
    )


def _as_exclude(exclude: object, n_queries: int, n_gallery: int) -> np.ndarray:
    """(Q,) int64 gallery positions to leave out, -1 for none, checked."""
    a = exclude.detach().cpu().numpy() if isinstance(exclude, torch.Tensor) else np.asarray(exclude)
    if a.shape != (n_queries,) or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(
            f"exclude must be ({n_queries},) integers (a gallery position per query, -1 for "
            f"none), got shape {a.shape} of {a.dtype}"
        )
    a = a.astype(np.int64)
    if ((a < -1) | (a >= n_gallery)).any():
        raise ValueError(f"exclude must hold -1 or gallery positions in [0, {n_gallery - 1}]")
    return a


def _sign_magnitude_keys(d: torch.Tensor) -> torch.Tensor:
    """(...) int64 keys that order like the float32 values ``d`` (any sign; ``+0`` and ``-0``
    tie), in ``[-2**31, 2**31)``: the float's sign-magnitude bit pattern as a two's-complement
    integer."""
    bits = d.contiguous().view(torch.int32).to(torch.int64)
    return torch.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


# --------------------------------------------------------------------------------------------
# Ranking: packed keys -> sorted rows -> ranks of the relevant items -> metrics
# --------------------------------------------------------------------------------------------


def _label_blocks(codes: np.ndarray, start: np.ndarray, end: np.ndarray) -> list[tuple[int, ...]]:
    """(r0, r1, c0, c1): rows r0:r1 of the chunk share a label whose gallery columns are c0:c1."""
    cuts = np.flatnonzero(np.diff(codes)) + 1
    bounds = np.concatenate([[0], cuts, [len(codes)]])
    out = []
    for r0, r1 in zip(bounds[:-1], bounds[1:], strict=True):
        c = codes[r0]
        if end[c] > start[c]:
            out.append((int(r0), int(r1), int(start[c]), int(end[c])))
    return out


def _level_starts(n_rel: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """(Qc, 11) m_i = max(1, ceil(i * R / 10)): the first relevant index (1-based) whose recall
    j / R reaches level i / 10, in integers so that no level is missed by rounding."""
    if isinstance(n_rel, torch.Tensor):
        levels = torch.arange(11, device=n_rel.device)
        return torch.clamp_min(torch.div(levels * n_rel[:, None] + 9, 10, rounding_mode="floor"), 1)
    return np.maximum((np.arange(11)[None, :] * n_rel[:, None] + 9) // 10, 1)


def _metrics_numpy(
    flat: np.ndarray,
    rows: np.ndarray,
    keys: np.ndarray,
    n_rel: np.ndarray,
    n_eff: int,
    ks: tuple[int, ...],
    recall_ks: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """All metrics of a block of rows from its relevant items, in O(M) numpy passes.

    Args:
        flat: (M,) int64 ``row * n_eff + rank0`` of each relevant item, increasing (row-major).
        rows: (M,) int64 the item's row.
        keys: (M,) the items' packed keys; equal keys <=> equal distances (all are relevant).
        n_rel: (Qc,) int64 R per row, all >= 1; row r owns entries starts[r]:starts[r] + R.
    """
    n_rows, m = n_rel.shape[0], flat.shape[0]
    starts = np.cumsum(n_rel) - n_rel  # (Qc,)
    p = flat - rows * n_eff + 1  # (M,) 1-based rank
    j = np.arange(1, m + 1) - starts[rows]  # (M,) 1-based index among the relevant items
    # P@p_j = j / p_j, padded with one 0 so that reduceat may start a segment at M
    prec_rank = np.empty(m + 1)
    np.divide(j, p, out=prec_rank[:m])
    prec_rank[m] = 0.0
    # sklearn's thresholds: a tie group's relevant items take the precision of its last one
    same = keys[1:] == keys[:-1]  # (M-1,)
    same[starts[1:] - 1] = False  # a row's last item and the next row's first never tie
    if same.any():
        end_at = np.arange(m)
        end_at[:-1][same] = m  # not a group end
        end_idx = np.minimum.accumulate(end_at[::-1])[::-1]  # (M,) next group end
        prec = prec_rank[end_idx]
    else:
        prec = prec_rank[:m]

    def hits(cut: np.ndarray | int) -> np.ndarray:  # (Qc,) relevant items within rank `cut`
        top = np.arange(n_rows) * n_eff + np.minimum(cut, n_eff) - 1
        return np.searchsorted(flat, top, side="right") - starts

    out = {"ap": np.add.reduceat(prec, starts) / n_rel}
    in_r = hits(n_rel)  # (Qc,) relevant items within the first R ranks
    out["r_precision"] = in_r / n_rel
    seg = np.add.reduceat(prec_rank, np.stack([starts, starts + in_r], 1).ravel())[0::2]
    out["map_at_r"] = np.where(in_r > 0, seg, 0.0) / n_rel
    out["rr"] = 1.0 / p[starts]
    for k in ks:
        out[f"p@{k}"] = hits(k) / k
    for k in recall_ks:
        out[f"r@{k}"] = (hits(k) > 0).astype(np.float64)
    # 11-point curve: max of prec over items j in [m_i, m_{i+1}), then a suffix max over levels
    idx = (starts[:, None] + _level_starts(n_rel) - 1).ravel()  # (Qc * 11,) non-decreasing
    seg_max = np.maximum.reduceat(prec, idx).reshape(n_rows, 11)
    out["interp"] = np.maximum.accumulate(seg_max[:, ::-1], axis=1)[:, ::-1]
    return out


def _task_numpy(
    keys: np.ndarray,
    blocks: list[tuple[int, ...]],
    self_cols: np.ndarray | None,
    n_rel: np.ndarray,
    n_eff: int,
    ks: tuple[int, ...],
    recall_ks: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """CPU path for a few queries, small enough to stay in cache through every pass.

    ``keys`` (Qt, N) holds the rows' distances read as unsigned integers and is packed and
    sorted in place; then the ranks of the relevant items give the metrics. numpy releases the
    GIL in these calls, so tasks run in threads."""
    np.left_shift(keys, 1, out=keys)  # the sign bit of a -0.0 falls off: +0 and -0 tie
    for r0, r1, c0, c1 in blocks:
        keys[r0:r1, c0:c1] |= 1  # relevant: sorts after a tied non-match
    if self_cols is not None:
        # the query itself sorts last and is cut off at n_eff: removed by index
        keys[np.arange(keys.shape[0]), self_cols] = np.iinfo(keys.dtype).max
    keys.sort(axis=1)  # values only (x86-simd-sort), no argsort
    size = keys.dtype.itemsize
    low_byte = 0 if sys.byteorder == "little" else size - 1
    low = keys.view(np.uint8)[:, low_byte : n_eff * size : size]  # (Qt, n_eff) strided
    rel = np.bitwise_and(low, 1).view(np.bool_)  # (Qt, n_eff) relevance in rank order
    flat = np.flatnonzero(rel)  # (M,) row * n_eff + rank0
    if flat.shape[0] != int(n_rel.sum()):
        raise RuntimeError("relevant items found in the ranking do not add up to R")
    rows = np.repeat(np.arange(keys.shape[0]), n_rel)  # (M,)
    rel_keys = keys[rows, flat - rows * n_eff]  # (M,)
    return _metrics_numpy(flat, rows, rel_keys, n_rel, n_eff, ks, recall_ks)


def _metrics_torch(
    rows: torch.Tensor,
    cols: torch.Tensor,
    keys: torch.Tensor,
    n_rel: torch.Tensor,
    n_eff: int,
    ks: tuple[int, ...],
    recall_ks: tuple[int, ...] = (),
) -> dict[str, torch.Tensor]:
    """:func:`_metrics_numpy` in torch, on the device of the inputs (segment_reduce for
    reduceat). ``rows``/``cols``: (M,) row and 0-based rank of each relevant item."""
    dev, n_rows, m = n_rel.device, n_rel.shape[0], rows.shape[0]
    starts = torch.cumsum(n_rel, 0) - n_rel  # (Qc,)
    p = cols + 1  # (M,)
    j = torch.arange(1, m + 1, device=dev) - starts[rows]  # (M,)
    prec_rank = j.double() / p.double()  # (M,)
    same = keys[1:] == keys[:-1]  # (M-1,)
    same[starts[1:] - 1] = False
    if bool(same.any()):
        end_at = torch.arange(m, device=dev)
        end_at[:-1][same] = m
        end_idx = torch.flip(torch.cummin(torch.flip(end_at, [0]), 0).values, [0])  # (M,)
        prec = prec_rank[end_idx]
    else:
        prec = prec_rank
    flat = rows * n_eff + cols  # (M,) increasing

    def hits(cut: torch.Tensor | int) -> torch.Tensor:  # (Qc,)
        top = (
            torch.arange(n_rows, device=dev) * n_eff
            + torch.clamp_max(torch.as_tensor(cut, device=dev), n_eff)
            - 1
        )
        return torch.searchsorted(flat, top, right=True) - starts

    rf = n_rel.double()
    zero = torch.zeros((), dtype=torch.float64, device=dev)
    out = {"ap": torch.segment_reduce(prec, "sum", lengths=n_rel, unsafe=True) / rf}
    in_r = hits(n_rel)
    out["r_precision"] = in_r / rf
    lengths = torch.stack([in_r, n_rel - in_r], 1).reshape(-1)  # first R ranks | the rest
    seg = torch.segment_reduce(prec_rank, "sum", lengths=lengths, unsafe=True, initial=0.0)
    out["map_at_r"] = torch.where(in_r > 0, seg[0::2], zero) / rf
    out["rr"] = 1.0 / p[starts].double()
    for k in ks:
        out[f"p@{k}"] = hits(k).double() / k
    for k in recall_ks:
        out[f"r@{k}"] = (hits(k) > 0).double()
    lv = _level_starts(n_rel)  # (Qc, 11)
    lv_len = torch.cat([lv[:, 1:] - lv[:, :-1], n_rel[:, None] - lv[:, 10:] + 1], 1)
    seg_max = torch.segment_reduce(
        prec, "max", lengths=lv_len.reshape(-1), unsafe=True, initial=0.0
    ).view(n_rows, 11)
    out["interp"] = torch.flip(torch.cummax(torch.flip(seg_max, [1]), 1).values, [1])
    return out


def _chunk_torch(
    dist: torch.Tensor,
    blocks: list[tuple[int, ...]],
    self_cols: np.ndarray | None,
    n_rel: np.ndarray,
    n_eff: int,
    ks: tuple[int, ...],
    signed: bool = False,
    recall_ks: tuple[int, ...] = (),
) -> dict[str, np.ndarray]:
    """Torch (GPU) path. Signed keys ``(bits - 2**(w-2)) * 2 + relevant`` order like
    ``(bits << 1) | relevant`` and never overflow the signed width ``w``. ``signed`` (float32
    distances of any sign): int64 keys ``sign_magnitude(d) * 2 + relevant``."""
    dev = dist.device
    if signed:
        itype = torch.int64
        keys = _sign_magnitude_keys(dist).mul_(2)  # (Qc, N) in [-2**32, 2**32)
    else:
        if dist.dtype == torch.float32:
            itype, half = torch.int32, 1 << 30
        else:
            itype, half = torch.int64, 1 << 62
        keys = dist.view(itype)  # (Qc, N) shares memory with dist
        keys.bitwise_and_(torch.iinfo(itype).max)  # drop the sign of a -0.0
        keys.sub_(half).mul_(2)
    for r0, r1, c0, c1 in blocks:
        keys[r0:r1, c0:c1] += 1
    if self_cols is not None:
        ar = torch.arange(keys.shape[0], device=dev)
        keys[ar, torch.from_numpy(self_cols).to(dev)] = torch.iinfo(itype).max
    keys = torch.sort(keys, dim=1).values  # (Qc, N)
    rel = (keys[:, :n_eff] & 1).bool()  # (Qc, n_eff)
    rows, cols = rel.nonzero(as_tuple=True)
    if rows.shape[0] != int(n_rel.sum()):
        raise RuntimeError("relevant items found in the ranking do not add up to R")
    n_rel_t = torch.from_numpy(n_rel).to(dev)
    res = _metrics_torch(rows, cols, keys[rows, cols], n_rel_t, n_eff, ks, recall_ks)
    return {k: v.cpu().numpy() for k, v in res.items()}


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def _auto_chunk(
    n_gallery: int, max_relevant: int, key_bytes: int, budget: int, use_torch: bool, threads: int
) -> int:
    """Queries per chunk.

    torch: as many as ``budget`` bytes hold: keys, ``torch.sort``'s sorted copy and int64
    indices, the relevance mask and the per-item arrays. numpy: one chunk is one task whose keys
    take about ``_TASK_BYTES`` (its passes run in cache), with at least ``_MIN_TASK_ROWS`` rows
    so that its matrix product stays efficient, and ``threads`` tasks in flight within
    ``budget``.
    """
    per_row = n_gallery * (key_bytes + 1) + _BYTES_PER_RELEVANT * max(1, max_relevant)
    if use_torch:
        return max(1, budget // (per_row + n_gallery * (2 * key_bytes + 8)))
    cache_rows = max(_MIN_TASK_ROWS, _TASK_BYTES // (n_gallery * key_bytes))
    return max(1, min(cache_rows, budget // (per_row * threads)))


def retrieval_metrics(
    query_emb: np.ndarray | torch.Tensor,
    query_labels: np.ndarray | torch.Tensor | Sequence,
    gallery_emb: np.ndarray | torch.Tensor | None = None,
    gallery_labels: np.ndarray | torch.Tensor | Sequence | None = None,
    *,
    distance: Distance | str = "euclidean",
    ks: Sequence[int] = (1, 5, 10),
    recall_ks: Sequence[int] = RECALL_KS,
    exclude: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    chunk_size: int | None = None,
    device: str | torch.device | None = None,
    precision: Precision = "float32",
    backend: Backend = "auto",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    num_threads: int | None = None,
) -> RetrievalResult:
    """Exact retrieval metrics of every query over the full ranking of the gallery.

    See the module docstring for the formulas, the tie rule and the references.

    Args:
        query_emb: (Q, D) query embeddings.
        query_labels: (Q,) labels; an item is relevant to a query when their labels are equal.
        gallery_emb: (N, D) gallery embeddings, or None to use the query set as the gallery, in
            which case a query is excluded from its own ranking by index.
        gallery_labels: (N,) gallery labels; given exactly when ``gallery_emb`` is.
        distance: a :mod:`simlearn.distances` object or name: ``"euclidean"`` (``l2``),
            ``"cosine"`` (``1 - cos``), ``"manhattan"`` (``l1``), ``"chebyshev"`` (``linf``)
            or ``"dot"`` (``-q.g``, float32 only). Normalise the embeddings before, if wanted
            (:func:`simlearn.distances.normalize_embeddings`).
        ks: cut-offs of P@K.
        recall_ks: cut-offs of Recall@K (the field's 1, 2, 4, 8 by default).
        exclude: with a distinct gallery, (Q,) the gallery position each query leaves out of
            its ranking, -1 for none: the query itself where it is also a gallery item (a
            dataset's ``is_query`` and ``is_gallery`` both set), removed by index as when
            ``gallery_emb`` is None. An excluded item of the query's label does not count in
            R. None: nothing is left out.
        chunk_size: queries per chunk (one matrix product; on CPU, one task of a thread).
            None: on CPU, the fewest rows whose keys fill about 2 MiB of cache (at least 32),
            within ``memory_budget`` for all threads; with torch, as many as
            ``memory_budget`` holds.
        device: where distances are computed; ``"cuda"`` runs the whole ranking in torch on
            the GPU. None: CPU.
        precision: ``"float32"`` or ``"float64"`` arithmetic for the distances (and the keys).
        backend: ``"numpy"`` (CPU: ``np.sort`` on packed keys), ``"torch"`` (``torch.sort`` on
            ``device``), or ``"auto"``: torch on a GPU, numpy on CPU.
        memory_budget: bytes of working memory for the chunks in flight when ``chunk_size``
            is None (the embeddings and the per-query results come on top).
        num_threads: threads of the CPU path, each running whole chunks (BLAS and OpenMP
            are held at one thread meanwhile); None: ``torch.get_num_threads()``.

    Returns:
        a :class:`RetrievalResult` with per-query arrays in the order of ``query_emb``.
    """
    _one_of("precision", precision, PRECISIONS)
    _one_of("backend", backend, BACKENDS)
    ks_t = _check_ks(ks)
    recall_t = _check_ks(recall_ks, "recall_ks") if len(recall_ks) else ()
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive integer or None, got {chunk_size!r}")
    if memory_budget < 1:
        raise ValueError(f"memory_budget must be a positive number of bytes, got {memory_budget}")
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
    dev = _resolve_device(device)
    use_torch = backend == "torch" or (backend == "auto" and dev.type != "cpu")
    if not use_torch and dev.type != "cpu":
        raise ValueError(f"backend='numpy' runs on the CPU only, got device={str(dev)!r}")
    distance = distances.get(distance)
    signed = distance.signed
    if signed and precision != "float32":
        raise ValueError(
            f"distance={distance.name!r} ranks in float32 only (its signed keys need 33 bits); "
            f"got precision={precision!r}"
        )
    dtype = torch.float32 if precision == "float32" else torch.float64
    prep = _prepare(
        query_emb, query_labels, gallery_emb, gallery_labels, distance, dtype, dev, exclude
    )

    n_q, n_g = prep.query.shape[0], prep.gallery.shape[0]
    count = prep.code_end - prep.code_start  # (C,) gallery items per label code
    n_rel_sorted = count[prep.query_codes]  # (Q,) R
    ex = prep.exclude_cols  # (Q,) sorted gallery column a query leaves out, -1 none; or None
    leaves = np.zeros(n_q, dtype=bool) if ex is None else ex >= 0  # (Q,) ranks n_g - 1 items
    if ex is not None:  # an excluded item of the query's own label is not relevant to it
        start, end = prep.code_start[prep.query_codes], prep.code_end[prep.query_codes]
        n_rel_sorted = n_rel_sorted - (leaves & (ex >= start) & (ex < end))

    active = np.flatnonzero(n_rel_sorted > 0)  # sorted positions of queries with R >= 1
    key_bytes = 4 if precision == "float32" and not signed else 8
    np_float = np.float32 if precision == "float32" else np.float64
    unsigned = np.uint32 if precision == "float32" else np.uint64
    threads = num_threads if num_threads is not None else max(1, torch.get_num_threads())
    if chunk_size is not None:
        chunk = int(chunk_size)
    else:
        max_r = int(n_rel_sorted.max())
        chunk = _auto_chunk(n_g, max_r, key_bytes, memory_budget, use_torch, threads)

    nan = np.full(n_q, np.nan)
    ap, mapr, rprec, rr = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    pk = {k: nan.copy() for k in ks_t}
    rk = {k: nan.copy() for k in recall_t}
    interp = np.full((n_q, 11), np.nan)

    def store(sel: np.ndarray, res: dict[str, np.ndarray]) -> None:
        dst = prep.query_order[sel]  # original query indices
        ap[dst], mapr[dst], rprec[dst] = res["ap"], res["map_at_r"], res["r_precision"]
        rr[dst] = res["rr"]
        for k in ks_t:
            pk[k][dst] = res[f"p@{k}"]
        for k in recall_t:
            rk[k][dst] = res[f"r@{k}"]
        interp[dst] = res["interp"]

    def chunk_inputs(sel: np.ndarray) -> tuple:
        """A chunk's queries, label blocks, left-out columns (None: none) and R; every query
        of a chunk leaves an item out, or none does, so that it ranks n_eff items."""
        blocks = _label_blocks(prep.query_codes[sel], prep.code_start, prep.code_end)
        self_cols = ex[sel] if leaves[sel[0]] else None
        q_aug = prep.query.index_select(0, torch.from_numpy(sel).to(dev))
        return q_aug, blocks, self_cols, n_rel_sorted[sel]

    # queries that leave an item out (the query set itself as gallery: all) rank n_g - 1
    # items, the others n_g: each group is chunked apart
    chunks: list[tuple[np.ndarray, int]] = []  # (sorted query positions, items ranked)
    for group, n_eff in ((active[leaves[active]], n_g - 1), (active[~leaves[active]], n_g)):
        chunks += [(group[c : c + chunk], n_eff) for c in range(0, len(group), chunk)]
    with torch.no_grad():
        if use_torch:
            for sel, n_eff in chunks:
                q_aug, blocks, self_cols, n_rel = chunk_inputs(sel)
                dist = distance.ranking_block(q_aug, prep.gallery)  # (Qc, N)
                res = _chunk_torch(dist, blocks, self_cols, n_rel, n_eff, ks_t, signed, recall_t)
                store(sel, res)
                del dist
        else:
            # One task per chunk, in threads: the matrix product of a few rows (the gallery
            # stays in cache across tasks), then every pass over the rows' keys runs in cache.

            def task(job: tuple[np.ndarray, int]) -> dict[str, np.ndarray]:
                sel, n_eff = job
                q_aug, blocks, self_cols, n_rel = chunk_inputs(sel)
                if signed:  # sign-magnitude -> two's complement -> offset: uint64 in [0, 2**32)
                    d = distance.ranking_block(q_aug, prep.gallery)  # (Qc, N)
                    keys = (_sign_magnitude_keys(d) + (1 << 31)).numpy().view(np.uint64)
                else:
                    keys = np.empty((len(sel), n_g), dtype=unsigned)  # (Qc, N)
                    out = torch.from_numpy(keys.view(np_float))
                    distance.ranking_block(q_aug, prep.gallery, out)
                return _task_numpy(keys, blocks, self_cols, n_rel, n_eff, ks_t, recall_t)

            # The parallelism is the tasks': BLAS/OpenMP threads inside a small product only
            # spin against them (several times slower on 2 cores), so they are held at 1.
            with threadpool_limits(limits=1):
                if threads == 1 or len(chunks) <= 1:
                    for job in chunks:
                        store(job[0], task(job))
                else:
                    with ThreadPoolExecutor(threads) as pool:
                        for job, res in zip(chunks, pool.map(task, chunks), strict=True):
                            store(job[0], res)

    n_rel_out = np.empty(n_q, dtype=np.int64)
    n_rel_out[prep.query_order] = n_rel_sorted
    return RetrievalResult(
        average_precision=ap,
        map_at_r=mapr,
        r_precision=rprec,
        reciprocal_rank=rr,
        precision_at_k=pk,
        n_relevant=n_rel_out,
        interpolated_precision=interp,
        distance=distance.name,
        recall_at_k=rk,
    )


class FlatIndex:
    """Exact k nearest neighbours over a gallery, by any distance of :mod:`simlearn.distances`.

    Every (query, item) pair has the integer key ``(value bits << 32) | item`` of its ranking
    value (:meth:`~simlearn.distances.Distance.ranking_block`; signed values through their
    sign-magnitude bits): keys are unique and order like (value, gallery position), so the
    ``k`` smallest are the ``k`` nearest items, equal values ranked by position, and no tie is
    left to chance. The gallery is taken in blocks of rows: ``topk`` of the values on the first
    block, then only the queries whose block minimum beats their current k-th value are
    selected again, so that, as faiss's heaps do, most of the gallery costs one comparison
    pass. Keys are built for the ``k`` candidates of a block only, and for a whole row only
    where a tie at its k-th value leaves the choice open. The distances returned are recomputed
    from the vectors (:meth:`~simlearn.distances.Distance.exact`: no cancellation between close
    points).

    Args:
        gallery: (N, D) float32 embeddings, N < 2**32.
        distance: a :mod:`simlearn.distances` object or name.
    """

    def __init__(self, gallery: torch.Tensor, distance: Distance | str = "euclidean") -> None:
        self.distance = distances.get(distance)
        self.gallery = gallery  # (N, D)
        self.ranked = self.distance.ranking_form(gallery, gallery=True, name="gallery_emb")

    def __len__(self) -> int:
        return self.gallery.shape[0]

    def _keys(self, values: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """int64 keys ``(bits << 32) | col`` of float32 ``values`` at gallery positions
        ``cols`` (same shape, or broadcast)."""
        if self.distance.signed:
            bits = _sign_magnitude_keys(values)  # in [-2**31, 2**31)
        else:  # non-negative: the bits order like the values; the sign of a -0.0 is dropped
            bits = values.contiguous().view(torch.int32).bitwise_and(0x7FFFFFFF).to(torch.int64)
        return (bits << 32) | cols

    def _block_top(
        self, d: torch.Tensor, start: int, width: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (S, width) of the ``width`` smallest keys of each row of the block
        ``d`` (S, w) whose first column is item ``start``."""
        v, j = torch.topk(d, width, dim=1, largest=False, sorted=False)  # (S, width)
        keys = self._keys(v, j + start)
        # the value top-k is the key top-k unless a tie at the k-th value offers a choice
        open_ = ((d <= v.amax(1, keepdim=True)).sum(1) != width).nonzero().squeeze(1)
        if len(open_):
            dr = d.index_select(0, open_)  # (R, w)
            cols = torch.arange(start, start + d.shape[1], device=d.device, dtype=torch.int64)
            top = torch.topk(self._keys(dr, cols), width, dim=1, largest=False, sorted=False)
            keys[open_], v[open_] = top.values, dr.gather(1, top.indices)
        return keys, v

    @torch.no_grad()
    def search(
        self,
        queries: torch.Tensor,
        k: int,
        *,
        exclude: torch.Tensor | None = None,
        query_chunk: int | None = None,
        block_rows: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``k`` nearest items of each query, nearest first (equal values: lower position).

        Args:
            queries: (Q, D) embeddings, on the gallery's device and in its dtype.
            k: results per query, at most the gallery size (minus one where ``exclude`` names
                an item).
            exclude: (Q,) int64 a gallery position to leave out of each query's results (the
                query itself), or -1 for none.
            query_chunk: queries per chunk (None: all at once).
            block_rows: gallery rows per block (None: the whole gallery in one block).

        Returns:
            positions (Q, k) int64 and distances (Q, k) (:meth:`Distance.exact`), on the device.
        """
        dist = self.distance
        q_ranked = dist.ranking_form(queries, gallery=False, name="query_emb")
        n_q, n = queries.shape[0], self.ranked.shape[0]
        rows = n if block_rows is None else max(int(block_rows), k)  # block 0 fills the top k
        chunk = n_q if query_chunk is None else max(1, int(query_chunk))
        idx_out = torch.empty((n_q, k), dtype=torch.int64, device=queries.device)
        dist_out = torch.empty((n_q, k), dtype=queries.dtype, device=queries.device)
        inf = float("inf")
        for s in range(0, n_q, chunk):
            e = min(n_q, s + chunk)
            qc = q_ranked[s:e]  # (Qc, D')
            ex = None if exclude is None else exclude[s:e]
            # one reused buffer when the gallery takes several blocks of a matrix product
            buf = None
            if rows < n and dist.product:
                buf = torch.empty((e - s, rows), dtype=qc.dtype, device=qc.device)
            best = best_v = tau = None
            for b0 in range(0, n, rows):
                b1 = min(n, b0 + rows)
                out = None if buf is None else buf[:, : b1 - b0]
                d = dist.ranking_block(qc, self.ranked[b0:b1], out)  # (Qc, w)
                if ex is not None:  # the excluded item: +inf, after every real item
                    r = ((ex >= b0) & (ex < b1)).nonzero().squeeze(1)
                    d[r, ex[r] - b0] = inf
                if best is None:
                    best, best_v = self._block_top(d, b0, k)  # (Qc, k)
                    tau = best_v.amax(1)  # (Qc,) current k-th value
                    continue
                sel = (d.amin(1) < tau).nonzero().squeeze(1)  # rows this block can improve
                if len(sel) == 0:
                    continue
                keys, v = self._block_top(d.index_select(0, sel), b0, min(k, b1 - b0))
                merged = torch.topk(
                    torch.cat([best[sel], keys], 1), k, dim=1, largest=False, sorted=False
                )  # (S, k)
                best[sel] = merged.values
                best_v[sel] = torch.cat([best_v[sel], v], 1).gather(1, merged.indices)
                tau[sel] = best_v[sel].amax(1)
            idx = torch.sort(best, dim=1).values & 0xFFFFFFFF  # (Qc, k) nearest first
            idx_out[s:e] = idx
            # reported distances from the vectors: no cancellation for close pairs
            dist_out[s:e] = dist.exact(queries[s:e, None, :], self.gallery[idx])  # (Qc, k)
        return idx_out, dist_out


def nearest_neighbors(
    query_emb: np.ndarray | torch.Tensor,
    gallery_emb: np.ndarray | torch.Tensor | None = None,
    *,
    k: int,
    distance: Distance | str = "euclidean",
    exclude: np.ndarray | torch.Tensor | Sequence[int] | None = None,
    device: str | torch.device | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest gallery items of every query, nearest first (for retrieval figures).

    Equal distances rank by gallery index (deterministic). When ``gallery_emb`` is None the
    query set is the gallery and a query is never its own neighbour (removed by index); with a
    distinct gallery, ``exclude`` (Q,) names a gallery position each query leaves out (its own,
    where it is also a gallery item), -1 for none, as in :func:`retrieval_metrics`. The
    search is a :class:`FlatIndex` over the whole gallery, in chunks of queries whose int64 keys
    fit ``memory_budget``.

    Returns:
        indices (Q, k) int64 into the gallery, and distances (Q, k) float32 (the evaluation
        dissimilarities of :mod:`simlearn.distances`): Euclidean ``||q - g||``, cosine
        ``1 - cos``, Manhattan, Chebyshev, or ``-q.g`` for ``dot``. The ranking uses float32
        distances as :func:`retrieval_metrics` does; the Euclidean distances returned are
        recomputed from the differences ``q - g`` (no cancellation between close points).
    """
    distance = distances.get(distance)
    dev = _resolve_device(device)
    q = _as_embeddings("query_emb", query_emb, torch.float32, dev)
    self_source = gallery_emb is None
    g = q if self_source else _as_embeddings("gallery_emb", gallery_emb, torch.float32, dev)
    if g.shape[1] != q.shape[1]:
        raise ValueError(f"query_emb has dimension {q.shape[1]} but gallery_emb has {g.shape[1]}")
    if self_source:
        if exclude is not None:
            raise ValueError("exclude goes with a distinct gallery_emb (a query leaves itself out)")
        ex = torch.arange(q.shape[0], device=dev)
    elif exclude is not None:
        ex = torch.from_numpy(_as_exclude(exclude, q.shape[0], g.shape[0])).to(dev)
    else:
        ex = None
    n_eff = g.shape[0] - (0 if ex is None or not bool((ex >= 0).any()) else 1)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_eff:
        raise ValueError(f"k must be an integer in [1, {n_eff}] (gallery size), got {k!r}")
    index = FlatIndex(g, distance)
    chunk = max(1, memory_budget // (g.shape[0] * 16))
    idx, dist = index.search(q, int(k), exclude=ex, query_chunk=chunk)
    return idx.cpu().numpy(), dist.cpu().numpy()


def query_pr_curve(
    query_emb: np.ndarray | torch.Tensor,
    query_labels: np.ndarray | torch.Tensor | Sequence,
    gallery_emb: np.ndarray | torch.Tensor | None = None,
    gallery_labels: np.ndarray | torch.Tensor | Sequence | None = None,
    *,
    index: int,
    distance: Distance | str = "euclidean",
    precision: Precision = "float32",
    exclude: int = -1,
) -> QueryPRCurve:
    """Precision-recall points of query ``index`` over the full ranking (for example curves).

    Same conventions as :func:`retrieval_metrics` (self excluded when the gallery is None, same
    distances; with a distinct gallery, ``exclude`` is the gallery position this query leaves
    out, -1 for none): one point per distinct distance, exactly scikit-learn's
    ``precision_recall_curve(relevant, -distance)`` read from the nearest threshold outwards,
    and ``ap`` equals the query's ``average_precision``.
    """
    _one_of("precision", precision, PRECISIONS)
    dtype = torch.float32 if precision == "float32" else torch.float64
    cpu = torch.device("cpu")
    n_q = len(query_labels)
    if isinstance(index, bool) or not isinstance(index, int | np.integer) or not 0 <= index < n_q:
        raise ValueError(f"index must be an integer in [0, {n_q - 1}], got {index!r}")
    ex = None
    if exclude != -1:
        ex = np.full(n_q, -1, dtype=np.int64)
        ex[index] = exclude
    prep = _prepare(query_emb, query_labels, gallery_emb, gallery_labels, distance, dtype, cpu, ex)
    pos = int(np.flatnonzero(prep.query_order == index)[0])  # sorted position of the query
    block = prep.distance.ranking_block(prep.query[pos : pos + 1], prep.gallery)
    d = block[0].double().numpy()  # (N,)
    c = prep.query_codes[pos]
    relevant = np.zeros(d.shape[0], dtype=bool)
    relevant[prep.code_start[c] : prep.code_end[c]] = True
    if prep.exclude_cols is not None and prep.exclude_cols[pos] >= 0:
        keep = np.ones(d.shape[0], dtype=bool)
        keep[prep.exclude_cols[pos]] = False
        d, relevant = d[keep], relevant[keep]
    n_rel = int(relevant.sum())
    if n_rel == 0:
        raise ValueError(f"query {index} has no relevant item in the gallery: no PR curve")
    order = np.lexsort((relevant, d))  # by distance, non-matches first within a tie
    d, relevant = d[order], relevant[order]
    tp = np.cumsum(relevant)  # (N,)
    ends = np.flatnonzero(np.r_[d[1:] != d[:-1], True])  # last index of each distance group
    recall = tp[ends] / n_rel
    prec = tp[ends] / (ends + 1.0)
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * prec))
    return QueryPRCurve(recall.astype(np.float64), prec.astype(np.float64), ap)
