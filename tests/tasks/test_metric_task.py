import numpy as np
import pytest
import torch

from simlearn.tasks import experiment_config
from simlearn.tasks.metric import fit_baseline
from simlearn.training.metric import MetricTask


def cfg_for(**exp):
    params = {
        "datasets": {"digits": {}},
        "experiments": {"e": {"task": "metric", "dataset": "digits", **exp}},
    }
    return experiment_config(params, "e")


CASES = {
    "contrastive_pairs": dict(loss={"name": "contrastive"}, sampler={"name": "pairs"}),
    "contrastive_pk": dict(loss={"name": "contrastive"}, sampler={"name": "pk"}),
    "triplet_random": dict(loss={"name": "triplet"}, sampler={"name": "triplets"}),
    "triplet_semihard": dict(
        loss={"name": "triplet"}, sampler={"name": "pk", "mining": "semihard"}
    ),
    "triplet_soft_dot": dict(loss={"name": "triplet", "soft": True, "distance": "dot"}),
    "batch_hard": dict(loss={"name": "batch_hard"}),
    "npairs": dict(loss={"name": "npairs"}),
    "snn": dict(loss={"name": "snn"}),
    "supcon": dict(loss={"name": "supcon"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_training_step_of_every_loss_lowers_its_loss(digits, case):
    cfg = cfg_for(model={"name": "convnet", "embedding_dim": 16, "width": 8}, **CASES[case])
    task = MetricTask(cfg, digits)
    batch = next(iter(task.batches(0)))
    opt = torch.optim.SGD(task.model.parameters(), lr=0.05)
    task.model.train()
    loss0, n = task.loss(task.model, batch, torch.device("cpu"))
    assert torch.isfinite(loss0) and n > 0
    opt.zero_grad()
    loss0.backward()
    grads = [p.grad for p in task.model.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    opt.step()
    loss1, _ = task.loss(task.model, batch, torch.device("cpu"))
    assert loss1.item() <= loss0.item() + 1e-6  # a small step downhill on the same batch


def test_holdout_classes_never_reach_training(digits):
    cfg = cfg_for(holdout_classes=[7, 8, 9], sampler={"classes_per_batch": 7})
    task = MetricTask(cfg, digits)
    seen = set()
    for epoch in range(2):
        for b in task.batches(epoch):
            seen |= set(digits.labels[b].tolist())
    assert seen == set(range(7))
    assert not np.isin(digits.labels[task.val_idx], [7, 8, 9]).any()
    # the baselines are fitted on the seen classes only: LDA has (seen classes - 1) dimensions
    model, _ = fit_baseline(cfg_for(holdout_classes=[7, 8, 9], model={"name": "lda"}), digits)
    assert model.encoder.weight.shape[0] == 6


@pytest.mark.parametrize(
    "exp, message",
    [
        (
            dict(loss={"name": "batch_hard"}, sampler={"name": "pairs"}),
            "sampler.name='pairs' cannot feed loss.name='batch_hard'; allowed samplers for it: pk",
        ),
        (
            dict(loss={"name": "npairs"}, sampler={"samples_per_class": 3}),
            "samples_per_class=3: the npairs loss needs an even number",
        ),
        (dict(holdout_classes=[12]), "holdout_classes=[12]: [12] out of range"),
        (
            dict(holdout_classes=[7, 8, 9]),
            "classes_per_batch=10: must be between 2 and the number of training classes (7)",
        ),
    ],
)
def test_incompatible_settings_fail_with_a_clear_message(digits, exp, message):
    with pytest.raises(ValueError) as e:
        MetricTask(cfg_for(**exp), digits)
    assert message in str(e.value)


def test_same_seed_same_initial_weights(digits):
    a = MetricTask(cfg_for(seed=3), digits).model.state_dict()
    torch.rand(5)
    b = MetricTask(cfg_for(seed=3), digits).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_seeded_training_with_mined_triplets_is_reproducible(digits, tmp_path):
    """Mined triplets index the batch with repeated indices; without deterministic kernels the
    backward accumulation order varies between runs and seeded CPU runs drift apart."""
    from simlearn.engine import fit

    cfg = cfg_for(
        model={"name": "convnet", "embedding_dim": 16, "width": 8},
        loss={"name": "triplet", "soft": True},
        sampler={"mining": "all"},
        train={"epochs": 3},
    )
    runs = []
    for i in range(2):
        task = MetricTask(cfg, digits)
        task.validate = lambda model, device: {}
        res = fit(task, cfg.train, seed=cfg.seed, checkpoint_dir=tmp_path / str(i), progress=False)
        runs.append(
            (
                [r["loss"] for r in res.history],
                [p.detach().clone() for p in task.model.parameters()],
            )
        )
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_embed_carries_query_and_gallery_roles_to_evaluate(digits, tmp_path):
    """A manifest with is_query / is_gallery (kind files) puts them in the embeddings; the
    evaluation ranks the test queries against the test gallery only. Without them (kind
    images), the arrays are what they were and retrieval is leave-one-out."""
    import dataclasses

    from simlearn.evaluation.protocol import labelled_metrics
    from simlearn.tasks import metric

    cfg = cfg_for(model={"name": "raw", "normalize": False}, eval={"embedding_map": "pca"})
    model, _ = fit_baseline(cfg, digits)
    plain = metric.embed(cfg, model, digits, "cpu")
    assert set(plain) == {"embeddings", "labels", "ids", "split", "holdout"}

    manifest = digits.manifest.copy()
    n = len(manifest)
    manifest["is_query"] = np.arange(n) % 2 == 0  # even rows ask
    manifest["is_gallery"] = np.arange(n) % 3 != 0  # rows not divisible by 3 answer
    ds = dataclasses.replace(digits, manifest=manifest)
    arrays = metric.embed(cfg, model, ds, "cpu")
    np.testing.assert_array_equal(arrays["is_query"], manifest["is_query"].to_numpy())
    np.testing.assert_array_equal(arrays["embeddings"], plain["embeddings"])

    out = metric.evaluate(cfg, arrays, ds, tmp_path, "e")
    test = digits.splits == "test"
    assert out.metrics["n_queries"] == (test & manifest["is_query"].to_numpy()).sum()
    assert {"recall_at_1", "recall_at_2", "recall_at_4", "recall_at_8", "nmi"} <= set(out.metrics)
    assert out.metrics["recall_at_1"] == out.metrics["precision_at_1"]
    split = arrays["split"].astype(str)
    leave_one_out, _ = labelled_metrics(
        plain["embeddings"], plain["labels"], split, plain["holdout"], cfg
    )
    assert out.metrics["map"] != leave_one_out["map"]
    assert {"recall_at_1", "nmi"} <= set(metric.KEY_METRICS)
    assert set(out.summary) <= set(out.metrics)  # every figure the stage prints exists
