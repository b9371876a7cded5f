"""The OpenCV SGBM baseline goes through the same hole filling and median as every other method:
its holes (the left band OpenCV never computes, its left-right check's failures, speckles) are
filled by the one ``fill`` of :mod:`simlearn.stereo.matcher`, checked here against a brute-force
loop written from the rules of Zbontar & LeCun 2016 (section 3.3), for the ``post:`` section of
every stereo experiment in params.yaml."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from simlearn import tasks
from simlearn.config import ConfigError, from_dict, load_params
from simlearn.config.stereo import Config, StereoModelConfig
from simlearn.models.patchnet import PatchNet
from simlearn.stereo import matcher as M
from simlearn.stereo.refine import MISMATCH, OCCLUSION, OK, OUT_OF_VIEW
from simlearn.stereo.sgbm import (
    MODES,
    opencv_disparities,
    sgbm_disparity,
    sgbm_right_disparity,
)

cv2 = pytest.importorskip("cv2")

ROOT = Path(__file__).resolve().parents[2]
H, W, MAX_DISP = 30, 80, 15.0  # OpenCV searches 16 disparities; the left 16 columns are holes


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left, right, the left view's true disparity): a textured background at disparity 4 (top
    half) and 8 (bottom half), and in front of it a textured square at disparity 12, which hides
    from the right view the background just left of it in the left view (an occlusion)."""
    rng = np.random.default_rng(seed)

    def blobs() -> np.ndarray:  # 2x2 blobs of random colour: a smoother texture
        small = rng.integers(0, 256, (H // 2 + 1, W // 2 + 1, 3), dtype=np.uint8)
        return np.repeat(np.repeat(small, 2, 0), 2, 1)[:H, :W]

    back, front = blobs(), blobs()
    ys, xs = np.mgrid[:H, :W]
    rows = (ys >= 18) & (ys < 26)
    d_back = np.where(ys < H // 2, 4, 8)
    right = np.where((rows & (xs >= 40) & (xs < 56))[..., None], front, back)
    in_front = rows & (xs >= 52) & (xs < 68)  # the square at left-view columns 52..67
    src_front = front[ys, np.clip(xs - 12, 0, W - 1)]
    src_back = back[ys, np.clip(xs - d_back, 0, W - 1)]
    left = np.where(in_front[..., None], src_front, src_back)
    return left, right, np.where(in_front, 12, d_back).astype(np.float64)


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    left, right, _ = _scene(seed)
    return left, right


# ----------------------------------------------------------------------------- brute force


def _lower_median(values: list[float]) -> float:
    """torch.nanmedian's median: the lower of the two middle values; NaN when empty."""
    v = sorted(x for x in values if not np.isnan(x))
    return v[(len(v) - 1) // 2] if v else np.nan


def _labels_loop(d: np.ndarray, d_right: np.ndarray) -> np.ndarray:
    """OK where SGBM gave a disparity; at a hole x, MISMATCH when some right pixel's disparity
    leads back to it (``xr + round(d_R(xr)) == x``), else OCCLUSION (Zbontar & LeCun 2016,
    eq. 9)."""
    h, w = d.shape
    labels = np.where(np.isfinite(d), OK, OCCLUSION)
    for y in range(h):
        for x in range(w):
            if labels[y, x] == OK:
                continue
            for xr in range(w):
                if np.isfinite(d_right[y, xr]) and xr + np.rint(d_right[y, xr]) == x:
                    labels[y, x] = MISMATCH
    return labels


def _fill_loop(d: np.ndarray, labels: np.ndarray, num_disp: int, border: bool) -> np.ndarray:
    """The filling of every method, one pixel at a time: with ``border``, a pixel of the left
    band (x < num_disp - 1) whose nearest OK pixel on its right outside the band has a disparity
    > x + 1 takes that disparity; an occluded pixel takes its nearest OK pixel on the left, and
    a mismatched one (or an occluded one with no OK pixel on its left) the median of the nearest
    OK pixels left, right, above and below."""
    h, w = d.shape
    ok = labels == OK
    out = d.copy()

    def nearest(y: int, x: int, dy: int, dx: int, allowed) -> float:
        y, x = y + dy, x + dx
        while 0 <= y < h and 0 <= x < w:
            if allowed(y, x):
                return float(d[y, x])
            y, x = y + dy, x + dx
        return np.nan

    for y in range(h):
        for x in range(w):
            if ok[y, x]:
                continue
            if border and x < num_disp - 1:
                r = nearest(y, x, 0, 1, lambda yy, xx: ok[yy, xx] and xx >= num_disp - 1)
                if not np.isnan(r) and r > x + 1:
                    out[y, x] = r
                    continue
            left = nearest(y, x, 0, -1, lambda yy, xx: ok[yy, xx])
            if labels[y, x] == MISMATCH or np.isnan(left):
                around = [nearest(y, x, dy, dx, lambda yy, xx: ok[yy, xx])
                          for dy, dx in ((0, -1), (0, 1), (-1, 0), (1, 0))]  # fmt: skip
                left = _lower_median(around)
            out[y, x] = left
    return out


def _median_loop(d: np.ndarray, size: int) -> np.ndarray:
    """``size`` x ``size`` NaN-skipping median, borders replicated."""
    r, (h, w) = size // 2, d.shape
    out = np.empty_like(d)
    for y in range(h):
        for x in range(w):
            win = [
                d[min(max(y + i, 0), h - 1), min(max(x + j, 0), w - 1)]
                for i in range(-r, r + 1)
                for j in range(-r, r + 1)
            ]
            out[y, x] = _lower_median(win)
    return out


def _expected(
    raw: np.ndarray, right_map: np.ndarray, post: M.PostProcessing
) -> tuple[np.ndarray, np.ndarray]:
    """(wta, post) maps of SGBM under ``post``, by the loops above."""
    filled = raw
    if post.lr_check and post.fill:
        labels = _labels_loop(raw, right_map)
        filled = _fill_loop(raw, labels, M.num_disparities(MAX_DISP), post.border)
    return filled, (_median_loop(filled, post.median) if post.median > 1 else filled)


def _sgbm_matcher(**model) -> M.StereoMatcher:
    from simlearn.training.stereo import build_matcher

    m = StereoModelConfig(method="sgbm", **{"colour": True, **model})  # as sgbm_disparity's
    spec = {**{k: getattr(m, k) for k in m.__dataclass_fields__}, "in_channels": 3,
            "num_disp": M.num_disparities(MAX_DISP), "patch": 9}  # fmt: skip
    return build_matcher(spec)


def _stereo_posts() -> dict[str, M.PostProcessing]:
    """The ``post:`` of every stereo experiment in params.yaml, as the task builds it."""
    params = load_params(ROOT / "params.yaml")
    out = {}
    for name in params["experiments"]:
        cfg = tasks.experiment_config(params, name)
        if cfg.task == "stereo":
            out[name] = tasks.get("stereo").post_processing(cfg)
    return out


# ----------------------------------------------------------------------------- the tests


def test_sgbm_leaves_holes_in_the_worked_example():
    """What the fill has to do: OpenCV leaves the left band, and the occlusion, empty."""
    left, right = _pair()
    raw = sgbm_disparity(left, right, MAX_DISP)
    assert opencv_disparities(MAX_DISP) == 16
    assert np.isnan(raw[:, :16]).all()  # the band where the full range does not fit
    assert np.isnan(raw[18:26, 44:52]).sum() >= 8  # and the occlusion beside the square
    found = np.isfinite(raw)
    truth = _scene()[2]
    assert np.mean(np.abs(raw[found] - truth[found]) <= 1) > 0.9  # and it matches elsewhere
    # the right view's map (the mirrored pair): the square sits at right-view columns 40..55
    right_map = sgbm_right_disparity(left, right, MAX_DISP)
    ys, xs = np.mgrid[:H, :W]
    right_truth = np.where((ys >= 18) & (ys < 26) & (xs >= 40) & (xs < 56), 12, truth[:, :1])
    found = np.isfinite(right_map)
    assert np.isnan(right_map[:, -16:]).all()  # its band is on the right
    assert np.mean(np.abs(right_map[found] - right_truth[found]) <= 1) > 0.9


@pytest.mark.parametrize("name", sorted(_stereo_posts()))
def test_every_stereo_experiments_post_processing_applies_to_sgbm(name):
    post = _stereo_posts()[name]
    left, right = _pair()
    raw = sgbm_disparity(left, right, MAX_DISP)
    right_map = sgbm_right_disparity(left, right, MAX_DISP)
    maps = M.predict(_sgbm_matcher(), left, right, MAX_DISP, post)
    want_wta, want_post = _expected(raw, right_map, post)
    np.testing.assert_array_equal(maps["wta"], want_wta)
    np.testing.assert_array_equal(maps["post"], want_post)
    if post.lr_check and post.fill:  # holes filled: every pixel has a disparity
        assert np.isfinite(maps["post"]).all()
        labels = maps["lr_labels"]
        beyond = labels == OUT_OF_VIEW
        assert (beyond <= ~np.isfinite(raw)).all()  # only holes are relabelled
        np.testing.assert_array_equal(labels[~beyond], _labels_loop(raw, right_map)[~beyond])
        assert {OCCLUSION, MISMATCH} <= set(np.unique(labels[~beyond]))  # both kinds occur
    else:  # no filling: OpenCV's holes stay holes
        assert np.isnan(maps["wta"]).sum() == np.isnan(raw).sum()


def test_sgbm_and_the_learned_matcher_fill_through_the_same_function(monkeypatch):
    """Both methods hand their labels to the one ``fill`` with the experiment's ``post``; the
    learned matcher's come from the left-right check, SGBM's from its holes."""
    calls = []
    real_fill = M.fill

    def spy(disparity, labels, num_disp, post):
        calls.append((labels.clone(), num_disp, post))
        return real_fill(disparity, labels, num_disp, post)

    monkeypatch.setattr(M, "fill", spy)
    left, right = _pair()
    post = M.PostProcessing()
    M.predict(_sgbm_matcher(), left, right, MAX_DISP, post)
    torch.manual_seed(0)
    learned = M.StereoMatcher("learned", PatchNet(3, colour=False), M.num_disparities(MAX_DISP))
    M.predict(learned, left, right, MAX_DISP, post)
    (sgbm_labels, n1, p1), (lr_labels, n2, p2) = calls
    raw = sgbm_disparity(left, right, MAX_DISP)
    right_map = sgbm_right_disparity(left, right, MAX_DISP)
    assert np.array_equal(sgbm_labels.numpy(), _labels_loop(raw, right_map))
    assert n1 == n2 == 16 and p1 is p2 is post
    assert set(lr_labels.unique().tolist()) <= {0, 1, 2}  # the left-right check's labels


def test_a_filled_band_matches_the_scene():
    """On the worked example the filled band takes the surface beside it (4 top, 8 bottom),
    where OpenCV gave nothing."""
    left, right, truth = _scene()
    post = M.predict(_sgbm_matcher(), left, right, MAX_DISP, M.PostProcessing())["post"]
    band = (slice(2, H - 2), slice(0, 16))  # away from the top and bottom borders
    assert np.mean(np.abs(post[band] - truth[band]) <= 1) > 0.95


def test_padding_computes_the_left_band():
    left, right = _pair()
    plain = sgbm_disparity(left, right, MAX_DISP)
    padded = sgbm_disparity(left, right, MAX_DISP, pad=True)
    assert padded.shape == plain.shape
    assert np.isnan(plain[:, :16]).all() and np.isfinite(padded[2:-2, 4:16]).mean() > 0.9
    # beyond the band both see the same columns; padding changes the aggregation a little only
    both = np.isfinite(plain) & np.isfinite(padded)
    assert np.mean(plain[both] == padded[both]) > 0.9


def test_grey_is_opencvs_grey_and_every_mode_runs():
    left, right = _pair()
    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in (left, right)]
    np.testing.assert_array_equal(
        sgbm_disparity(left, right, MAX_DISP, colour=False), sgbm_disparity(*grey, MAX_DISP)
    )
    truth = _scene()[2]
    for mode in MODES:
        d = sgbm_disparity(left, right, MAX_DISP, mode=mode, block_size=3)
        ok = np.isfinite(d)
        assert ok.mean() > 0.5 and np.mean(np.abs(d[ok] - truth[ok]) <= 1) > 0.9, mode
    with pytest.raises(ValueError, match="mode='fast': allowed sgbm, 3way, hh, hh4"):
        sgbm_disparity(left, right, MAX_DISP, mode="fast")


def test_the_exported_sgbm_model_uses_its_keys():
    """``forward`` (the exported model) runs the configured SGBM: the same map as predict's
    OpenCV call with the same keys."""
    left, right = _pair()
    matcher = _sgbm_matcher(colour=True, sgbm_mode="3way", block_size=3, sgbm_pad=True)
    stacked = np.concatenate([left, right], axis=2).transpose(2, 0, 1)[None] / 255.0
    out = matcher(torch.from_numpy(stacked).float())[0, 0].numpy()
    want = sgbm_disparity(left, right, MAX_DISP, mode="3way", block_size=3, pad=True)
    np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"sgbm_mode": "fast"},
            "experiments.s.model.sgbm_mode='fast': unknown mode; allowed: sgbm",
        ),
        ({"speckle_window": -1}, "experiments.s.model.speckle_window=-1: must be >= 0"),
        ({"speckle_range": 0}, "experiments.s.model.speckle_range=0: must be >= 1"),
        ({"disp12_max_diff": -2}, "experiments.s.model.disp12_max_diff=-2: must be >= 0, or -1"),
        ({"sgbm_pad": "yes"}, "experiments.s.model.sgbm_pad"),
    ],
)
def test_bad_sgbm_keys_name_the_key(model, message):
    with pytest.raises(ConfigError) as e:
        from_dict(Config, {"task": "stereo", "dataset": "d", "model": model}, "experiments.s")
    assert str(e.value).startswith(message)


def test_shipped_sgbm_keys_are_the_tuned_ones_and_defaults_are_opencvs():
    """The defaults keep OpenCV's behaviour (5 paths, no padding); params.yaml's stereo_sgbm sets
    the winner of benchmarks/tune_sgbm.py and the learned experiment's post-processing."""
    d = StereoModelConfig()
    assert (d.sgbm_mode, d.sgbm_pad, d.block_size, d.uniqueness) == ("sgbm", False, 5, 10)
    params = load_params(ROOT / "params.yaml")
    cfg = tasks.experiment_config(params, "stereo_sgbm")
    mccnn = tasks.experiment_config(params, "stereo_mccnn")
    assert cfg.model.method == "sgbm" and cfg.model.sgbm_pad
    post = tasks.get("stereo").post_processing
    sgbm_post, learned_post = post(cfg), post(mccnn)
    for key in ("lr_check", "fill", "border", "median"):
        assert getattr(sgbm_post, key) == getattr(learned_post, key), key


def test_a_model_saved_before_the_sgbm_keys_loads_with_opencvs_defaults():
    from simlearn.training.stereo import build_matcher

    m = StereoModelConfig(method="sgbm")
    spec = {k: getattr(m, k) for k in m.__dataclass_fields__}
    for key in ("sgbm_mode", "sgbm_pad", "speckle_window", "speckle_range"):
        del spec[key]
    spec |= {"in_channels": 3, "num_disp": 16, "patch": 9}
    options = build_matcher(spec).sgbm
    assert (options["mode"], options["pad"], options["speckle_window"]) == ("sgbm", False, 100)
