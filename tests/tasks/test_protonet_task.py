"""The protonet task: its params, its episodes, its loss on the network, and a whole run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simlearn import tasks
from simlearn.config import ConfigError
from simlearn.losses.prototypical_loss import PrototypicalLoss
from simlearn.tasks import experiment_config
from simlearn.training.protonet import ProtonetTask

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"name": "convnet", "embedding_dim": 8, "width": 8}


def cfg_for(**exp):
    params = {
        "datasets": {"digits": {}},
        "experiments": {"e": {"task": "protonet", "dataset": "digits", **exp}},
    }
    return experiment_config(params, "e")


def test_each_training_batch_is_an_episode_of_distinct_seen_images_class_by_class(digits):
    episode = {"ways": 4, "shots": 2, "queries": 3, "episodes_per_epoch": 6}
    cfg = cfg_for(holdout_classes=[8, 9], model=SMALL, episode=episode)
    task = ProtonetTask(cfg, digits)
    episodes = list(task.batches(0))
    assert len(episodes) == 6
    for rows in episodes:
        lab = digits.labels[rows].reshape(4, 5)  # ways x (shots + queries)
        assert (lab == lab[:, :1]).all() and len(set(lab[:, 0])) == 4  # one class per row
        assert not np.isin(lab, [8, 9]).any() and len(set(rows)) == 20
        assert (digits.splits[rows] == "train").all()
    np.testing.assert_array_equal(episodes[0], next(iter(ProtonetTask(cfg, digits).batches(0))))
    assert not np.array_equal(episodes[0], next(iter(task.batches(1))))  # seeded by the epoch


def test_the_task_loss_is_the_prototypical_loss_of_the_episode_s_embeddings(digits):
    cfg = cfg_for(model=SMALL, episode={"ways": 3, "shots": 2, "queries": 4},
                  loss={"distance": "euclidean", "temperature": 0.5})  # fmt: skip
    task = ProtonetTask(cfg, digits)
    rows = next(iter(task.batches(0)))
    task.model.eval()
    got, n = task.loss(task.model, rows, torch.device("cpu"))
    x, _ = task._inputs(rows, torch.device("cpu"))
    e = task.model(x).view(3, 6, -1)
    want = PrototypicalLoss("euclidean", 0.5)(e[:, :2], e[:, 2:])
    assert n == 18 and got.item() == pytest.approx(want.item(), rel=1e-6)
    # one step downhill on the same episode
    task.model.train()
    opt = torch.optim.SGD(task.model.parameters(), lr=0.05)
    loss0, _ = task.loss(task.model, rows, torch.device("cpu"))
    opt.zero_grad()
    loss0.backward()
    opt.step()
    assert task.loss(task.model, rows, torch.device("cpu"))[0].item() < loss0.item()


@pytest.mark.parametrize(
    "exp, message",
    [
        ({"model": {"name": "raw"}}, "experiments.e.model.name='raw': task protonet trains"),
        ({"model": {"projection_dim": 8}}, "experiments.e.model.projection_dim=8"),
        ({"episode": {"ways": 1}}, "experiments.e.episode.ways=1: must be >= 2"),
        ({"loss": {"distance": "manhattan"}}, "experiments.e.loss.distance='manhattan'"),
        ({"loss": {"temperature": 0}}, "experiments.e.loss.temperature=0.0: must be > 0"),
        ({"sampler": {"name": "pk"}}, "experiments.e.sampler: unknown key"),
    ],
)
def test_bad_params_name_the_key(exp, message):
    with pytest.raises(ConfigError) as e:
        cfg_for(**exp)
    assert str(e.value).startswith(message), str(e.value)


def test_episodes_the_data_cannot_fill_are_refused_before_training(digits):
    check = tasks.get("protonet").check_data
    with pytest.raises(ConfigError, match=r"episode.ways=9: the training split has 8 classes"):
        check(cfg_for(holdout_classes=[8, 9], episode={"ways": 9}), digits)
    with pytest.raises(ConfigError, match=r"episode.queries=200: training class \d+ has"):
        check(cfg_for(episode={"queries": 200}), digits)
    with pytest.raises(ConfigError, match=r"eval.fewshot.queries=60: held-out class"):
        check(cfg_for(holdout_classes=[8, 9], eval={"fewshot": {"queries": 60}}), digits)


@pytest.mark.slow
def test_a_run_trains_on_episodes_and_reports_fewshot_and_ood_on_held_out_classes(digits, tmp_path):
    cfg = cfg_for(holdout_classes=[7, 8, 9], model=SMALL, eval={"embedding_map": "pca",
                  "fewshot": {"episodes": 50}}, episode={"episodes_per_epoch": 20},
                  train={"epochs": 2, "num_threads": 1})  # fmt: skip
    trained = tasks.train(cfg, digits, checkpoint_dir=tmp_path / "ckpt")
    assert [r["epoch"] for r in trained.history] == [1, 2] and "val_map" in trained.history[0]
    arrays = tasks.embed(cfg, trained.model.eval(), digits, "cpu")
    out = tasks.evaluate(cfg, arrays, digits, tmp_path, "p")
    assert {"fewshot_3way_1shot_accuracy", "fewshot_3way_5shot_ci95", "ood_knn_auroc",
            "ood_mahalanobis_fpr95", "unseen_map"} <= set(out.metrics)  # fmt: skip
    assert out.metrics["fewshot_3way_5shot_accuracy"] > 1 / 3 + 0.1  # better than chance
    assert (tmp_path / "ood_scores.png").exists()
    assert set(out.summary) <= set(out.metrics)
    assert tasks.get("protonet").describe(cfg)["loss"] == "prototypical"


def test_same_seed_same_trained_weights(digits, tmp_path):
    cfg = cfg_for(model=SMALL, episode={"episodes_per_epoch": 3}, train={"epochs": 1})
    a = tasks.train(cfg, digits, checkpoint_dir=tmp_path / "a").model.state_dict()
    b = tasks.train(cfg, digits, checkpoint_dir=tmp_path / "b").model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = ProtonetTask(cfg, digits).model.state_dict()  # the seeded initial weights
    assert not all(torch.equal(a[k], start[k]) for k in a)  # and training moved them
