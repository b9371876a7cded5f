"""The stereo task end to end on small files in the true formats (KITTI 16-bit PNG, Middlebury
PFM), built by the real sources; config checks; a training smoke that lowers the loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from simlearn import tasks
from simlearn.config import ConfigError, from_dict
from simlearn.data.readers import write_kitti_disparity, write_pfm
from simlearn.data.sources import DatasetConfig, build_dataset
from simlearn.data.stereo_dataset import StereoDataset
from simlearn.models import save_model
from simlearn.tasks import stereo as T

H, W = 24, 72


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A textured right view and the left view it gives with disparity 5 (top) and 9 (bottom)."""
    right = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    right = np.repeat(np.repeat(right[::2, ::2], 2, 0), 2, 1)[:H, :W]  # 2x2 blobs: smoother
    disp = np.where(np.arange(H)[:, None] < H // 2, 5.0, 9.0) * np.ones((1, W))
    xs = np.arange(W)[None, :] - disp.astype(int)
    left = right[np.arange(H)[:, None], np.clip(xs, 0, W - 1)]
    return left, right, disp


def _kitti(root: Path, n: int = 3) -> None:
    rng = np.random.default_rng(0)
    training = root / "training"
    for folder in ("image_2", "image_3", "disp_noc_0", "disp_occ_0"):
        (training / folder).mkdir(parents=True)
    for i in range(n):
        left, right, disp = _scene(rng)
        frame = f"{i:06d}_10.png"
        Image.fromarray(left).save(training / "image_2" / frame)
        Image.fromarray(right).save(training / "image_3" / frame)
        write_kitti_disparity(training / "disp_noc_0" / frame, disp)
        write_kitti_disparity(training / "disp_occ_0" / frame, disp)


def _middlebury(root: Path) -> None:
    rng = np.random.default_rng(1)
    for scene in ("Piano", "Pipes"):
        folder = root / f"{scene}-perfect"
        folder.mkdir(parents=True)
        left, right, disp = _scene(rng)
        Image.fromarray(left).save(folder / "im0.png")
        Image.fromarray(right).save(folder / "im1.png")
        d = disp.astype(np.float32)
        d[0, :4] = np.inf  # Middlebury's "no ground truth"
        write_pfm(folder / "disp0.pfm", d)
        (folder / "calib.txt").write_text(f"width={W}\nheight={H}\nndisp=16\nvmin=1\nvmax=15\n")


def _kitti_data(tmp_path: Path) -> StereoDataset:
    """Two KITTI-2015 pairs in the true formats, built and loaded: one train, one val."""
    _kitti(tmp_path / "downloads", n=2)
    build_dataset(
        "d",
        DatasetConfig(source="kitti2015", val_fraction=0.5),
        tmp_path / "data",
        tmp_path / "downloads",
    )
    return T.load_data(tmp_path / "data")


def _cfg(**section) -> T.Config:
    base = {"task": "stereo", "dataset": "x"}
    cfg = from_dict(T.Config, {**base, **section}, "experiments.s")
    T.check(cfg)
    return cfg


@pytest.mark.parametrize("source", ["kitti2015", "middlebury2014"])
def test_ncc_end_to_end_on_files_in_the_true_formats(tmp_path, source):
    downloads = tmp_path / "downloads"
    if source == "kitti2015":
        _kitti(downloads)
        dcfg = DatasetConfig(source=source, val_fraction=0.34)
    else:
        _middlebury(downloads)
        dcfg = DatasetConfig(source=source, scenes=("Piano", "Pipes"), val_fraction=0.5)
    build_dataset("d", dcfg, tmp_path / "data", downloads)
    data = T.load_data(tmp_path / "data")
    # the readers gave back what was written: 16-bit PNG / 256, PFM with inf -> NaN
    pair = data[0]
    assert pair.left.shape == (H, W, 3) and pair.disparity.dtype == np.float32
    known = np.isfinite(pair.disparity)
    assert set(np.unique(pair.disparity[known])) == {5.0, 9.0}
    assert known.all() if source == "kitti2015" else (~known).sum() == 4

    cfg = _cfg(model={"method": "ncc"}, eval={"train_pairs": 1})
    T.check_data(cfg, data)
    trained = tasks.train(cfg, data, checkpoint_dir=tmp_path / "ck")
    (tmp_path / "m").mkdir()
    save_model(tmp_path / "m" / "model.pt", trained.model, trained.spec)
    model, spec = T.load_model(tmp_path / "m")
    arrays = T.embed(cfg, model, data, "cpu")
    assert sorted(arrays["split"]) == ["train", "val"]  # one train pair for train accuracy
    # the same model gives the same bytes (no timing inside): DVC can skip evaluate after it
    again = T.embed(cfg, model, data, "cpu")
    assert sorted(again) == sorted(arrays) and "seconds" not in arrays
    for k in arrays:
        np.testing.assert_array_equal(again[k], arrays[k])
    ev = T.evaluate(cfg, arrays, data, tmp_path / "figures", "s")
    m = ev.metrics
    # raw NCC finds both planes away from the borders (where patches are zero-padded or the
    # match is outside the right view) and from the planes' seam
    inner = np.zeros((H, W), bool)
    inner[4:8, 9:-5] = inner[16:20, 9:-5] = True
    for pid in arrays["ids"]:
        wta = arrays[f"wta/{pid}"]
        gt = data[data.ids.index(pid)].disparity
        assert np.mean(np.abs(wta - gt)[inner] <= 1) > 0.95
    assert m["wta_accuracy_3px"] > 0.75 and m["accuracy_3px"] > 0.75
    assert m["density"] == 1.0 and 0 <= m["d1"] <= 1 - m["accuracy_3px"] + 1e-9
    assert {"train_accuracy_3px", "noc_accuracy_3px", "train_wta_accuracy_3px"} <= set(m)
    # the accuracy curves pass through the two accuracies of the metrics, and never fall
    assert sorted(ev.curves) == ["accuracy", "accuracy_wta"]
    for kind, prefix in (("accuracy", ""), ("accuracy_wta", "wta_")):
        c = ev.curves[kind].set_index("x")["y"]
        assert c.index[0] == 0 and c.index[-1] == 10 and c.is_monotonic_increasing
        assert c[1.0] == m[prefix + "accuracy_1px"] and c[3.0] == m[prefix + "accuracy_3px"]
    assert [p.name for p in ev.figures] == ["disparity_wta.png", "disparity_post.png"]
    # the exported model maps a stacked pair to the winner-takes-all disparity
    x = torch.from_numpy(T.example_input(data))
    assert x.shape == (1, 6, 16, 72)
    assert model(x.repeat(2, 1, 1, 1)).shape == (2, 2 * 81, 16, 72)  # both views' NCC vectors


@pytest.mark.slow
def test_sgbm_baseline_end_to_end(tmp_path):
    pytest.importorskip("cv2")
    _middlebury(tmp_path / "downloads")
    dcfg = DatasetConfig(source="middlebury2014", scenes=("Piano", "Pipes"), val_fraction=0.5)
    build_dataset("d", dcfg, tmp_path / "data", tmp_path / "downloads")
    data = T.load_data(tmp_path / "data")
    cfg = _cfg(model={"method": "sgbm"}, eval={"train_pairs": 0})
    model = tasks.train(cfg, data, checkpoint_dir=tmp_path / "ck").model
    arrays = T.embed(cfg, model, data, "cpu")
    m = T.evaluate(cfg, arrays, data, tmp_path / "f", "s").metrics
    assert m["density"] == m["wta_density"] == 1.0  # holes filled, as every method's
    x = torch.from_numpy(T.example_input(data)).repeat(2, 1, 1, 1)
    assert model(x).shape == (2, 1, 16, 72)
    # without post-processing: OpenCV's map as it is, holes and all (the left band at least)
    raw = _cfg(model={"method": "sgbm"}, eval={"train_pairs": 0},
               post={"sgm": False, "lr_check": False, "subpixel": False, "median": 1})  # fmt: skip
    m = T.evaluate(raw, T.embed(raw, model, data, "cpu"), data, tmp_path / "g", "s").metrics
    assert m["accuracy_3px"] == m["wta_accuracy_3px"] and 0 < m["density"] < 1


def test_training_smoke_lowers_the_loss_on_fixed_triplets(tmp_path):
    data = _kitti_data(tmp_path)
    cfg = _cfg(
        model={"features": 16},
        sampler={"batch_size": 64, "steps_per_epoch": 15},
        train={"epochs": 2, "lr": 0.01, "num_threads": 1},
    )
    from simlearn.training.stereo import PatchTripletTask

    task = PatchTripletTask(cfg, data, T.training_anchors(cfg, data))

    def fixed_loss() -> float:
        with torch.no_grad():
            task.model.eval()
            a, p, n = task._embed(task.model, task._check, torch.device("cpu"))
            return float(task.criterion(a, p, n))

    before = fixed_loss()
    from simlearn.engine import fit

    result = fit(task, cfg.train, seed=0, checkpoint_dir=tmp_path / "ck", progress=False)
    assert fixed_loss() < 0.7 * before
    assert result.history[-1]["triplet_accuracy"] > 0.8


def test_row_strips_embed_the_same_patches_and_the_loss_takes_the_hardest_negative(tmp_path):
    data = _kitti_data(tmp_path)
    cfg = _cfg(
        model={"features": 16, "colour": True},
        sampler={"rows_per_step": 3, "negatives": "hardest", "steps_per_epoch": 2},
        train={"epochs": 1, "num_threads": 1},
    )
    T.check_data(cfg, data)
    from simlearn.training.stereo import PatchTripletTask

    torch.manual_seed(0)
    task = PatchTripletTask(cfg, data, T.training_anchors(cfg, data))
    batch = next(iter(task.batches(0)))
    cpu = torch.device("cpu")
    with torch.no_grad():
        strips = task._embed(task.model, batch, cpu, strips=True)
        patches = task._embed(task.model, batch, cpu, strips=False)
        for s, p in zip(strips, patches, strict=True):
            assert s.shape == p.shape
            torch.testing.assert_close(s, p, atol=1e-5, rtol=1e-4)
        a, pos, neg = patches  # neg: (B, 14, F)
        assert neg.shape[1] == 14
        # the loss, by hand: for each anchor, the candidate with the largest dot product
        pick = torch.stack([neg[i, int(torch.argmax(neg[i] @ a[i]))] for i in range(len(a))])
        want = torch.clamp(((a * pick).sum(1) - (a * pos).sum(1)) + 0.2, min=0).mean()
        loss, n = task.loss(task.model, batch, cpu)
    torch.testing.assert_close(loss, want, atol=1e-5, rtol=1e-4)
    assert n == 3 * len(a)
    with pytest.raises(ConfigError, match="sampler.rows_per_step=999: dataset 'x' has"):
        T.check_data(_cfg(sampler={"rows_per_step": 999}), data)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"experiments.s.model.method='sift': unknown name"):
        _cfg(model={"method": "sift"})
    with pytest.raises(ConfigError, match=r"experiments.s.sampler.neg_low=1: must be > pos_offset"):
        _cfg(sampler={"neg_low": 1})
    with pytest.raises(ConfigError, match=r"experiments.s.post.paths=6"):
        _cfg(post={"paths": 6})
    with pytest.raises(ConfigError, match="model.batch_norm=true: only model.method learned"):
        _cfg(model={"method": "ncc", "batch_norm": True})


def test_ablation_table_and_report_section_read_the_learned_experiments():
    experiments = {
        "g": (_cfg(dataset="motorcycle"), {"train_wta_accuracy_3px": 0.9, "wta_accuracy_3px": 0.8}),
        "c_bn": (_cfg(model={"colour": True, "batch_norm": True}), {"wta_accuracy_3px": 0.7}),
        "ncc": (_cfg(model={"method": "ncc"}), {"wta_accuracy_3px": 0.5}),
    }
    table = T.ablation_table(experiments)
    assert table["experiment"].tolist() == ["g", "c_bn"]
    assert table.loc[1, "input"] == "colour" and table.loc[1, "batch norm"] == "on"
    assert table.loc[1, "reference test (KITTI)"] == 0.7133
    assert table.loc[0, "train"] == 0.9 and table.loc[0, "test"] == 0.8
    assert np.isnan(table.loc[1, "train"])
    text = T.report_section(experiments)
    assert "| g | motorcycle | grey | off | 2000 | 90.00% | 80.00% | 84.99% | 82.32% |" in text
    only_ncc = T.report_section({"ncc": experiments["ncc"]})  # the columns, no ablation
    assert "`wta_*`" in only_ncc and "Stereo ablation" not in only_ncc
    assert T.report_section({}) is None


def test_describe_labels_learned_and_baselines():
    assert T.describe(_cfg())["baseline"] is False
    d = T.describe(_cfg(model={"method": "sgbm"}))
    assert d["baseline"] is True and d["model"] == "OpenCV SGBM"
    # SGBM's holes are filled and its map filtered as every method's; it aggregates its own costs
    assert {"post.sgm", "post.p1", "post.subpixel", "model.features"} <= set(d["unused"])
    assert not {"post", "post.fill", "post.median", "model.block_size"} & set(d["unused"])
    learned = T.describe(_cfg())["unused"]
    assert "model.block_size" in learned and "model.features" not in learned
    assert "model.layers" not in T.describe(_cfg(model={"method": "ncc"}))["unused"]  # patch


def test_figure_counts_the_metrics_valid_pixels_inside_the_mask():
    from simlearn.disparity import valid_ground_truth
    from simlearn.plots.stereo import _bad_pixel_mask

    gt = np.array([[np.nan, 0.0, 5.0, 5.0], [5.0, 5.0, np.inf, 5.0]])
    pred = np.array([[1.0, 1.0, 9.0, 5.0], [5.0, np.nan, 5.0, 5.0]])
    mask = np.array([[True, True, True, True], [False, True, True, True]])
    bad, valid = _bad_pixel_mask(pred, gt, 3.0, mask)
    np.testing.assert_array_equal(valid, valid_ground_truth(gt) & mask)
    assert bad.tolist() == [[False, False, True, False], [False, True, False, False]]


def test_post_processing_changes_the_map_when_any_step_runs():
    from simlearn.stereo.matcher import PostProcessing

    off = PostProcessing(sgm=False, lr_check=False, subpixel=False, median=1)
    assert not off.changes_map
    assert not PostProcessing(
        sgm=False, lr_check=False, subpixel=False, median=1, fill=False
    ).changes_map
    for step in ({"sgm": True}, {"lr_check": True}, {"subpixel": True}, {"median": 3}):
        assert PostProcessing(**{**off.__dict__, **step}).changes_map, step
