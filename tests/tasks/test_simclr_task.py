import numpy as np
import pytest
import torch

from simlearn.engine import fit
from simlearn.evaluation import retrieval_metrics
from simlearn.models import Embedder, embed_images, load_model, save_model
from simlearn.models.projection import ProjectionHead
from simlearn.tasks import experiment_config
from simlearn.training.simclr import SimCLRTask


def cfg_for(**exp):
    section = {
        "task": "simclr",
        "dataset": "digits",
        "model": {"name": "convnet", "embedding_dim": 16, "width": 8},
        "loss": {"name": "ntxent", "temperature": 0.2},
        "sampler": {"name": "random", "batch_size": 64},
        **exp,
    }
    return experiment_config({"datasets": {"digits": {}}, "experiments": {"e": section}}, "e")


def test_views_are_two_different_warps_fixed_by_the_batch(digits):
    task = SimCLRTask(cfg_for(), digits)
    rows, seed = next(iter(task.batches(0)))
    v1, v2 = task.views(rows, seed, torch.device("cpu"))
    x = torch.from_numpy(digits.images[rows]).permute(0, 3, 1, 2).float() / 255
    assert v1.shape == v2.shape == x.shape
    assert not torch.allclose(v1, v2) and not torch.allclose(v1, x)
    w1, w2 = task.views(rows, seed, torch.device("cpu"))
    assert torch.equal(v1, w1) and torch.equal(v2, w2)


def test_one_step_lowers_the_loss_and_trains_the_projection_head(digits):
    task = SimCLRTask(cfg_for(model={"embedding_dim": 16, "width": 8, "projection_dim": 8}), digits)
    assert isinstance(task.model.head, ProjectionHead)
    batch = next(iter(task.batches(0)))
    opt = torch.optim.SGD(task.model.parameters(), lr=0.05)
    task.model.train()
    loss0, n = task.loss(task.model, batch, torch.device("cpu"))
    assert n == 64 and torch.isfinite(loss0)
    # NT-Xent over 2N = 128 views can be no larger than log(2N - 1) + 2 / t for unit vectors
    assert 0 < loss0.item() <= np.log(127) + 2 / 0.2
    opt.zero_grad()
    loss0.backward()
    assert task.model.head.net[0].weight.grad.abs().sum() > 0
    opt.step()
    loss1, _ = task.loss(task.model, batch, torch.device("cpu"))
    assert loss1.item() < loss0.item()


def test_held_out_classes_never_reach_training(digits):
    task = SimCLRTask(cfg_for(holdout_classes=[7, 8, 9]), digits)
    seen = np.concatenate([rows for rows, _ in task.batches(0)])
    assert not np.isin(digits.labels[seen], [7, 8, 9]).any()
    assert set(digits.splits[seen]) == {"train"}


def test_training_is_seeded_and_saves_the_encoder_alone(digits, tmp_path):
    cfg = cfg_for(
        model={"embedding_dim": 16, "width": 8, "projection_dim": 8},
        train={"epochs": 2, "num_threads": 1},
    )
    weights = []
    for run in range(2):
        task = SimCLRTask(cfg, digits)
        fit(task, cfg.train, seed=0, checkpoint_dir=tmp_path / f"ck{run}", progress=False)
        weights.append({k: v.clone() for k, v in task.model.state_dict().items()})
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert isinstance(task.embedder, Embedder)
    save_model(tmp_path / "model.pt", task.embedder, task.spec)
    loaded, spec = load_model(tmp_path / "model.pt")
    assert spec["projection_dim"] == 8
    assert not any(k.startswith("head.net") for k in loaded.state_dict())
    imgs = digits.images[:50]
    np.testing.assert_array_equal(embed_images(loaded, imgs), embed_images(task.embedder, imgs))
    assert embed_images(loaded, imgs).shape == (50, 16)


def test_training_brings_views_of_the_same_digit_together(digits, tmp_path):
    """Labels are never used, yet retrieval by class improves: the known SimCLR effect."""
    cfg = cfg_for(train={"epochs": 8, "num_threads": 1})
    task = SimCLRTask(cfg, digits)
    val = digits.indices("val")

    def val_map() -> float:
        e = embed_images(task.embedder, digits.images[val])
        return retrieval_metrics(e, digits.labels[val]).summary()["map"]

    before = val_map()
    result = fit(task, cfg.train, seed=0, checkpoint_dir=tmp_path, progress=False)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert val_map() > before + 0.1
    assert result.history[-1]["val_map"] == pytest.approx(val_map(), abs=1e-6)


def test_weighted_knn_is_not_reported_for_disjoint_test_classes():
    """Test classes never trained on (split by class): no training row shares a test class, so
    the train-referenced probe would be wrong by construction; it is left out."""
    from simlearn.tasks.simclr import weighted_knn

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 10)
    emb = rng.normal(size=(60, 4)) + labels[:, None]
    arrays = {"labels": labels, "holdout": np.zeros(60, dtype=bool)}
    arrays["split"] = np.where(labels < 3, "train", "test")
    assert weighted_knn(arrays, emb) is None
    arrays["split"] = np.tile(np.array(["train"] * 7 + ["test"] * 3), 6)
    assert 0.0 <= weighted_knn(arrays, emb) <= 1.0


def test_batches_are_the_samplers_and_each_knows_the_one_after(digits):
    # the look-ahead that lets CUDA make the next views early changes no batch and no view
    task = SimCLRTask(cfg_for(sampler={"name": "random", "batch_size": 64, "steps_per_epoch": 5}),
                      digits)  # fmt: skip
    expected = [(task.train_idx[r], s) for r, s in task.sampler.epoch(1, 0, 1)]
    seen, following = [], []
    for rows, seed in task.batches(1):
        seen.append((rows, seed))
        following.append(task._following)
    assert len(seen) == len(expected) == 5
    for (r, s), (er, es) in zip(seen, expected, strict=True):
        assert np.array_equal(r, er) and s == es
    assert following[-1] is None
    for (r, s), nxt in zip(seen[1:], following[:-1], strict=True):
        assert np.array_equal(nxt[0], r) and nxt[1] == s


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_views_made_ahead_on_a_side_stream_equal_views_made_in_the_step(digits):
    device = torch.device("cuda")
    task = SimCLRTask(cfg_for(sampler={"name": "random", "batch_size": 64, "steps_per_epoch": 4}),
                      digits)  # fmt: skip
    task.model.to(device)
    got = []
    for batch in task.batches(0):
        got.append([v.clone() for v in task._views_ahead_get(batch, device)])
    torch.cuda.synchronize()
    for batch, (a, b) in zip(task.batches(0), got, strict=True):
        x, y = task.views(batch[0], batch[1], device)
        assert torch.equal(a, x) and torch.equal(b, y)
