"""Few-shot episodes: sampling, nearest-prototype accuracy, the reported figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simlearn.config.metric import FewShotConfig
from simlearn.evaluation.fewshot import (
    Episodes,
    episode_accuracies,
    fewshot_metrics,
    mean_ci95,
    sample_episodes,
)


def _pool(n_classes: int = 6, per_class: int = 25, dim: int = 8, seed: int = 0):
    """Clustered float64 embeddings; labels are not 0..C-1 (they are 10, 13, 16, ...)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(10 + 3 * np.arange(n_classes), per_class)
    centres = rng.normal(size=(n_classes, dim)) * 0.8
    emb = centres[np.repeat(np.arange(n_classes), per_class)] + rng.normal(
        size=(n_classes * per_class, dim)
    )
    perm = rng.permutation(len(labels))  # classes interleaved, as rows of a real split
    return emb[perm], labels[perm]


# ---------------------------------------------------------------------------- brute force


def _brute_force_accuracies(emb, ep: Episodes, distance: str) -> np.ndarray:
    """One episode, one query, one prototype at a time, with each distance written out."""

    def d(q, c):
        if distance == "euclidean":
            return np.sqrt(np.sum((q - c) ** 2))
        if distance == "manhattan":
            return np.sum(np.abs(q - c))
        if distance == "chebyshev":
            return np.max(np.abs(q - c))
        if distance == "cosine":
            return 1.0 - q @ c / (np.linalg.norm(q) * np.linalg.norm(c))
        if distance == "dot":
            return -(q @ c)
        raise AssertionError(distance)

    out = []
    for e in range(ep.support.shape[0]):
        protos = [emb[ep.support[e, n]].mean(axis=0) for n in range(ep.support.shape[1])]
        right = total = 0
        for n in range(ep.query.shape[1]):
            for row in ep.query[e, n]:
                dists = [d(emb[row], c) for c in protos]
                right += int(np.argmin(dists) == n)
                total += 1
        out.append(right / total)
    return np.array(out)


# ---------------------------------------------------------------------------- sampling


def test_episodes_hold_distinct_classes_and_distinct_images_of_those_classes_from_the_rows():
    emb, labels = _pool()
    rows = np.flatnonzero(labels != 10)  # class 10 is not among the rows
    ep = sample_episodes(labels, 4, 3, 5, 200, np.random.default_rng(1), rows)
    assert ep.shape == (200, 4, 3, 5)
    for e in range(200):
        assert len(set(ep.classes[e])) == 4 and 10 not in ep.classes[e]
        images = np.concatenate([ep.support[e].ravel(), ep.query[e].ravel()])
        assert len(set(images)) == len(images)  # no image twice in an episode
        assert np.isin(images, rows).all()
        for n in range(4):
            assert (labels[ep.support[e, n]] == ep.classes[e, n]).all()
            assert (labels[ep.query[e, n]] == ep.classes[e, n]).all()


def test_episodes_are_seeded_and_draw_classes_and_images_uniformly():
    _, labels = _pool(n_classes=5, per_class=20)
    a = sample_episodes(labels, 3, 1, 4, 3000, np.random.default_rng(7))
    b = sample_episodes(labels, 3, 1, 4, 3000, np.random.default_rng(7))
    np.testing.assert_array_equal(a.query, b.query)
    # each class in 3/5 of the episodes; each image of a class equally often (5 of 20 per draw)
    share = np.array([(a.classes == c).any(axis=1).mean() for c in np.unique(labels)])
    np.testing.assert_allclose(share, 0.6, atol=0.04)
    used = np.bincount(np.concatenate([a.support.ravel(), a.query.ravel()]), minlength=100)
    expected = 3000 * 0.6 * 5 / 20  # episodes with the class x images drawn / class size
    assert abs(used.mean() - expected) < 1e-9 and used.std() / expected < 0.15


def test_too_few_images_or_classes_is_an_error_that_names_the_key():
    _, labels = _pool(n_classes=3, per_class=10)
    with pytest.raises(ValueError, match="eval.fewshot.queries"):
        sample_episodes(labels, 3, 5, 6, 10, np.random.default_rng(0))
    with pytest.raises(ValueError, match="eval.fewshot.ways"):
        sample_episodes(labels, 4, 1, 2, 10, np.random.default_rng(0))


# ---------------------------------------------------------------------------- accuracy


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "dot", "manhattan", "chebyshev"])
@pytest.mark.parametrize("ways, shots", [(3, 1), (5, 5)])
def test_nearest_prototype_accuracy_equals_a_brute_force_loop(distance, ways, shots):
    emb, labels = _pool()
    ep = sample_episodes(labels, ways, shots, 4, 40, np.random.default_rng(3))
    want = _brute_force_accuracies(emb, ep, distance)
    # a block of 1 and of many episodes at a time give the same figures
    for block in (1, 1 << 22):
        got = episode_accuracies(emb, ep, distance, block_elements=block)
        np.testing.assert_array_equal(got, want)
    assert 0.2 < want.mean() < 1.0  # neither chance nor trivially perfect: the test can fail


@pytest.mark.parametrize("scores", ["euclidean", "cosine"])
def test_nearest_prototype_accuracy_equals_easyfsl_prototypical_networks(scores):
    easyfsl = pytest.importorskip("easyfsl.methods")
    emb, labels = _pool(dim=16, seed=2)
    ep = sample_episodes(labels, 5, 5, 15, 60, np.random.default_rng(4))
    net = easyfsl.PrototypicalNetworks(torch.nn.Identity())
    x = torch.from_numpy(emb)
    want = []
    for e in range(ep.support.shape[0]):
        way_of = torch.arange(5)
        net.process_support_set(x[ep.support[e].ravel()], way_of.repeat_interleave(5))
        q = x[ep.query[e].ravel()]
        logits = net(q) if scores == "euclidean" else net.cosine_distance_to_prototypes(q)
        want.append((logits.argmax(dim=1) == way_of.repeat_interleave(15)).double().mean())
    got = episode_accuracies(emb, ep, scores)
    np.testing.assert_allclose(got, torch.stack(want).numpy(), rtol=0, atol=1e-6)


def test_a_worked_two_way_one_shot_episode():
    # supports at 0 and 10 on a line; queries 4 (-> way 0), 6 (-> way 1), 9 (-> way 1), 1 (-> 0)
    emb = np.array([[0.0], [10.0], [4.0], [9.0], [6.0], [1.0]])
    ep = Episodes(
        classes=np.array([[0, 1]]),
        support=np.array([[[0], [1]]]),
        query=np.array([[[2, 3], [4, 5]]]),  # way 0: rows 2, 3; way 1: rows 4, 5
    )
    # way 0's queries: 4 right, 9 wrong; way 1's: 6 right, 1 wrong
    assert episode_accuracies(emb, ep, "euclidean").tolist() == [0.5]
    # dot product: the larger prototype (10) wins every positive query
    assert episode_accuracies(emb, ep, "dot").tolist() == [0.5]


def test_mean_and_ci95_of_a_worked_example():
    acc = np.array([0.5, 0.7, 0.9, 0.7])  # mean 0.7, sample std sqrt(0.08 / 3)
    mean, ci = mean_ci95(acc)
    assert mean == pytest.approx(0.7)
    assert ci == pytest.approx(1.96 * np.sqrt(0.08 / 3) / 2)
    with pytest.raises(ValueError, match="at least 2 episodes"):
        mean_ci95(np.array([0.5]))


# ---------------------------------------------------------------------------- figures


def test_fewshot_metrics_run_min_of_way_and_classes_and_name_the_keys():
    emb, labels = _pool(n_classes=3, per_class=25)
    cfg = FewShotConfig(ways=(5, 2), shots=(1, 5), queries=15, episodes=50)
    m = fewshot_metrics(emb, labels, np.arange(len(labels)), cfg, "euclidean", seed=0)
    assert m["fewshot_way"] == 3  # 5-way on 3 classes runs as 3-way
    for way in (3, 2):
        for shot in (1, 5):
            ep = sample_episodes(labels, way, shot, 15, 50, np.random.default_rng([0, way, shot]))
            mean, ci = mean_ci95(_brute_force_accuracies(emb, ep, "euclidean"))
            assert m[f"fewshot_{way}way_{shot}shot_accuracy"] == pytest.approx(mean, abs=1e-12)
            assert m[f"fewshot_{way}way_{shot}shot_ci95"] == pytest.approx(ci, abs=1e-12)
    assert m["fewshot_5shot_accuracy"] == m["fewshot_3way_5shot_accuracy"]  # the headline way
    # more support images make better prototypes on these clusters
    assert m["fewshot_3way_5shot_accuracy"] > m["fewshot_3way_1shot_accuracy"]


def test_a_shot_without_enough_images_is_left_out_and_the_others_keep_their_figures():
    emb, labels = _pool(n_classes=3, per_class=12)
    rows = np.arange(len(labels))
    both = fewshot_metrics(emb, labels, rows, FewShotConfig(shots=(1, 5), queries=10), "l2", 1)
    one = fewshot_metrics(emb, labels, rows, FewShotConfig(shots=(1,), queries=10), "l2", 1)
    assert "fewshot_3way_5shot_accuracy" not in both  # 5 + 10 > 12 images per class
    assert both == one
    with pytest.raises(ValueError, match="2 classes"):
        fewshot_metrics(emb, labels, np.flatnonzero(labels == 10), FewShotConfig(), "l2", 0)
