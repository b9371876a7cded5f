"""The evaluation protocol of labelled embeddings (the image tasks: metric and simclr).

- Retrieval (:mod:`simlearn.evaluation.retrieval`: mAP, MAP@R, R-precision, P@K, Recall@1/2/4/8,
  MRR, the 11-point PR curve): over the test split. The test rows marked ``is_query`` are ranked
  against those marked ``is_gallery`` (a dataset's manifest may set both, as
  open-metric-learning's format does; kind ``images`` has neither, which means every row is
  both). A row that is both never retrieves itself (left out by index); when the two sets are
  the same rows, as by default, this is leave-one-out retrieval over the test split.
- Clustering (:mod:`simlearn.evaluation.clustering`): ``nmi``, k-means with as many clusters as
  test classes on every test embedding (query or gallery), seeded by the experiment's ``seed``.
- Pair verification: ROC and PR over (a sample of) the test split's pairs, whatever their
  query/gallery roles.
- Classification probes (``knn_accuracy``, ``ncm_accuracy``, ``linear_probe_accuracy``, and the
  simclr task's ``weighted_knn_accuracy``), see :func:`probe_rows`: the training split's seen
  classes are the reference set, and the test images of classes that have training images are
  the queries. When the test classes were never trained on (a ``files`` dataset split
  ``by class``, or a benchmark's official split: the protocol of Musgrave et al., "A Metric
  Learning Reality Check", ECCV 2020), no test image has a class in the reference set, so these
  probes are not reported (their keys are absent): every prediction would be a class of the
  training split, wrong by construction. They are not replaced by a leave-one-out probe within
  the test split: 1-NN leave-one-out accuracy is ``precision_at_1`` (= ``recall_at_1``), and a
  k-NN vote or class means built from the test labels themselves measure what Recall@K,
  MAP@R and NMI already do there, under a name that would read as today's train-referenced
  probe. Retrieval, Recall@K and NMI are the figures of disjoint classes.
- Held-out classes (``holdout_classes``, never trained on): ``seen_*`` and ``unseen_*`` repeat the
  retrieval inside each group of test images, so the unseen figure measures how the embedding
  ranks classes it never saw among themselves.
- Held-out classes, as the applications of an embedding (:func:`heldout_metrics`): few-shot
  episodes among the held-out classes' test images, classified by the nearest prototype under
  ``eval.distance`` (:mod:`simlearn.evaluation.fewshot`: ``fewshot_<N>way_<K>shot_accuracy``
  and its ``_ci95``), and out-of-distribution detection, the seen classes' test images against
  the held-out ones' (:mod:`simlearn.evaluation.ood`: ``ood_knn_*`` and ``ood_mahalanobis_*``,
  AUROC, AUPR, FPR@95), with a figure of both scores' histograms (``ood_scores.png``).
  Few-shot needs two held-out classes with test images; settings under ``eval.fewshot`` and
  ``eval.ood``.
- Validation during training: retrieval on the validation split, seen classes only, so the
  held-out classes never select or tune a model.

Images are read in chunks (the validation embedding, the retrieval grid): a dataset whose
images stay on disk is never loaded whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from simlearn.evaluation.retrieval import RetrievalResult

# the metric modules (torch, scikit-learn) are imported by the functions that use them, so that
# the task modules can read KEY_METRICS cheaply

#: the figures of the report for embedding tasks, most important first
KEY_METRICS = (
    "map",
    "map_at_r",
    "r_precision",
    "precision_at_1",
    "recall_at_1",
    "nmi",
    "roc_auc",
    "knn_accuracy",
    "ncm_accuracy",
    "linear_probe_accuracy",
    "seen_map",
    "unseen_map",
    # held-out classes: few-shot at the first configured way (fewshot_way: its N) and kNN OOD
    "fewshot_1shot_accuracy",
    "fewshot_5shot_accuracy",
    "ood_knn_auroc",
    "ood_knn_fpr95",
)


@dataclass(frozen=True)
class QueryGallery:
    """Which rows rank against which: the queries, and the gallery they are ranked against.

    ``gallery`` None: the queries are the gallery, and each query leaves itself out (today's
    leave-one-out retrieval). Otherwise ``exclude`` (Q,) holds, for each query also in the
    gallery, its own gallery position, left out of its ranking by index; -1 for the others.
    """

    queries: np.ndarray  # (Q,) int64 rows of the query set
    gallery: np.ndarray | None  # (G,) int64 rows of the gallery; None: the queries themselves
    exclude: np.ndarray | None  # (Q,) int64 own gallery position or -1; None with gallery None

    @property
    def gallery_rows(self) -> np.ndarray:
        return self.queries if self.gallery is None else self.gallery

    @property
    def ranked(self) -> int:
        """Gallery items every query can retrieve at least (its own row left out)."""
        if self.gallery is None:
            return len(self.queries) - 1
        return len(self.gallery) - int((self.exclude >= 0).any())

    def retrieval(self, emb: np.ndarray, labels: np.ndarray, **kwargs: Any) -> RetrievalResult:
        """:func:`~simlearn.evaluation.retrieval.retrieval_metrics` of these queries against
        this gallery (``kwargs``: distance, ks, ...)."""
        from simlearn.evaluation.retrieval import retrieval_metrics

        q = self.queries
        if self.gallery is None:
            return retrieval_metrics(emb[q], labels[q], **kwargs)
        g = self.gallery
        return retrieval_metrics(
            emb[q], labels[q], emb[g], labels[g], exclude=self.exclude, **kwargs
        )


def query_gallery(
    rows: np.ndarray, is_query: np.ndarray | None = None, is_gallery: np.ndarray | None = None
) -> QueryGallery | None:
    """The queries (``rows & is_query``) and gallery (``rows & is_gallery``) among the rows of
    the bool mask ``rows`` (N,); None (both): every row is both. None when nothing can be
    ranked: no query, or no gallery item a query may retrieve."""
    n = len(rows)
    isq = np.ones(n, dtype=bool) if is_query is None else np.asarray(is_query, dtype=bool)
    isg = np.ones(n, dtype=bool) if is_gallery is None else np.asarray(is_gallery, dtype=bool)
    q_mask, g_mask = rows & isq, rows & isg
    queries = np.flatnonzero(q_mask)
    if np.array_equal(q_mask, g_mask):
        qg = QueryGallery(queries, None, None)
    else:
        gallery = np.flatnonzero(g_mask)
        position = np.full(n, -1, dtype=np.int64)
        position[gallery] = np.arange(len(gallery))
        qg = QueryGallery(queries, gallery, position[queries])
    return qg if len(queries) and qg.ranked >= 1 else None


def probe_rows(
    labels: np.ndarray, split: np.ndarray, holdout: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool masks of the classification probes: the reference set (training rows of the
    classes trained on) and the queries (test rows of a class trained on that has training
    rows). Test classes without a training row (held out, or never in the training split:
    disjoint train and test classes) have no probe query; see the module docstring."""
    ref = (split == "train") & ~holdout
    queries = (split == "test") & ~holdout & np.isin(labels, labels[ref])
    return ref, queries


def labelled_metrics(
    emb: np.ndarray,
    labels: np.ndarray,
    split: np.ndarray,
    holdout: np.ndarray,
    cfg: Any,
    *,
    is_query: np.ndarray | None = None,
    is_gallery: np.ndarray | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Every metric of the protocol above, and the data the curves and figures need.

    Args:
        emb: (N, D) embeddings of every sample; labels: (N,); split: (N,) train | val | test;
        holdout: (N,) bool, True for the classes held out of training.
        cfg: the experiment config (``cfg.eval`` and ``cfg.seed`` are read).
        is_query, is_gallery: (N,) bool roles of the test rows in retrieval; None: all True.

    Returns:
        the metrics, and ``extras``: ``result`` (the :class:`RetrievalResult`, per query),
        ``query_gallery`` (the :class:`QueryGallery` of the test split), ``pairs``,
        ``pair_distances``, ``pair_same``.
    """
    from simlearn.evaluation.classify import (
        knn_accuracy,
        linear_probe_accuracy,
        nearest_class_mean_accuracy,
    )
    from simlearn.evaluation.clustering import nmi
    from simlearn.evaluation.pairs import pair_distances, pair_verification

    e = cfg.eval
    test = split == "test"
    if test.sum() < 2:
        raise ValueError("the test split has fewer than 2 samples; nothing to evaluate")
    qg = query_gallery(test, is_query, is_gallery)
    if qg is None:
        raise ValueError(
            "the test split has no query with a gallery item to retrieve: check the "
            "manifest's is_query and is_gallery columns"
        )
    res = qg.retrieval(emb, labels, distance=e.distance, ks=e.ks)
    metrics: dict[str, float] = dict(res.summary())
    metrics["nmi"] = nmi(emb[test], labels[test], distance=e.distance, seed=cfg.seed)
    d, same = pair_distances(
        emb[test], labels[test], max_pairs=e.max_pairs, seed=cfg.seed, distance=e.distance
    )
    pv = pair_verification(d, same)
    metrics["roc_auc"] = float(pv["roc_auc"])
    metrics["pair_pr_auc"] = float(pv["pr_auc"])
    ref, seen_test = probe_rows(labels, split, holdout)
    if ref.any() and seen_test.any():
        args = (emb[ref], labels[ref], emb[seen_test], labels[seen_test])
        metrics["knn_accuracy"] = float(knn_accuracy(*args, k=e.knn_k, distance=e.distance))
        metrics["ncm_accuracy"] = float(nearest_class_mean_accuracy(*args, distance=e.distance))
        if len(np.unique(labels[ref])) >= 2:
            metrics["linear_probe_accuracy"] = float(linear_probe_accuracy(*args, seed=cfg.seed))
    metrics.update(
        seen_unseen_metrics(
            emb, labels, test, holdout, cfg, is_query=is_query, is_gallery=is_gallery
        )
    )
    held, ood = heldout_metrics(emb, labels, split, holdout, cfg)
    metrics.update(held)
    extras = {
        "result": res,
        "query_gallery": qg,
        "pairs": pv,
        "pair_distances": d,
        "pair_same": same,
        "ood": ood,
    }
    return metrics, extras


def heldout_metrics(
    emb: np.ndarray, labels: np.ndarray, split: np.ndarray, holdout: np.ndarray, cfg: Any
) -> tuple[dict[str, float], dict[str, Any]]:
    """Few-shot and OOD figures of the held-out classes (module docstring), and each OOD
    score's :class:`~simlearn.evaluation.ood.DetectionResult` for the figure. Empty when no
    class is held out; few-shot is left out with fewer than 2 held-out classes in the test
    split, OOD without seen training rows or seen test rows."""
    from simlearn.evaluation.fewshot import fewshot_metrics
    from simlearn.evaluation.ood import ood_metrics

    test = split == "test"
    unseen = test & holdout
    metrics: dict[str, float] = {}
    if not unseen.any():
        return metrics, {}
    if len(np.unique(labels[unseen])) >= 2:
        rows = np.flatnonzero(unseen)
        e = cfg.eval
        metrics.update(fewshot_metrics(emb, labels, rows, e.fewshot, e.distance, cfg.seed))
    ood: dict[str, Any] = {}
    if ((split == "train") & ~holdout).any() and (test & ~holdout).any():
        m, ood = ood_metrics(emb, labels, split, holdout, cfg.eval.ood)
        metrics.update(m)
    return metrics, ood


def check_heldout_evaluation(
    cfg: Any, labels: np.ndarray, split: np.ndarray, holdout: np.ndarray
) -> None:
    """Before training: the held-out classes' test images can fill the few-shot episodes
    (``shots + queries`` per class) and the seen training images number at least
    ``eval.ood.knn_k``. ConfigError naming the key otherwise."""
    from simlearn.config import ConfigError

    unseen = (split == "test") & holdout
    if not unseen.any():
        return
    f = cfg.eval.fewshot
    classes, counts = np.unique(labels[unseen], return_counts=True)
    need = max(f.shots) + f.queries
    if len(classes) >= 2 and counts.min() < need:
        c = classes[int(np.argmin(counts))]
        raise ConfigError(
            f"eval.fewshot.queries={f.queries}: held-out class {c} has {counts.min()} test "
            f"images, fewer than max(eval.fewshot.shots) + queries = {need}; lower them"
        )
    n_ref = int(((split == "train") & ~holdout).sum())
    if n_ref and cfg.eval.ood.knn_k > n_ref:
        raise ConfigError(
            f"eval.ood.knn_k={cfg.eval.ood.knn_k}: the training split has {n_ref} images of "
            f"the seen classes; use at most {n_ref}"
        )


def check_probe(cfg: Any, labels: np.ndarray, split: np.ndarray, holdout: np.ndarray) -> None:
    """Before training: ``eval.knn_k`` is at most the kNN probe's reference set (the training
    rows of the classes trained on, :func:`probe_rows`), as :func:`knn_accuracy` requires; a
    larger k would fail the evaluation after the whole training. ConfigError naming the key
    otherwise; nothing to check where the probe has no query."""
    from simlearn.config import ConfigError

    ref, queries = probe_rows(labels, split, holdout)
    n_ref = int(ref.sum())
    if queries.any() and cfg.eval.knn_k > n_ref:
        raise ConfigError(
            f"eval.knn_k={cfg.eval.knn_k}: the kNN probe's reference set (the training split's "
            f"images of the classes trained on) has {n_ref} images; use at most {n_ref}"
        )


def seen_unseen_metrics(
    emb: np.ndarray,
    labels: np.ndarray,
    test: np.ndarray,
    holdout: np.ndarray,
    cfg: Any,
    *,
    is_query: np.ndarray | None = None,
    is_gallery: np.ndarray | None = None,
) -> dict[str, float]:
    """``seen_<metric>`` and ``unseen_<metric>``: retrieval among the test images of the seen
    classes, and among those of the held-out classes, each group its own query set and gallery
    (its ``is_query`` and ``is_gallery`` rows). Empty when no class is held out; a group with
    fewer than 2 test images, or nothing to rank, is left out."""
    out: dict[str, float] = {}
    if not holdout.any():
        return out
    for group, mask in (("seen", test & ~holdout), ("unseen", test & holdout)):
        qg = query_gallery(mask, is_query, is_gallery) if mask.sum() >= 2 else None
        if qg is not None:
            s = qg.retrieval(emb, labels, distance=cfg.eval.distance, ks=cfg.eval.ks).summary()
            out.update({f"{group}_{k}": v for k, v in s.items()})
    return out


def query_gallery_arrays(manifest: pd.DataFrame) -> dict[str, np.ndarray]:
    """``is_query`` and ``is_gallery`` (N,) bool, in manifest order, for what ``embed`` writes
    when the manifest has them (kind ``files``); {} otherwise (every row is both), so that the
    embeddings of the other datasets keep their bytes."""
    cols = ("is_query", "is_gallery")
    if not all(c in manifest.columns for c in cols):
        return {}
    return {c: manifest[c].to_numpy(dtype=bool) for c in cols}


def take_rows(images: Any, rows: np.ndarray, chunk: int = 512) -> np.ndarray:
    """uint8 ``images[rows]`` (``rows`` of any shape: the result is ``(*rows.shape, H, W, C)``),
    read ``chunk`` rows at a time, so that images read from files never pass through memory
    all at once, only the rows asked for."""
    rows = np.asarray(rows, dtype=np.int64)
    flat = rows.reshape(-1)
    out = np.empty((len(flat), *images.shape[1:]), dtype=np.uint8)  # (B, H, W, C)
    for s in range(0, len(flat), chunk):
        out[s : s + chunk] = images[flat[s : s + chunk]]
    return out.reshape(*rows.shape, *images.shape[1:])


def grid_queries(
    labels: np.ndarray, ap: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows for the retrieval grid: the ``n // 2`` queries with the lowest AP (where the model
    fails is worth seeing; a NaN AP, a query with no relevant item, counts as the highest), then
    one random query per class not shown yet, classes in random order, until ``n`` rows."""
    order = np.argsort(np.where(np.isnan(ap), np.inf, ap), kind="stable")
    picks = [int(i) for i in order[: n // 2]]
    classes = rng.permutation(np.unique(labels))
    for c in classes[np.argsort(np.isin(classes, labels[picks]), kind="stable")]:
        if len(picks) >= n:
            break
        free = np.setdiff1d(np.flatnonzero(labels == c), picks)
        if len(free):
            picks.append(int(rng.choice(free)))
    return np.asarray(picks, dtype=np.int64)


#: at most this many validation rows are embedded after each epoch (a seeded uniform sample
#: beyond it): the per-epoch check then costs the same time and memory at 2,000 images or at
#: 120,000 (its exact ranking holds N x N values a chunk at a time, but N embeddings at once)
VAL_RETRIEVAL_ROWS = 2_000


def validation_retrieval(cfg: Any, ds: Any, model: Any, device: Any) -> dict[str, float]:
    """Retrieval mAP and P@1 on the validation split, seen classes only (held-out classes are
    kept for the final evaluation, never used to select or tune a model); on a seeded
    sample of :data:`VAL_RETRIEVAL_ROWS` rows when the split is larger."""
    import torch

    from simlearn.evaluation.retrieval import retrieval_metrics
    from simlearn.models.embedder import embed_images

    idx = ds.indices("val", exclude=np.asarray(cfg.holdout_classes, dtype=np.int64))
    if len(idx) < 2:
        return {}
    if len(idx) > VAL_RETRIEVAL_ROWS:
        rng = np.random.default_rng([cfg.seed, 2])
        idx = np.sort(rng.choice(idx, VAL_RETRIEVAL_ROWS, replace=False))
    from simlearn.distances import normalize_embeddings

    with torch.no_grad():  # the rows are read batch by batch (images on disk stay there)
        emb = normalize_embeddings(
            embed_images(model, ds.images, device, rows=idx), cfg.eval.normalize
        )
    s = retrieval_metrics(emb, ds.labels[idx], distance=cfg.eval.distance).summary()
    return {"val_map": s["map"], "val_precision_at_1": s["precision_at_1"]}


#: how the OOD figure names each score of :func:`heldout_metrics`
_OOD_NAMES = {
    "knn": "kNN distance (k = {k})",
    "mahalanobis": "Mahalanobis distance\u00b2",
}


def evaluate_labelled(
    cfg: Any, arrays: dict[str, np.ndarray], ds: Any, figures_dir: Path, name: str
) -> tuple[dict[str, float], dict[str, Any], list[Path]]:
    """Metrics, curves (``pr``: the mean 11-point PR curve, x recall, y precision; ``roc``: pair
    ROC on a fixed fpr grid, x fpr, y tpr) and figures (PR, ROC, distance histograms, OOD
    scores where classes are held out, embedding map, retrieval grid) of one image experiment,
    from what :func:`simlearn.models.embedder.embed_labelled` wrote (with ``is_query`` and
    ``is_gallery`` where the task's ``embed`` added them: :func:`query_gallery_arrays`)."""
    import pandas as pd

    from simlearn.distances import normalize_embeddings
    from simlearn.evaluation.retrieval import nearest_neighbors, query_pr_curve
    from simlearn.plots.embedding import plot_embedding_map
    from simlearn.plots.ood import ScorePanel, plot_ood_scores
    from simlearn.plots.retrieval import (
        PRExample,
        plot_distance_histograms,
        plot_precision_recall,
        plot_retrieval_grid,
        plot_roc,
    )

    emb = normalize_embeddings(np.asarray(arrays["embeddings"]), cfg.eval.normalize)
    labels = arrays["labels"]
    split, holdout = arrays["split"].astype(str), arrays["holdout"]
    roles = {k: arrays[k] for k in ("is_query", "is_gallery") if k in arrays}
    metrics, x = labelled_metrics(emb, labels, split, holdout, cfg, **roles)
    res, pv, qg = x["result"], x["pairs"], x["query_gallery"]
    grid = np.linspace(0.0, 1.0, 101)
    curves = {
        "pr": pd.DataFrame({"x": res.recall_levels, "y": res.pr_curve}),
        "roc": pd.DataFrame({"x": grid, "y": np.interp(grid, pv["fpr"], pv["tpr"])}),
    }

    figs = Path(figures_dir)
    test_idx = np.flatnonzero(split == "test")
    q_idx, g_idx = qg.queries, qg.gallery_rows  # rows of the queries and of the gallery
    q_emb, q_lab = emb[q_idx], labels[q_idx]
    g_emb = None if qg.gallery is None else emb[g_idx]
    g_lab = None if qg.gallery is None else labels[g_idx]
    rng = np.random.default_rng(cfg.seed)
    examples = []
    shown = np.flatnonzero(res.valid)  # a query without a relevant item has no PR curve
    for pick in rng.choice(len(shown), size=min(3, len(shown)), replace=False):
        q = int(shown[pick])
        own = -1 if qg.exclude is None else int(qg.exclude[q])
        c = query_pr_curve(
            q_emb, q_lab, g_emb, g_lab, index=q, distance=cfg.eval.distance, exclude=own
        )
        label = f"query {ds.ids[q_idx[q]]}, class {q_lab[q]}"
        examples.append(PRExample(c.recall, c.precision, c.ap, label))
    out = [
        plot_precision_recall(
            res.recall_levels,
            res.pr_curve,
            examples,
            figs / "pr.png",
            title=f"{name}: precision-recall (test)",
            map_value=metrics["map"],
        ),
        plot_roc(
            pv["fpr"],
            pv["tpr"],
            metrics["roc_auc"],
            figs / "roc.png",
            title=f"{name}: pair verification ROC (test)",
        ),
    ]
    d, same = x["pair_distances"], x["pair_same"]
    out.append(
        plot_distance_histograms(
            d[same],
            d[~same],
            figs / "distances.png",
            title=f"{name}: distances of positive vs negative pairs",
        )
    )
    if x["ood"]:
        out.append(
            plot_ood_scores(
                [
                    ScorePanel(
                        _OOD_NAMES[key].format(k=cfg.eval.ood.knn_k),
                        r.id_scores,
                        r.ood_scores,
                        r.threshold,
                        r.auroc,
                        r.fpr95,
                    )
                    for key, r in x["ood"].items()
                ],
                figs / "ood_scores.png",
                title=f"{name}: seen-class test images (ID) against held-out classes (OOD)",
            )
        )
    out.append(
        plot_embedding_map(
            emb[test_idx],
            labels[test_idx],
            figs / "embedding_map.png",
            class_names=ds.class_names or None,
            heldout_mask=holdout[test_idx],
            method=cfg.eval.embedding_map,
            seed=cfg.seed,
            title=f"{name}: test embeddings ({cfg.eval.embedding_map})",
        )
    )
    k = min(cfg.eval.grid_k, qg.ranked)
    rows = grid_queries(q_lab, res.average_precision, cfg.eval.grid_queries, rng)
    # the grid's queries only, against the whole gallery (the queries' own rows left out)
    own = rows if qg.gallery is None else qg.exclude[rows]
    nn_idx, _ = nearest_neighbors(
        q_emb[rows], emb[g_idx], k=k, distance=cfg.eval.distance, exclude=own
    )  # (rows, k) gallery positions
    n_lab = labels[g_idx][nn_idx]  # (rows, k)
    n_hard = cfg.eval.grid_queries // 2
    out.append(
        plot_retrieval_grid(
            take_rows(ds.images, q_idx[rows]),  # only the images the grid shows
            take_rows(ds.images, g_idx[nn_idx]),
            n_lab == q_lab[rows, None],
            figs / "retrieval_grid.png",
            title=f"{name}: top {k} of test queries (first {n_hard} rows: the "
            "lowest-AP queries; then random ones)",
            query_labels=q_lab[rows],
            neighbor_labels=n_lab,
        )
    )
    return metrics, curves, out
