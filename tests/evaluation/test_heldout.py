"""Held-out classes in the evaluation protocol: few-shot and OOD figures, their figure, their
params and the checks before training."""

from __future__ import annotations

import types

import numpy as np
import pytest

from simlearn.config import ConfigError, EvalConfig, ExperimentConfig, from_dict
from simlearn.config.metric import FewShotConfig, OODConfig
from simlearn.evaluation.fewshot import fewshot_metrics
from simlearn.evaluation.ood import ood_metrics
from simlearn.evaluation.protocol import (
    KEY_METRICS,
    check_heldout_evaluation,
    evaluate_labelled,
    heldout_metrics,
    labelled_metrics,
)


def _cfg(**eval_kw):
    return types.SimpleNamespace(eval=EvalConfig(**eval_kw), seed=3)


def _data(seed: int = 0, per_class: int = 60):
    """6 classes, 4 seen and 2 held out (classes 4, 5); 40% of each class in the test split."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(6), per_class)
    emb = rng.normal(size=(6, 5))[labels] * 2 + rng.normal(size=(len(labels), 5))
    n_test = int(0.4 * per_class)
    split = np.tile(np.array(["train"] * (per_class - n_test) + ["test"] * n_test), 6)
    holdout = labels >= 4
    return emb.astype(np.float32), labels, split, holdout


def test_heldout_figures_are_the_fewshot_and_ood_modules_on_the_held_out_rows():
    emb, labels, split, holdout = _data()
    cfg = _cfg(distance="cosine", fewshot=FewShotConfig(episodes=40, queries=10),
               ood=OODConfig(knn_k=20))  # fmt: skip
    got, results = heldout_metrics(emb, labels, split, holdout, cfg)
    rows = np.flatnonzero((split == "test") & holdout)
    want = fewshot_metrics(emb, labels, rows, cfg.eval.fewshot, "cosine", 3)
    want |= ood_metrics(emb, labels, split, holdout, cfg.eval.ood)[0]
    assert got == want
    assert want["fewshot_way"] == 2 and "fewshot_2way_5shot_accuracy" in got
    assert set(results) == {"knn", "mahalanobis"}
    # and labelled_metrics reports them with the rest
    metrics, extras = labelled_metrics(emb, labels, split, holdout, cfg)
    assert {k: metrics[k] for k in got} == got and extras["ood"].keys() == results.keys()


def test_no_held_out_class_gives_no_fewshot_and_no_ood_keys():
    emb, labels, split, _ = _data()
    metrics, extras = labelled_metrics(emb, labels, split, np.zeros(len(labels), bool), _cfg())
    assert not [k for k in metrics if k.startswith(("fewshot_", "ood_"))] and not extras["ood"]


def test_one_held_out_class_gives_ood_but_no_fewshot():
    emb, labels, split, _ = _data()
    got, _ = heldout_metrics(emb, labels, split, labels == 5, _cfg(ood=OODConfig(knn_k=5)))
    assert "ood_knn_auroc" in got and not [k for k in got if k.startswith("fewshot_")]


def test_evaluate_draws_the_ood_figure_and_reports_the_headlines(tmp_path):
    emb, labels, split, holdout = _data(1)
    images = np.random.default_rng(0).integers(0, 255, (len(labels), 8, 8, 1), dtype=np.uint8)
    ds = types.SimpleNamespace(images=images, ids=np.arange(len(labels)), class_names=[])
    arrays = {"embeddings": emb, "labels": labels, "split": split, "holdout": holdout}
    cfg = _cfg(embedding_map="pca", fewshot=FewShotConfig(episodes=30), ood=OODConfig(knn_k=10))
    metrics, _, figures = evaluate_labelled(cfg, arrays, ds, tmp_path, "e")
    assert tmp_path / "ood_scores.png" in figures and (tmp_path / "ood_scores.png").stat().st_size
    headline = [k for k in KEY_METRICS if k.startswith(("fewshot_", "ood_"))]
    assert headline and all(k in metrics for k in headline)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"fewshot": {"ways": [1]}}, "eval.fewshot.ways[]=1: must be >= 2"),
        ({"fewshot": {"shots": []}}, "eval.fewshot.shots=[]: give at least one value"),
        ({"fewshot": {"shots": [1, 1]}}, "eval.fewshot.shots=[1, 1] has repeated values"),
        ({"fewshot": {"queries": 0}}, "eval.fewshot.queries=0: must be >= 1"),
        ({"fewshot": {"episodes": 1}}, "eval.fewshot.episodes=1: must be >= 2"),
        ({"fewshot": {"way": 5}}, "eval.fewshot.way: unknown key"),
        ({"ood": {"knn_k": 0}}, "eval.ood.knn_k=0: must be >= 1"),
        ({"ood": {"mahalanobis_shrinkage": -1}}, "eval.ood.mahalanobis_shrinkage=-1.0: must be"),
    ],
)
def test_bad_heldout_params_name_the_key(section, message):
    with pytest.raises(ConfigError) as e:
        from_dict(ExperimentConfig, {"task": "metric", "dataset": "d", "eval": section}, "x")
    assert str(e.value).startswith(f"x.{message}"), str(e.value)


def test_check_before_training_refuses_episodes_or_k_the_data_cannot_fill():
    emb, labels, split, holdout = _data(per_class=30)  # 12 test images per held-out class
    ok = _cfg(fewshot=FewShotConfig(queries=7), ood=OODConfig(knn_k=72))
    check_heldout_evaluation(ok, labels, split, holdout)  # 5 + 7 = 12; 4 x 18 training rows
    with pytest.raises(ConfigError, match=r"eval.fewshot.queries=8: held-out class 4 has 12"):
        check_heldout_evaluation(_cfg(fewshot=FewShotConfig(queries=8)), labels, split, holdout)
    with pytest.raises(ConfigError, match=r"eval.ood.knn_k=73: .* 72 images"):
        check_heldout_evaluation(
            _cfg(fewshot=FewShotConfig(queries=7), ood=OODConfig(knn_k=73)), labels, split, holdout
        )
    check_heldout_evaluation(_cfg(), labels, split, np.zeros_like(holdout))  # nothing held out
