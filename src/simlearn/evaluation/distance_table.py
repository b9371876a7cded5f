"""What the choice of distance and normalisation does: test retrieval metrics of one set of
embeddings under every distance x normalisation of :mod:`simlearn.distances`.

The protocol is the evaluation's (:mod:`simlearn.evaluation.protocol`): the test split is both
query set and gallery, a query never its own match; a sketch/photo file (with a ``domain``
array) queries the test photos with the test sketches. So the ``euclidean`` / ``none`` cell
equals the experiment's ``map`` in ``metrics.json`` when its ``eval`` section keeps the defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from simlearn import distances as D
from simlearn.distances import (
    DISTANCES,
    NORMALIZATIONS,
    Distance,
    check_normalization,
    normalize_embeddings,
)
from simlearn.evaluation.retrieval import retrieval_metrics

__all__ = ["distance_table", "distance_table_markdown"]

#: the columns of :func:`distance_table`, besides ``distance`` and ``normalize``
METRICS = ("map", "map_at_r", "precision_at_1", "n_queries")


def _query_and_gallery(
    arrays: Mapping[str, np.ndarray], split: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Row masks: the queries, and the gallery (None: the queries themselves)."""
    in_split = np.asarray(arrays["split"]).astype(str) == split
    if "domain" in arrays:
        domain = np.asarray(arrays["domain"]).astype(str)
        return in_split & (domain == "sketch"), in_split & (domain == "photo")
    return in_split, None


def distance_table(
    arrays: Mapping[str, np.ndarray],
    *,
    distances: Sequence[Distance | str] = DISTANCES,
    normalizations: Sequence[str] = NORMALIZATIONS,
    split: str = "test",
) -> pd.DataFrame:
    """Retrieval metrics of ``arrays`` (what ``embed`` wrote: ``embeddings``, ``labels``,
    ``split``; ``domain`` for sketch/photo) for every distance x normalisation (``distances``:
    :mod:`simlearn.distances` objects or names).

    Returns:
        one row per (distance, normalize), in the order given: ``distance`` (canonical name),
        ``normalize``, ``map``, ``map_at_r``, ``precision_at_1``, ``n_queries``.
    """
    dists = [D.get(d) for d in distances]
    norms = [check_normalization(n) for n in normalizations]
    emb = np.asarray(arrays["embeddings"], dtype=np.float32)
    labels = np.asarray(arrays["labels"])
    q_mask, g_mask = _query_and_gallery(arrays, split)
    if q_mask.sum() < (1 if g_mask is not None else 2):
        raise ValueError(f"the {split} split has too few queries ({int(q_mask.sum())})")
    rows = []
    for norm in norms:
        x = normalize_embeddings(emb, norm)  # (N, D)
        q, yq = x[q_mask], labels[q_mask]
        g, yg = (None, None) if g_mask is None else (x[g_mask], labels[g_mask])
        for dist in dists:
            s = retrieval_metrics(q, yq, g, yg, distance=dist, ks=(1,)).summary()
            rows.append({"distance": dist.name, "normalize": norm, **{m: s[m] for m in METRICS}})
    return pd.DataFrame(rows).astype({"n_queries": np.int64})


def distance_table_markdown(tables: Mapping[str, pd.DataFrame], metric: str = "map") -> str:
    """Markdown: per experiment, one table of ``metric`` with a row per distance and a column per
    normalisation, the best cells (equal to 4 decimals) in bold."""
    out = []
    for name, df in tables.items():
        norms = list(dict.fromkeys(df["normalize"]))
        best = f"{df[metric].max():.4f}"
        out.append(f"### {name}\n")
        n_q = int(df["n_queries"].iloc[0])
        out.append(f"Test {metric} ({n_q} queries); rows: distance, columns: normalisation.\n")
        out.append("| distance | " + " | ".join(norms) + " |")
        out.append("|---|" + "---:|" * len(norms))
        for dist in dict.fromkeys(df["distance"]):
            cells = []
            for norm in norms:
                v = float(df[(df["distance"] == dist) & (df["normalize"] == norm)][metric].iloc[0])
                text = f"{v:.4f}"
                cells.append(f"**{text}**" if text == best else text)
            out.append(f"| {D.get(dist).label} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)
