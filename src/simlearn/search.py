"""Similarity search: an exact gallery index over an experiment's embeddings.

A :class:`GalleryIndex` holds the gallery vectors of ``data/embeddings/<exp>.npz`` (every row, or
the photos of a two-domain sketch/photo file), normalised as asked (``none | l2 | sqrt``, see
:mod:`simlearn.distances`), with their rows, ids and labels. :func:`load_index` builds
it on first use and saves it beside the embeddings as ``<exp>.index.<normalize>.npz``
(uncompressed, so it loads at disk speed), and rebuilds it when the embeddings change (their
SHA-256 is stored in the index). An exact flat index is its vectors: faiss's ``IndexFlat``
stores exactly them, so the saved file serves both backends, and a faiss index is filled from
it when loaded (one copy).

Search is exact, for every distance of :mod:`simlearn.distances`, on one of two backends:

- ``faiss`` (``pip install -e ".[faiss]"``): ``IndexFlatL2`` (euclidean), ``IndexFlatIP``
  (dot, and cosine on unit vectors), ``IndexFlat`` with ``METRIC_L1`` / ``METRIC_Linf``;
- ``torch``: the exact flat index of the evaluation,
  :class:`simlearn.evaluation.retrieval.FlatIndex`, over gallery blocks of :data:`BLOCK_ROWS`
  rows: one matrix product each (the ranking form of :mod:`simlearn.distances`:
  ``[q, ||q||^2, 1] . [-2g, 1, ||g||^2]``) or ``torch.cdist`` for L1 / L-infinity; ``topk`` on
  the first block, then only the rows whose block minimum beats their current k-th distance
  are selected again, so that, as faiss's heaps do, most of the gallery costs one comparison
  pass. On 1,000 queries x 1,000,000 x 128 (one thread) this path takes 1.17x faiss
  ``IndexFlatL2``'s time on an AMD EPYC core (3.7 s against 3.2 s; ``benchmarks/bench_search.py``
  case (b)), 1.34x on the 2-core machine of an earlier round (15.0 s against 11.2 s; 1.22x to
  1.39x across runs there), with the same neighbours. faiss stays the faster backend for L2 and
  dot; ``backend="auto"`` takes it when it is installed.

``backend="auto"`` takes faiss when it is installed, except for L-infinity, where
``torch.cdist`` was 3.6x faster than faiss's extra-metric path (7.8 s against 28.1 s on an AMD
EPYC core; 41 s against 126 s, 3.1x, on the earlier machine), while faiss's L1 was 3.4x faster
than ``torch.cdist`` (2.0 s against 7.0 s; 13 s against 42 s, 3.3x, earlier) (:data:`FAISS_WINS`;
``benchmarks/bench_search.py`` case (c), 1,000 queries x 100,000 x 128, k = 10, one thread).

Both backends return the same neighbours up to ties, and report the same distances: the
evaluation dissimilarities of :mod:`simlearn.distances` (``Distance.exact``), recomputed for
the k results from the vectors themselves (so Euclidean distances are true distances
``||q - g||``, not faiss's squared ones, and carry no cancellation error). Results are ordered by
(distance, gallery position).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import torch

from simlearn import distances
from simlearn.distances import (
    Distance,
    Normalization,
    check_normalization,
    normalize_embeddings,
)
from simlearn.evaluation.retrieval import FlatIndex

__all__ = [
    "BLOCK_ROWS",
    "FAISS_WINS",
    "GalleryIndex",
    "SearchResult",
    "build_index",
    "faiss_available",
    "index_path",
    "load_index",
]

Backend = Literal["auto", "faiss", "torch"]
BACKENDS: Final[tuple[str, ...]] = ("auto", "faiss", "torch")

#: distances that ``backend="auto"`` sends to faiss when it is installed (L-infinity stays in
#: torch: ``torch.cdist`` beat faiss's METRIC_Linf 3.1x; faiss's METRIC_L1 beat it 3.3x)
FAISS_WINS: Final[frozenset[str]] = frozenset({"euclidean", "cosine", "dot", "manhattan"})

#: gallery rows per block of the torch path with many queries: 1,000 x 4,096 float32 distances
#: (16 MiB) stay in cache for the selection; 8,192 and 16,384 were 20-40 % slower end to end
BLOCK_ROWS: Final[int] = 4096
#: with at most this many queries, blocks grow to BIG_BLOCK_ROWS: fewer, larger products
_FEW_QUERIES: Final[int] = 64
_BIG_BLOCK_ROWS: Final[int] = 65_536
#: queries per chunk of the torch path
_QUERY_CHUNK: Final[int] = 4096

_FORMAT: Final[int] = 1


def faiss_available() -> bool:
    """Whether faiss can be imported (the optional extra ``simlearn[faiss]``)."""
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            'backend="faiss" needs faiss: pip install -e ".[faiss]" (or faiss-cpu)'
        ) from e
    return faiss


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def index_path(embeddings: str | Path, normalize: Normalization | str = "none") -> Path:
    """Where the index of ``embeddings`` (``data/embeddings/<exp>.npz``) under ``normalize`` is
    saved: beside it, ``<exp>.index.<normalize>.npz``."""
    p = Path(embeddings)
    return p.with_name(f"{p.stem}.index.{check_normalization(normalize)}.npz")


# --------------------------------------------------------------------------------------------
# Exact k-NN, one backend each. Both return gallery positions (Q, k), none of them the excluded
# one; the caller recomputes the distances of the results.
# --------------------------------------------------------------------------------------------


class _TorchFlat:
    """Exact k-NN in torch: the evaluation's :class:`FlatIndex`, in gallery blocks."""

    def __init__(self, gallery: torch.Tensor, distance: Distance) -> None:
        self.index = FlatIndex(gallery, distance)

    def search(self, queries: torch.Tensor, k: int, exclude: np.ndarray | None) -> torch.Tensor:
        rows = BLOCK_ROWS if queries.shape[0] > _FEW_QUERIES else _BIG_BLOCK_ROWS
        excl = None if exclude is None else torch.from_numpy(exclude)
        pos, _ = self.index.search(
            queries, k, exclude=excl, query_chunk=_QUERY_CHUNK, block_rows=rows
        )
        return pos


#: the faiss metric of each distance: (index class name, metric name or None)
_FAISS_INDEX: Final[dict[str, tuple[str, str | None]]] = {
    "euclidean": ("IndexFlatL2", None),
    "squared_euclidean": ("IndexFlatL2", None),
    "cosine": ("IndexFlatIP", None),  # on unit vectors
    "dot": ("IndexFlatIP", None),
    "manhattan": ("IndexFlat", "METRIC_L1"),
    "chebyshev": ("IndexFlat", "METRIC_Linf"),
}


class _FaissFlat:
    """Exact k-NN with a faiss flat index of the right metric."""

    def __init__(self, gallery: np.ndarray, distance: Distance) -> None:
        faiss = _faiss()
        d = gallery.shape[1]
        self.distance = distance
        g = np.ascontiguousarray(gallery, dtype=np.float32)
        if distance.normalizes:
            g = normalize_embeddings(g, "l2")
        cls, metric = _FAISS_INDEX[distance.name]
        if metric is None:
            self.index = getattr(faiss, cls)(d)
        else:
            self.index = getattr(faiss, cls)(d, getattr(faiss, metric))
        self.index.add(g)

    def search(self, queries: torch.Tensor, k: int, exclude: np.ndarray | None) -> torch.Tensor:
        q = np.ascontiguousarray(queries.numpy(), dtype=np.float32)
        if self.distance.normalizes:
            q = normalize_embeddings(q, "l2")
        extra = 1 if exclude is not None and (exclude >= 0).any() else 0
        _, idx = self.index.search(q, k + extra)  # (Q, k + extra); IP: largest first
        pos = torch.from_numpy(idx)
        if extra:  # faiss cannot leave an item out: one more, then drop it
            drop = pos == torch.from_numpy(exclude)[:, None]  # (Q, k + 1)
            none = ~drop.any(1)
            drop[none, -1] = True  # nothing to exclude: drop the (k+1)-th
            pos = pos[~drop].view(q.shape[0], k)
        return pos


# --------------------------------------------------------------------------------------------
# The index
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchResult:
    """The k nearest gallery items of each query, nearest first (ties by gallery position)."""

    positions: np.ndarray  # (Q, k) int64 positions in the index
    rows: np.ndarray  # (Q, k) int64 rows of the embeddings file
    ids: np.ndarray  # (Q, k) ids
    labels: np.ndarray  # (Q, k) labels
    distances: np.ndarray  # (Q, k) float32, the dissimilarities of simlearn.distances
    distance: str  # canonical name
    backend: str  # faiss | torch


class GalleryIndex:
    """Exact search over gallery vectors, normalised once; see the module docstring.

    Args:
        vectors: (N, D) gallery embeddings as the model gives them; stored normalised.
        rows: (N,) rows of the embeddings file (default ``0..N-1``).
        ids: (N,) ids (default: the rows as strings); labels: (N,) (default: -1).
        normalize: ``none | l2 | sqrt``, applied to the gallery here and to every query.
        source_sha256: SHA-256 of the embeddings file the vectors come from ("" if none).
        domain: the domain the gallery was taken from ("" when every row).
    """

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        rows: np.ndarray | None = None,
        ids: np.ndarray | Sequence | None = None,
        labels: np.ndarray | Sequence | None = None,
        normalize: Normalization | str = "none",
        source_sha256: str = "",
        domain: str = "",
        _normalized: bool = False,
    ) -> None:
        self.normalize = check_normalization(normalize)
        v = np.asarray(vectors)
        if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] == 0:
            raise ValueError(f"vectors must be a non-empty (N, D) array, got shape {v.shape}")
        if not np.isfinite(v).all():
            raise ValueError("vectors contain NaN or infinite values")
        v = np.ascontiguousarray(v, dtype=np.float32)
        self.vectors = v if _normalized else normalize_embeddings(v, self.normalize)  # (N, D)
        n = self.vectors.shape[0]
        self.rows = np.arange(n, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)
        self.ids = self.rows.astype(str) if ids is None else np.asarray(ids)
        self.labels = np.full(n, -1, np.int64) if labels is None else np.asarray(labels)
        for name, a in (("rows", self.rows), ("ids", self.ids), ("labels", self.labels)):
            if a.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {a.shape}")
        self.source_sha256 = source_sha256
        self.domain = domain
        self._position = {int(r): i for i, r in enumerate(self.rows)}
        self._tensor = torch.from_numpy(self.vectors)  # shares memory
        self._engines: dict[tuple[str, str], Any] = {}

    def __len__(self) -> int:
        return self.vectors.shape[0]

    def position_of(self, row: int) -> int | None:
        """The position in the index of row ``row`` of the embeddings file (None: not in it)."""
        return self._position.get(int(row))

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    # -- search ---------------------------------------------------------------------------

    def backend_for(self, distance: Distance | str, backend: Backend | str = "auto") -> str:
        """The backend a search with ``distance`` runs on: ``faiss`` or ``torch``."""
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not supported; allowed: {BACKENDS}")
        if backend == "auto":
            distance = distances.get(distance)
            return "faiss" if distance.name in FAISS_WINS and faiss_available() else "torch"
        return backend

    def prepare(self, distance: Distance | str, backend: Backend | str = "auto") -> str:
        """Build the search structure of ``distance`` now (else the first search does)."""
        distance = distances.get(distance)
        which = self.backend_for(distance, backend)
        key = (distance.name, which)
        if key not in self._engines:
            if distance.normalizes and bool((np.abs(self.vectors).sum(1) == 0).any()):
                raise ValueError("the gallery has a zero vector: its cosine distance is undefined")
            if which == "faiss":
                self._engines[key] = _FaissFlat(self.vectors, distance)
            else:
                self._engines[key] = _TorchFlat(self._tensor, distance)
        return which

    def search(
        self,
        queries: np.ndarray | torch.Tensor,
        k: int,
        *,
        distance: Distance | str = "euclidean",
        backend: Backend | str = "auto",
        exclude_rows: np.ndarray | Sequence[int] | None = None,
    ) -> SearchResult:
        """The ``k`` nearest gallery items of each query.

        Args:
            queries: (Q, D) or (D,) embeddings as the model gives them (normalised here as the
                gallery was).
            k: results per query, at most the gallery size (minus one with ``exclude_rows``).
            distance: a :mod:`simlearn.distances` object or name (aliases ``l1, l2, linf`` too).
            backend: ``auto`` (see :data:`FAISS_WINS`), ``faiss`` or ``torch``.
            exclude_rows: (Q,) a row of the embeddings file to leave out of each query's
                results (the query itself, when it is in the gallery), or -1 for none.
        """
        distance = distances.get(distance)
        q = torch.as_tensor(
            np.asarray(queries) if not isinstance(queries, torch.Tensor) else queries
        )
        q = q.detach().cpu().to(torch.float32)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(
                f"queries must be (Q, {self.dim}) embeddings of this gallery, got {tuple(q.shape)}"
            )
        if not bool(torch.isfinite(q).all()):
            raise ValueError("queries contain NaN or infinite values")
        q = normalize_embeddings(q, self.normalize).contiguous()
        if distance.normalizes and bool((q.abs().sum(1) == 0).any()):
            raise ValueError("a query is a zero vector: its cosine distance is undefined")
        excl = None
        if exclude_rows is not None:
            excl = np.asarray(exclude_rows, dtype=np.int64).reshape(-1)
            if excl.shape[0] != q.shape[0]:
                raise ValueError(f"exclude_rows must have {q.shape[0]} entries, got {len(excl)}")
            excl = np.array([self._position.get(int(r), -1) if r >= 0 else -1 for r in excl])
        n_max = len(self) - (1 if excl is not None and (excl >= 0).any() else 0)
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= n_max:
            raise ValueError(f"k must be an integer in [1, {n_max}] (gallery size), got {k!r}")
        k = int(k)
        which = self.prepare(distance, backend)
        engine = self._engines[(distance.name, which)]
        pos = engine.search(q, k, excl)  # (Q, k)
        dist = distance.exact(q[:, None, :], self._tensor[pos])  # (Q, k), from the vectors
        # order by (distance, position): deterministic, and the same on both backends
        p_np, d_np = pos.numpy(), dist.numpy()
        order = np.lexsort((p_np, d_np), axis=-1)
        p_np = np.take_along_axis(p_np, order, 1)
        d_np = np.take_along_axis(d_np, order, 1).astype(np.float32)
        return SearchResult(
            positions=p_np,
            rows=self.rows[p_np],
            ids=self.ids[p_np],
            labels=self.labels[p_np],
            distances=d_np,
            distance=distance.name,
            backend=which,
        )

    # -- persistence ----------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the index (vectors, rows, ids, labels, metadata) to ``path``, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": _FORMAT,
            "normalize": self.normalize,
            "source_sha256": self.source_sha256,
            "domain": self.domain,
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            vectors=self.vectors,
            rows=self.rows,
            ids=self.ids.astype(str),
            labels=self.labels,
            meta=np.array(json.dumps(meta)),
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GalleryIndex:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != _FORMAT:
                raise ValueError(f"{path}: index format {meta.get('format')}, expected {_FORMAT}")
            return cls(
                z["vectors"],
                rows=z["rows"],
                ids=z["ids"],
                labels=z["labels"],
                normalize=meta["normalize"],
                source_sha256=meta["source_sha256"],
                domain=meta["domain"],
                _normalized=True,
            )


def _gallery_rows(arrays: Any, domain: str | None) -> tuple[np.ndarray, str]:
    """Rows of the gallery and the domain they were taken from ("" for every row)."""
    n = arrays["embeddings"].shape[0]
    has_domain = "domain" in getattr(arrays, "files", arrays)
    if domain == "auto":
        domain = "photo" if has_domain else None
    if domain is None or domain == "":
        return np.arange(n, dtype=np.int64), ""
    if not has_domain:
        raise ValueError(f"domain={domain!r}: the embeddings have no `domain` array")
    doms = np.asarray(arrays["domain"]).astype(str)
    rows = np.flatnonzero(doms == domain)
    if len(rows) == 0:
        raise ValueError(f"domain={domain!r}: no such row; domains: {sorted(set(doms.tolist()))}")
    return rows, domain


def build_index(
    embeddings: str | Path,
    normalize: Normalization | str = "none",
    *,
    domain: str | None = "auto",
) -> GalleryIndex:
    """The index of an embeddings file (``embeddings``, ``labels``, ``ids``; ``domain`` for
    sketch/photo files). ``domain``: ``"auto"`` takes the photos of a two-domain file and every
    row otherwise; None every row; a name, the rows of that domain."""
    path = Path(embeddings)
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `dvc repro embed@{path.stem}` first")
    with np.load(path, allow_pickle=False) as z:
        rows, dom = _gallery_rows(z, domain)
        emb = z["embeddings"][rows]
        labels = z["labels"][rows] if "labels" in z.files else None
        ids = z["ids"][rows].astype(str) if "ids" in z.files else None
    return GalleryIndex(
        emb,
        rows=rows,
        ids=ids,
        labels=labels,
        normalize=normalize,
        source_sha256=_sha256(path),
        domain=dom,
    )


def load_index(
    embeddings: str | Path,
    normalize: Normalization | str = "none",
    *,
    domain: str | None = "auto",
    save: bool = True,
) -> GalleryIndex:
    """The saved index of ``embeddings`` under ``normalize`` (see :func:`index_path`), or a new
    one, built and (``save``) written there, when it is missing or was built from other
    embeddings or for another gallery domain."""
    path = Path(embeddings)
    ipath = index_path(path, normalize)
    if ipath.exists() and path.exists():
        try:
            index = GalleryIndex.load(ipath)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):
            index = None  # truncated, unreadable or an old format: rebuilt and saved below
        if index is not None and index.source_sha256 == _sha256(path):
            with np.load(path, allow_pickle=False) as z:
                _, dom = _gallery_rows(z, domain)
            if index.domain == dom:
                return index
    index = build_index(path, normalize, domain=domain)
    if save:
        index.save(ipath)
    return index
