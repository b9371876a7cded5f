"""The sbir task: config rules, a training run on a Sketchy-layout tree through the streaming
loader that beats the raw-pixels baseline, the baselines, and the task's imports.

Its parts have their own tests: the class-anchor loss and the cross-domain miner in
``tests/losses``, mAP@K in ``tests/evaluation``, the flip-and-shift and recolour views in
``tests/test_augment.py``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simlearn import tasks
from simlearn.config import ConfigError
from simlearn.config.sbir import ZERO_SHOT_SPLITS
from simlearn.data.sketch_dataset import load_sketch_dataset
from simlearn.tasks import experiment_config, sbir


def cfg_for(**exp):
    params = {
        "datasets": {"sk": {}},
        "experiments": {"e": {"task": "sbir", "dataset": "sk", **exp}},
    }
    return experiment_config(params, "e")


def test_named_zero_shot_splits_have_the_literature_sizes():
    assert len(ZERO_SHOT_SPLITS["sketchy25"]) == 25
    assert len(ZERO_SHOT_SPLITS["sketchy21"]) == 21
    assert set(ZERO_SHOT_SPLITS["sketchy25"]) & set(ZERO_SHOT_SPLITS["sketchy21"]) == {
        "scissors", "tree", "wheelchair", "windmill"
    }  # fmt: skip
    assert cfg_for(zero_shot="sketchy21").unseen_names == ZERO_SHOT_SPLITS["sketchy21"]


@pytest.mark.parametrize(
    ("exp", "message"),
    [
        ({"zero_shot": "sketchy30"}, "experiments.e.zero_shot='sketchy30': unknown name"),
        ({"zero_shot": "list"}, "experiments.e.unseen_classes=[]"),
        ({"unseen_classes": ["cat"]}, "experiments.e.unseen_classes=['cat']"),
        ({"model": {"method": "sift"}}, "experiments.e.model.method='sift'"),
        ({"loss": {"mining": "batch"}}, "experiments.e.loss.mining='batch'"),
        (
            {"model": {"photo_model": {"name": "convnet", "pretrained": True}}},
            "experiments.e.model.photo_model.pretrained=true",
        ),
        (
            {"model": {"shared": True, "sketch_model": {"name": "resnet18"}}},
            "experiments.e.model.sketch_model=",
        ),
    ],
)
def test_bad_params_name_the_key(exp, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        cfg_for(**exp)


def test_unknown_unseen_class_is_a_config_error(sketchy_data):
    ds = load_sketch_dataset(sketchy_data)
    cfg = cfg_for(zero_shot="list", unseen_classes=["owl", "bat"])
    with pytest.raises(ConfigError, match=r"unseen_classes=\['owl', 'bat'\].*'bat'"):
        sbir.check_data(cfg, ds)


def test_training_streams_a_sketchy_tree_and_beats_raw_pixels(sketchy_data, tmp_path):
    """Two towers trained from a Sketchy-layout dataset through ImageStream (threads, lazy
    batches); then embed and evaluate run end to end, and the trained towers retrieve the test
    photos better than the raw-pixels baseline on the same data and protocol.

    The tree's sketches are dark outlines on white, its photos bright blocks on dark noise: raw
    pixels rank a sketch's photo below chance (mAP 0.33 over 6 sketches and 3 photos; chance
    0.61), the towers after 8 epochs at 0.61 to 0.83 (seeds 0 to 4; 0.83 for seed 0)."""
    ds = load_sketch_dataset(sketchy_data)
    model = {"embedding_dim": 8, "image_size": 16, "sketch_model": {"width": 4},
             "photo_model": {"name": "sketchnet", "width": 4, "edges": True}}  # fmt: skip
    cfg = cfg_for(
        zero_shot="list",
        unseen_classes=["owl"],
        model=model,
        loss={"name": "supcon", "anchor_weight": 1.0},
        sampler={
            "classes_per_batch": 2,
            "photos_per_class": 2,
            "workers": 2,
            "batch_size": 5,
            "recolour": True,
        },  # fmt: skip
        train={"epochs": 8, "lr": 0.01, "device": "cpu"},
    )
    sbir.check_data(cfg, ds)
    trained = tasks.train(cfg, ds, checkpoint_dir=tmp_path / "ckpt")
    assert len(trained.history) == 8
    assert all(np.isfinite(r["loss"]) for r in trained.history)
    arrays = sbir.embed(cfg, trained.model, ds, "cpu")
    n = len(ds.ids)
    assert arrays["embeddings"].shape == (n, 8)
    assert np.allclose(np.linalg.norm(arrays["embeddings"], axis=1), 1.0, atol=1e-5)
    assert set(arrays["domain"]) == {"sketch", "photo"}
    assert arrays["unseen"].sum() == (ds.labels == ds.class_names.index("owl")).sum()
    # the sketch tower embeds sketches, the photo tower photos: recompute one of each
    net = trained.model.eval()
    for domain in ("sketch", "photo"):
        row = int(np.flatnonzero(arrays["domain"] == domain)[0])
        from simlearn.data.sketch_dataset import ImageStream

        x = ImageStream(ds, 16, workers=1).load(np.array([row]))
        with torch.no_grad():
            e = net.embed(x, domain).numpy()[0]
        assert np.allclose(e, arrays["embeddings"][row], atol=1e-5)
    ev = sbir.evaluate(cfg, arrays, ds, tmp_path / "figs", "t")
    for key in ("map", "map_at_200", "precision_at_100", "unseen_map", "seen_map"):
        assert 0.0 <= ev.metrics[key] <= 1.0
    assert (tmp_path / "figs" / "retrieval_grid.png").is_file()
    assert set(ev.curves) >= {"pr", "pr_unseen"}
    # the raw-pixels baseline, on the same data, unseen category and protocol
    raw_cfg = cfg_for(zero_shot="list", unseen_classes=["owl"],
                      model={"method": "raw", "image_size": 16, "raw_size": 8})  # fmt: skip
    raw = tasks.train(raw_cfg, ds, checkpoint_dir=tmp_path / "raw")
    raw_ev = sbir.evaluate(raw_cfg, sbir.embed(raw_cfg, raw.model, ds, "cpu"), ds, tmp_path, "raw")
    assert raw_ev.metrics["n_queries"] == ev.metrics["n_queries"] == 6
    assert ev.metrics["map"] >= raw_ev.metrics["map"] + 0.2
    assert ev.metrics["seen_map"] > raw_ev.metrics["seen_map"]
    # the exported model reloads to the same embeddings
    from simlearn.models import save_model

    (tmp_path / "m").mkdir()
    save_model(tmp_path / "m" / "model.pt", trained.model, trained.spec)
    loaded, _ = sbir.load_model(tmp_path / "m")
    x = torch.from_numpy(sbir.example_input(ds))
    with torch.no_grad():
        assert torch.allclose(loaded(x), trained.model(x), atol=1e-6)


@pytest.mark.parametrize("method", ["raw", "edge_hog"])
def test_baselines_embed_both_domains(sketchy_data, tmp_path, method):
    ds = load_sketch_dataset(sketchy_data)
    cfg = cfg_for(model={"method": method, "image_size": 16, "raw_size": 8, "hog_cell": 4})
    trained = tasks.train(cfg, ds, checkpoint_dir=tmp_path)
    arrays = sbir.embed(cfg, trained.model, ds, "cpu")
    emb = arrays["embeddings"]
    if method == "raw":  # greyscale 8x8 of the image: the mean of 2x2 blocks of the 16x16
        from simlearn.data.sketch_dataset import ImageStream

        row = int(np.flatnonzero(arrays["domain"] == "photo")[0])
        x = ImageStream(ds, 16, workers=1).read(np.array([row]))[0].astype(np.float64) / 255
        grey = x.mean(axis=2).reshape(8, 2, 8, 2).mean(axis=(1, 3))
        assert np.allclose(emb[row], grey.ravel(), atol=1e-6)
    else:  # 16 px, 4 px cells: 3x3 blocks of 2x2 cells x 9 orientations
        assert emb.shape[1] == 3 * 3 * 2 * 2 * 9
    ev = sbir.evaluate(cfg, arrays, ds, tmp_path / "figs", method)
    assert 0.0 <= ev.metrics["map"] <= 1.0


def test_importing_the_task_loads_no_heavy_library():
    import subprocess
    import sys

    code = (
        "import sys, simlearn.tasks.sbir as t; t.describe; "
        "heavy = ('torch', 'sklearn', 'matplotlib', 'skimage'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_describe_names_model_loss_and_unused_sections():
    d = sbir.describe(cfg_for(model={"photo_model": {"name": "sketchnet"}},
                              loss={"name": "supcon", "anchor_weight": 1.0}))  # fmt: skip
    assert d == {"model": "convnet + sketchnet", "loss": "supcon + class anchors",
                 "baseline": False, "unused": ()}  # fmt: skip
    d = sbir.describe(cfg_for(model={"method": "edge_hog"}))
    assert d["baseline"] and d["unused"] == ("loss", "sampler", "train")


def test_architectures_listed_by_the_config_are_the_ones_the_models_build():
    from simlearn.config import sbir as config
    from simlearn.models.two_tower import ARCHITECTURES

    assert config.ARCHITECTURES == ARCHITECTURES
