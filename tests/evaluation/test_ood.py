"""OOD detection: the kNN and Mahalanobis scores and the detection figures, against brute force,
scikit-learn and pytorch-ood."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from simlearn.config.metric import OODConfig
from simlearn.evaluation.ood import (
    detection_metrics,
    knn_scores,
    mahalanobis_scores,
    ood_metrics,
)


def _clusters(seed: int = 0, dim: int = 6):
    """3 seen classes (train and test) and 2 held-out ones (test), overlapping a little."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, dim)) * 1.5
    labels = np.repeat(np.arange(5), 60)
    emb = centres[labels] + rng.normal(size=(300, dim)) * np.linspace(0.5, 1.5, dim)
    split = np.tile(np.array(["train"] * 40 + ["test"] * 20), 5)
    holdout = labels >= 3
    split[holdout & (split == "train")] = "val"  # held-out classes: never in the reference
    return emb, labels, split, holdout


# ---------------------------------------------------------------------------- scores


def test_knn_score_is_the_kth_smallest_distance_between_unit_vectors():
    emb, *_ = _clusters()
    ref, q = emb[:120], emb[200:]
    got = knn_scores(ref, q, k=7)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    want = [np.sort(np.linalg.norm(unit(ref) - z, axis=1))[6] for z in unit(q)]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ValueError, match="eval.ood.knn_k=121"):
        knn_scores(ref, q, k=121)


def test_knn_score_equals_pytorch_ood_knn():
    detector = pytest.importorskip("pytorch_ood.detector")
    emb, *_ = _clusters(1)
    ref, q = emb[:120], emb[150:]
    knn = detector.KNN(None, k=10).fit_features(torch.from_numpy(ref), torch.zeros(120).long())
    want = knn.predict_features(torch.from_numpy(q)).numpy()
    np.testing.assert_allclose(knn_scores(ref, q, k=10), want, rtol=1e-5, atol=1e-6)


def test_mahalanobis_score_equals_a_loop_over_classes_with_the_inverse_covariance():
    emb, labels, *_ = _clusters(2)
    ref, y, q = emb[:180], labels[:180], emb[180:]
    s = 0.01
    got = mahalanobis_scores(ref, y, q, shrinkage=s)
    means = {c: ref[y == c].mean(axis=0) for c in np.unique(y)}
    cov = sum((ref[y == c] - m).T @ (ref[y == c] - m) for c, m in means.items()) / len(ref)
    cov = cov + s * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    prec = np.linalg.inv(cov)
    want = [min((z - m) @ prec @ (z - m) for m in means.values()) for z in q]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_mahalanobis_score_equals_pytorch_ood_up_to_its_scale():
    # pytorch-ood: 1/2 min_c d^2 under the unnormalised scatter S + 1e-6 I; with our covariance
    # S/N + shrinkage tr(S/N)/d I and shrinkage = 1e-6 d / tr(S), ours is 2N times its score
    detector = pytest.importorskip("pytorch_ood.detector")
    emb, labels, *_ = _clusters(3)
    ref, y, q = emb[:180], labels[:180], emb[180:]
    maha = detector.Mahalanobis(None).fit_features(
        torch.from_numpy(ref).float(), torch.from_numpy(y)
    )
    want = maha.predict_features(torch.from_numpy(q).float()).double().numpy()
    centred = ref - np.stack([ref[y == c].mean(axis=0) for c in range(3)])[y]
    shrink = 1e-6 * ref.shape[1] / np.trace(centred.T @ centred)
    got = mahalanobis_scores(ref, y, q, shrinkage=shrink)
    np.testing.assert_allclose(got / (2 * len(ref)), want, rtol=1e-4)


def test_a_singular_covariance_without_shrinkage_is_an_error_naming_the_key():
    emb, labels, *_ = _clusters()
    ref = np.hstack([emb[:120], np.zeros((120, 1))])  # a constant coordinate, as a raw border
    with pytest.raises(ValueError, match="eval.ood.mahalanobis_shrinkage"):
        mahalanobis_scores(ref, labels[:120], ref[:5], shrinkage=0.0)
    assert np.isfinite(mahalanobis_scores(ref, labels[:120], ref[:5], shrinkage=1e-6)).all()


# ---------------------------------------------------------------------------- figures


def _tied_scores(seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 12, 300).astype(float), rng.integers(4, 16, 120).astype(float)


def _brute_force(s_id, s_ood):
    """AUROC as P(OOD > ID) + 1/2 P(tie) over every pair; FPR@95 by trying every threshold."""
    diff = s_ood[:, None] - s_id[None, :]
    auroc = (diff > 0).mean() + 0.5 * (diff == 0).mean()
    fpr = min(
        (s_id >= t).mean() for t in np.unique(np.concatenate([s_id, s_ood]))
        if (s_ood >= t).mean() >= 0.95
    )  # fmt: skip
    return auroc, fpr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_detection_figures_equal_brute_force_and_scikit_learn_with_ties(seed):
    s_id, s_ood = _tied_scores(seed)
    r = detection_metrics(s_id, s_ood)
    auroc, fpr = _brute_force(s_id, s_ood)
    assert r.auroc == pytest.approx(auroc, abs=1e-12)
    assert r.fpr95 == pytest.approx(fpr, abs=1e-12)
    y = np.r_[np.zeros(len(s_id)), np.ones(len(s_ood))]
    s = np.r_[s_id, s_ood]
    assert r.auroc == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert r.aupr == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert (s_ood >= r.threshold).mean() >= 0.95 > (s_ood > r.threshold).mean()
    assert r.fpr95 == (s_id >= r.threshold).mean()


@pytest.mark.parametrize("seed", [0, 1])
def test_detection_figures_equal_pytorch_ood_on_the_same_scores(seed):
    functional = pytest.importorskip("pytorch_ood.metrics.functional")
    rng = np.random.default_rng(seed)
    for s_id, s_ood in (_tied_scores(seed), (rng.normal(size=200), rng.normal(1, 1, 90))):
        r = detection_metrics(s_id, s_ood)
        scores = torch.from_numpy(np.r_[s_id, s_ood])
        labels = torch.from_numpy(np.r_[np.zeros(len(s_id)), -np.ones(len(s_ood))]).long()
        assert abs(r.auroc - float(functional.auroc(scores, labels))) < 1e-6
        assert abs(r.fpr95 - float(functional.fpr_at_tpr(scores, labels, 0.95))) < 1e-6


def test_separated_ood_is_found_and_mixed_scores_are_chance():
    r = detection_metrics(np.arange(100.0), np.arange(200.0, 220.0))
    assert (r.auroc, r.aupr, r.fpr95) == (1.0, 1.0, 0.0)
    rng = np.random.default_rng(0)
    r = detection_metrics(rng.normal(size=4000), rng.normal(size=4000))
    assert r.auroc == pytest.approx(0.5, abs=0.02) and r.fpr95 == pytest.approx(0.95, abs=0.02)
    with pytest.raises(ValueError, match="ID and OOD"):
        detection_metrics(np.arange(3.0), np.array([]))


def test_ood_metrics_take_seen_test_as_id_held_out_test_as_ood_and_seen_train_as_reference():
    emb, labels, split, holdout = _clusters(4)
    m, results = ood_metrics(emb, labels, split, holdout, OODConfig(knn_k=5))
    ref = (split == "train") & ~holdout
    id_rows, ood_rows = (split == "test") & ~holdout, (split == "test") & holdout
    assert (m["ood_n_id"], m["ood_n_ood"]) == (60, 40)
    knn = detection_metrics(knn_scores(emb[ref], emb[id_rows], 5),
                            knn_scores(emb[ref], emb[ood_rows], 5))  # fmt: skip
    assert m["ood_knn_auroc"] == knn.auroc and m["ood_knn_fpr95"] == knn.fpr95
    maha = mahalanobis_scores(emb[ref], labels[ref], emb[id_rows | ood_rows], 1e-6)
    np.testing.assert_allclose(
        np.r_[results["mahalanobis"].id_scores, results["mahalanobis"].ood_scores],
        np.r_[maha[~holdout[id_rows | ood_rows]], maha[holdout[id_rows | ood_rows]]],
    )
    assert m["ood_mahalanobis_auroc"] > 0.9  # the held-out clusters lie apart
    # k above the reference set: the kNN score is left out, Mahalanobis stays
    m, results = ood_metrics(emb, labels, split, holdout, OODConfig(knn_k=121))
    assert "ood_knn_auroc" not in m and set(results) == {"mahalanobis"}
