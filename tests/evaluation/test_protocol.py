"""The evaluation protocol of labelled embeddings: seen/unseen groups, probes, grid rows."""

from __future__ import annotations

import types

import numpy as np
import pytest

from simlearn.config import EvalConfig
from simlearn.evaluation import knn_accuracy, retrieval_metrics
from simlearn.evaluation.protocol import grid_queries, labelled_metrics, seen_unseen_metrics


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
