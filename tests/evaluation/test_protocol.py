"""The evaluation protocol of labelled embeddings: seen/unseen groups, probes, grid rows."""

from __future__ import annotations

import types

import numpy as np
import pytest

from simlearn.config import EvalConfig
from simlearn.evaluation import knn_accuracy, retrieval_metrics
from simlearn.evaluation.protocol import (
    evaluate_labelled,
    grid_queries,
    labelled_metrics,
    probe_rows,
    query_gallery,
    query_gallery_arrays,
    seen_unseen_metrics,
    take_rows,
)


def _cfg(**eval_kw):
    return types.SimpleNamespace(eval=EvalConfig(**eval_kw), seed=0)


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(5), 12)  # 5 classes x 12
    emb = rng.integers(-3, 4, size=(60, 4)).astype(np.float32) + labels[:, None]  # exact ties
    split = np.tile(np.array(["train"] * 6 + ["val"] * 2 + ["test"] * 4), 5)
    holdout = np.isin(labels, [3, 4])
    return emb, labels, split, holdout


def test_seen_and_unseen_are_each_their_own_query_set_and_gallery():
    emb, labels, split, holdout = _data()
    test = split == "test"
    out = seen_unseen_metrics(emb, labels, test, holdout, _cfg())
    for group, mask in (("seen", test & ~holdout), ("unseen", test & holdout)):
        expected = retrieval_metrics(emb[mask], labels[mask], ks=(1, 5, 10)).summary()
        assert mask.sum() == (12 if group == "seen" else 8)
        for k, v in expected.items():
            assert out[f"{group}_{k}"] == pytest.approx(v, nan_ok=True)
    # the unseen figure ranks held-out classes among themselves only: a gallery of 2 classes
    assert out["unseen_map"] != pytest.approx(
        retrieval_metrics(emb[test], labels[test]).summary()["map"]
    )


def test_no_holdout_gives_no_group_metrics_and_a_group_of_one_is_left_out():
    emb, labels, split, holdout = _data()
    test = split == "test"
    assert seen_unseen_metrics(emb, labels, test, np.zeros_like(holdout), _cfg()) == {}
    one = np.zeros_like(holdout)
    one[np.flatnonzero(test & (labels == 4))[0]] = True  # one held-out test image
    out = seen_unseen_metrics(emb, labels, test, one, _cfg())
    assert "seen_map" in out and not any(k.startswith("unseen_") for k in out)


def test_probes_use_training_seen_classes_as_reference_and_seen_test_as_queries():
    emb, labels, split, holdout = _data(1)
    metrics, _ = labelled_metrics(emb, labels, split, holdout, _cfg(knn_k=3))
    ref = (split == "train") & ~holdout
    q = (split == "test") & ~holdout
    expected = knn_accuracy(emb[ref], labels[ref], emb[q], labels[q], k=3)
    assert metrics["knn_accuracy"] == pytest.approx(expected)
    test = split == "test"
    assert metrics["map"] == pytest.approx(
        retrieval_metrics(emb[test], labels[test]).summary()["map"]
    )
    assert {"seen_map", "unseen_map", "roc_auc", "linear_probe_accuracy"} <= set(metrics)


def test_grid_rows_worst_queries_first_then_one_unshown_class_at_a_time():
    labels = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    ap = np.array([0.9, 0.1, np.nan, 0.5, 0.8, 0.2, 1.0, 0.95])
    rows = grid_queries(labels, ap, 5, np.random.default_rng(0))
    assert rows[:2].tolist() == [1, 5]  # the two lowest APs, lowest first
    assert len(rows) == 5 and len(set(rows.tolist())) == 5
    # then classes 1 and 3 (not shown yet) come before 0 and 2 come again
    assert set(labels[rows[2:4]].tolist()) == {1, 3}
    again = grid_queries(labels, ap, 5, np.random.default_rng(0))
    np.testing.assert_array_equal(rows, again)


def test_grid_rows_count_a_nan_ap_as_the_best_and_stop_when_classes_run_out():
    labels = np.array([0, 0, 1])
    ap = np.array([np.nan, 0.3, 0.7])
    rows = grid_queries(labels, ap, 2, np.random.default_rng(1))
    assert rows[0] == 1  # 0.3 is the lowest; NaN never counts as a failure
    rows = grid_queries(labels, ap, 10, np.random.default_rng(1))
    assert sorted(rows.tolist()) == [0, 1, 2]  # every query once, none repeated to fill 10 rows


# --------------------------------------------------------------------------------------------
# Query and gallery sets within the test split
# --------------------------------------------------------------------------------------------


def brute_query_gallery(emb, labels, is_query, is_gallery, ks=(1, 2, 4, 8)):
    """Per query row, by loops: AP (scikit-learn's, ties as one threshold), P@1 and Recall@K
    over the gallery rows ranked by (distance, relevant), its own row left out by index."""
    from sklearn.metrics import average_precision_score

    out = []
    for i in np.flatnonzero(is_query):
        rows = [j for j in np.flatnonzero(is_gallery) if j != i]
        d = np.array([float(((emb[j] - emb[i]) ** 2).sum()) for j in rows])
        rel = np.array([labels[j] == labels[i] for j in rows])
        if not rel.any():
            continue
        order = sorted(range(len(rows)), key=lambda t: (d[t], bool(rel[t])))
        ranked = [bool(rel[t]) for t in order]
        out.append(
            {
                "ap": average_precision_score(rel, -d),
                "p1": float(ranked[0]),
                **{f"r{k}": float(any(ranked[:k])) for k in ks},
            }
        )
    return out


def test_worked_example_query_gallery_changes_the_answer():
    # 1-D test rows: q1, q2 queries only; g1, g2 gallery only; g3 both
    emb = np.array([[0.0], [0.5], [1.0], [3.0], [5.0]], dtype=np.float32)
    labels = np.array([0, 0, 1, 0, 1])
    is_query = np.array([True, True, False, False, True])
    is_gallery = np.array([False, False, True, True, True])
    split, holdout = np.array(["test"] * 5), np.zeros(5, dtype=bool)
    m, x = labelled_metrics(
        emb, labels, split, holdout, _cfg(), is_query=is_query, is_gallery=is_gallery
    )
    # q1 and q2: g1 (class 1) is nearest, g2 (class 0) second; g3 (itself left out): g2 (class
    # 0) at 2, then g1 (class 1) at 4. Every query finds its one match at rank 2.
    assert m["n_queries"] == 3
    assert m["precision_at_1"] == m["recall_at_1"] == 0.0
    assert m["recall_at_2"] == m["recall_at_4"] == 1.0
    assert m["map"] == m["mrr"] == pytest.approx(0.5)  # AP = 1 / 2 for each
    assert m["map_at_r"] == m["r_precision"] == 0.0  # R = 1: the first rank misses
    np.testing.assert_array_equal(x["result"].n_relevant, [1, 1, 1])
    # every row both (the default): q1 finds q2 first and q2 finds q1: another answer
    d = labelled_metrics(emb, labels, split, holdout, _cfg())[0]
    assert d["n_queries"] == 5 and d["recall_at_1"] > 0 and d["map"] > 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_query_gallery_metrics_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 80
    emb = rng.integers(-2, 3, size=(n, 2)).astype(np.float32)  # a 5x5 grid: exact ties
    labels = rng.integers(0, 4, n)
    split = np.where(rng.random(n) < 0.7, "test", "train")
    is_query = rng.random(n) < 0.6
    is_gallery = rng.random(n) < 0.7
    holdout = np.zeros(n, dtype=bool)
    m, _ = labelled_metrics(
        emb, labels, split, holdout, _cfg(), is_query=is_query, is_gallery=is_gallery
    )
    test = split == "test"
    brute = brute_query_gallery(emb, labels, test & is_query, test & is_gallery)
    assert m["n_queries"] == (test & is_query).sum()
    assert m["n_queries"] - m["n_queries_without_relevant"] == len(brute)
    assert m["map"] == pytest.approx(np.mean([b["ap"] for b in brute]), abs=1e-12)
    assert m["precision_at_1"] == pytest.approx(np.mean([b["p1"] for b in brute]), abs=1e-12)
    for k in (1, 2, 4, 8):
        assert m[f"recall_at_{k}"] == pytest.approx(np.mean([b[f"r{k}"] for b in brute]))
    assert m["recall_at_1"] == m["precision_at_1"]


def test_seen_and_unseen_follow_the_query_and_gallery_sets():
    emb, labels, split, holdout = _data(3)
    test = split == "test"
    rng = np.random.default_rng(0)
    is_query, is_gallery = rng.random(60) < 0.7, rng.random(60) < 0.7
    out = seen_unseen_metrics(
        emb, labels, test, holdout, _cfg(), is_query=is_query, is_gallery=is_gallery
    )
    mask = test & holdout  # unseen group
    brute = brute_query_gallery(emb, labels, mask & is_query, mask & is_gallery)
    assert out["unseen_map"] == pytest.approx(np.mean([b["ap"] for b in brute]), abs=1e-12)
    assert out["unseen_n_queries"] == (mask & is_query).sum()


def test_a_test_split_without_queries_fails_with_a_clear_message():
    emb, labels, split, holdout = _data()
    with pytest.raises(ValueError, match="is_query and is_gallery"):
        labelled_metrics(emb, labels, split, holdout, _cfg(), is_query=np.zeros(60, dtype=bool))


def test_query_gallery_sets():
    rows = np.array([True, True, True, False])
    assert query_gallery(rows).gallery is None  # every row both: leave-one-out
    qg = query_gallery(rows, np.array([1, 1, 0, 1], bool), np.array([0, 1, 1, 1], bool))
    np.testing.assert_array_equal(qg.queries, [0, 1])
    np.testing.assert_array_equal(qg.gallery, [1, 2])
    np.testing.assert_array_equal(qg.exclude, [-1, 0])  # row 1 is gallery item 0
    assert qg.ranked == 1
    # one row, both query and gallery: nothing to retrieve
    assert query_gallery(np.array([True, False])) is None


def test_query_gallery_arrays_from_the_manifest():
    import pandas as pd

    assert query_gallery_arrays(pd.DataFrame({"label": [0, 1]})) == {}
    m = pd.DataFrame({"is_query": [True, False], "is_gallery": [True, True]})
    out = query_gallery_arrays(m)
    assert out["is_query"].dtype == bool
    np.testing.assert_array_equal(out["is_query"], [True, False])


# --------------------------------------------------------------------------------------------
# Disjoint train and test classes: the probes that need the test classes' training rows
# --------------------------------------------------------------------------------------------


def test_disjoint_test_classes_report_no_probe_but_retrieval_recall_and_nmi():
    emb, labels, split, holdout = _data(4)
    split = np.where(labels < 3, "train", "test")  # classes 0-2 train, 3-4 test (split by class)
    m, _ = labelled_metrics(emb, labels, split, holdout & False, _cfg())
    for key in ("knn_accuracy", "ncm_accuracy", "linear_probe_accuracy"):
        assert key not in m
    test = split == "test"
    assert m["map"] == pytest.approx(retrieval_metrics(emb[test], labels[test]).summary()["map"])
    assert {"recall_at_1", "recall_at_8", "nmi"} <= set(m)


def test_probes_query_only_the_test_classes_that_were_trained_on():
    emb, labels, split, holdout = _data(5)
    split = split.copy()
    split[(labels == 2) & (split == "train")] = "val"  # class 2: no training row
    ref, q = probe_rows(labels, split, holdout)
    assert not (q & (labels == 2)).any() and (q & (labels == 0)).any()
    m, _ = labelled_metrics(emb, labels, split, holdout, _cfg(knn_k=3))
    expected = knn_accuracy(emb[ref], labels[ref], emb[q], labels[q], k=3)
    assert m["knn_accuracy"] == pytest.approx(expected)


# --------------------------------------------------------------------------------------------
# Images read in chunks
# --------------------------------------------------------------------------------------------


class LazyImages:
    """An array-like over uint8 images that records how many rows each read asks for."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images
        self.shape, self.dtype, self.ndim = images.shape, images.dtype, 4
        self.reads: list[int] = []

    def __len__(self) -> int:
        return len(self._images)

    def __getitem__(self, key):
        out = self._images[key]
        self.reads.append(1 if out.ndim == 3 else len(out))
        return out

    def __array__(self, *args, **kwargs):
        raise AssertionError("the images were materialised whole")


def test_take_rows_reads_in_chunks_and_equals_indexing():
    images = np.random.default_rng(0).integers(0, 256, (1300, 4, 4, 1), dtype=np.uint8)
    lazy = LazyImages(images)
    rows = np.random.default_rng(1).integers(0, 1300, size=(40, 30))  # 1,200 rows, 2-D
    out = take_rows(lazy, rows)
    np.testing.assert_array_equal(out, images[rows])
    assert max(lazy.reads) <= 512 and sum(lazy.reads) == rows.size


def test_evaluation_reads_only_the_grid_images_in_chunks(tmp_path):
    import pandas as pd

    emb, labels, split, holdout = _data(6)
    images = np.random.default_rng(0).integers(0, 256, (60, 8, 8, 1), dtype=np.uint8)
    lazy = LazyImages(images)
    ds = types.SimpleNamespace(
        images=lazy,
        ids=np.array([f"r{i}" for i in range(60)]),
        class_names=[str(c) for c in range(5)],
        manifest=pd.DataFrame({"label": labels}),
    )
    cfg = types.SimpleNamespace(eval=EvalConfig(embedding_map="pca"), seed=0)
    is_query = np.arange(60) % 3 != 0
    arrays = {"embeddings": emb, "labels": labels, "split": split, "holdout": holdout,
              "is_query": is_query, "is_gallery": np.ones(60, dtype=bool)}  # fmt: skip
    metrics, curves, figures = evaluate_labelled(cfg, arrays, ds, tmp_path, "e")
    expected, _ = labelled_metrics(
        emb, labels, split, holdout, cfg, is_query=is_query, is_gallery=np.ones(60, dtype=bool)
    )
    assert metrics == expected
    # the grid: 6 query images, then 6 x 8 neighbours; nothing else is read
    assert sum(lazy.reads) == 6 + 6 * 8 and max(lazy.reads) <= 512
    assert all(p.exists() for p in figures)


def test_validation_retrieval_embeds_at_most_its_cap_of_rows(monkeypatch):
    """The per-epoch check embeds a seeded sample of VAL_RETRIEVAL_ROWS val rows (the same
    each epoch), and every row when the split is smaller."""
    from types import SimpleNamespace

    import simlearn.evaluation.protocol as protocol
    import simlearn.models.embedder as embedder

    seen: list[np.ndarray] = []

    def fake_embed(model, images, device, rows=None, **_):
        seen.append(np.asarray(rows))
        return np.eye(4, dtype=np.float32)[ds.labels[rows] % 4]  # one direction per class mod 4

    monkeypatch.setattr(embedder, "embed_images", fake_embed)
    labels = np.arange(40) % 4
    ds = SimpleNamespace(
        labels=labels,
        indices=lambda split, exclude=None: np.arange(40),
        images=None,
    )
    cfg = SimpleNamespace(
        holdout_classes=[], seed=3, eval=SimpleNamespace(normalize="none", distance="euclidean")
    )
    out = protocol.validation_retrieval(cfg, ds, None, "cpu")
    assert len(seen[-1]) == 40 and out["val_map"] == 1.0
    monkeypatch.setattr(protocol, "VAL_RETRIEVAL_ROWS", 12)
    protocol.validation_retrieval(cfg, ds, None, "cpu")
    protocol.validation_retrieval(cfg, ds, None, "cpu")
    assert len(seen[-1]) == 12 and len(set(seen[-1].tolist())) == 12
    assert np.array_equal(seen[-1], seen[-2]) and np.all(np.diff(seen[-1]) > 0)
