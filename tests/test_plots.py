"""Tests for simlearn.plots: every figure writes a real PNG; the logic behind them is checked."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from simlearn.plots import (
    CORRECT_FRAME_COLOR,
    QUERY_FRAME_COLOR,
    WRONG_FRAME_COLOR,
    _bad_pixel_mask,
    _comparison_order,
    _frame_colors,
    _project_2d,
    _query_step_curve,
    _shared_bins,
    _subsample_indices,
    plot_disparity,
    plot_distance_histograms,
    plot_embedding_map,
    plot_experiment_comparison,
    plot_precision_recall,
    plot_retrieval_grid,
    plot_roc,
    plot_training_history,
    retrieval_montage,
)
from simlearn.plots import embedding as embedding_plots


def _read_png(path: Path, min_side: int = 150, max_side: int = 4000) -> np.ndarray:
    """The PNG as (H, W, 3) floats in [0, 1], after checking it is a sensible, non-blank figure."""
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4), img.shape
    h, w = img.shape[:2]
    assert min_side <= h <= max_side and min_side <= w <= max_side, (h, w)
    rgb = img[..., :3]
    assert rgb.std() > 0.02  # not a constant image
    return rgb


def _count_color(rgb: np.ndarray, hex_color: str, tol: float = 0.06) -> int:
    """Pixels within ``tol`` of ``hex_color`` in every channel."""
    target = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
    return int(np.all(np.abs(rgb - target) < tol, axis=-1).sum())


@pytest.fixture(autouse=True)
def _no_pyplot_figures():
    """Every plot function must leave pyplot's global figure registry untouched."""
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


def _ranked_pr(relevant: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-rank recall and precision of a ranked list, and its AP, by a plain loop."""
    n_rel = int(relevant.sum())
    recall, precision, hits, ap = [], [], 0, 0.0
    for rank, rel in enumerate(relevant, start=1):
        hits += int(rel)
        recall.append(hits / n_rel)
        precision.append(hits / rank)
        if rel:
            ap += hits / rank
    return np.array(recall), np.array(precision), ap / n_rel


# ---------------------------------------------------------------- precision-recall


def test_query_step_curve_area_is_average_precision():
    rng = np.random.default_rng(3)
    for _ in range(20):
        relevant = rng.random(40) < 0.3
        relevant[rng.integers(40)] = True
        recall, precision, ap = _ranked_pr(relevant)
        r, p = _query_step_curve(recall, precision)
        # where="pre": p[i] holds on (r[i-1], r[i]], so the area is sum diff(r) * p[1:]
        assert np.sum(np.diff(r) * p[1:]) == pytest.approx(ap)
        assert r[0] == 0.0 and r[-1] == pytest.approx(1.0)
        assert len(r) == relevant.sum() + 1


def test_query_step_curve_worked_example():
    # ranking: relevant, not, relevant -> recall 1/2, 1/2, 1; precision 1, 1/2, 2/3
    r, p = _query_step_curve(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    np.testing.assert_allclose(r, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(p, [1.0, 1.0, 2 / 3])


def test_query_step_curve_without_relevant_items_is_zero():
    r, p = _query_step_curve(np.zeros(5), np.zeros(5))
    np.testing.assert_allclose(p, 0.0)
    assert r[0] == 0.0 and r[-1] == 1.0


def test_plot_precision_recall_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    examples = []
    for k in range(3):
        relevant = rng.random(30) < 0.4
        relevant[0] = True
        recall, precision, ap = _ranked_pr(relevant)
        examples.append((recall, precision, ap, f"query {k}") if k else (recall, precision, ap))
    levels = np.linspace(0, 1, 11)
    out = tmp_path / "sub" / "pr.png"  # parent does not exist yet
    got = plot_precision_recall(levels, 1 - 0.5 * levels, examples, out, title="PR", map_value=0.71)
    assert got == out
    _read_png(out)


def test_plot_precision_recall_without_examples(tmp_path):
    levels = np.linspace(0, 1, 11)
    _read_png(
        plot_precision_recall(levels, 1 - levels, [], tmp_path / "pr.png", title="t", map_value=0.5)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mean_precision": np.full(11, 1.5)}, "mean_precision must lie in"),
        ({"mean_precision": np.ones(10)}, "same shape"),
        ({"map_value": 1.2}, "map_value"),
        ({"examples": [(np.array([0.5, 0.2]), np.array([1.0, 0.5]), 0.5)]}, "non-decreasing"),
        ({"examples": [(np.ones(2), np.ones(2))]}, r"examples\[0\]"),
    ],
)
def test_plot_precision_recall_rejects_bad_input(tmp_path, kwargs, match):
    args = {
        "mean_recall": np.linspace(0, 1, 11),
        "mean_precision": np.ones(11),
        "examples": [],
        "map_value": 0.5,
    } | kwargs
    with pytest.raises(ValueError, match=match):
        plot_precision_recall(
            args["mean_recall"], args["mean_precision"], args["examples"], tmp_path / "x.png",
            title="t", map_value=args["map_value"],
        )  # fmt: skip
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- ROC


def test_plot_roc_writes_png(tmp_path):
    fpr = np.array([0.0, 0.1, 0.3, 1.0])
    tpr = np.array([0.0, 0.6, 0.9, 1.0])
    _read_png(plot_roc(fpr, tpr, 0.87, tmp_path / "roc.png", title="ROC"))


def test_plot_roc_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="same shape"):
        plot_roc(np.zeros(3), np.zeros(4), 0.5, tmp_path / "roc.png", title="t")
    with pytest.raises(ValueError, match="roc_auc"):
        plot_roc(np.zeros(3), np.zeros(3), -0.1, tmp_path / "roc.png", title="t")


# ---------------------------------------------------------------- distance histograms


def test_shared_bins_cover_both_samples():
    pos = np.array([0.1, 0.2, 0.25, 0.4])
    neg = np.array([0.3, 0.9, 1.7])
    edges = _shared_bins(pos, neg)
    assert edges[0] == pytest.approx(0.1) and edges[-1] == pytest.approx(1.7)
    assert np.all(np.diff(edges) > 0)
    # every value falls in exactly one bin of the one shared set of edges
    assert np.histogram(pos, edges)[0].sum() == 4 and np.histogram(neg, edges)[0].sum() == 3


def test_shared_bins_capped_and_constant():
    rng = np.random.default_rng(0)
    assert len(_shared_bins(rng.random(100_000), rng.random(100_000), max_bins=50)) == 51
    np.testing.assert_allclose(_shared_bins(np.ones(3), np.ones(2)), [0.5, 1.5])


def test_plot_distance_histograms_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_distance_histograms(
        rng.normal(0.5, 0.1, 200), rng.normal(1.2, 0.2, 2000), tmp_path / "h.png", title="d"
    )
    _read_png(path)


def test_plot_distance_histograms_draws_each_density_on_the_shared_bins(tmp_path, monkeypatch):
    from matplotlib.patches import StepPatch

    from simlearn.plots import retrieval

    drawn = []  # what the figure holds when it is saved: (step data, legend labels)

    def spy(fig, path):
        (ax,) = fig.axes
        steps = [a.get_data() for a in ax.patches if isinstance(a, StepPatch)]
        drawn.append((steps, [t.get_text() for t in ax.get_legend().get_texts()]))
        return save(fig, path)

    save = retrieval._save
    monkeypatch.setattr(retrieval, "_save", spy)
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(0.5, 0.1, 300), rng.normal(1.2, 0.2, 3000)
    plot_distance_histograms(pos, neg, tmp_path / "h.png", title="d")
    ((steps, labels),) = drawn
    assert len(steps) == 4  # a filled area and an outline per class
    edges = _shared_bins(pos, neg)
    for data, values in zip(steps, (pos, pos, neg, neg), strict=True):
        np.testing.assert_allclose(data.edges, edges)
        np.testing.assert_allclose(data.values, np.histogram(values, edges, density=True)[0])
        assert np.sum(data.values * np.diff(edges)) == pytest.approx(1.0)  # a density
    assert labels == ["positive pairs (n = 300)", "negative pairs (n = 3,000)"]


def test_plot_distance_histograms_rejects_empty(tmp_path):
    with pytest.raises(ValueError, match="neg_distances"):
        plot_distance_histograms(np.ones(3), np.array([]), tmp_path / "h.png", title="t")


# ---------------------------------------------------------------- embedding map


def test_subsample_indices_deterministic_sorted_unique():
    a = _subsample_indices(10_000, 300, seed=7)
    b = _subsample_indices(10_000, 300, seed=7)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 300 and len(np.unique(a)) == 300
    assert np.all(np.diff(a) > 0) and a.min() >= 0 and a.max() < 10_000
    assert not np.array_equal(a, _subsample_indices(10_000, 300, seed=8))
    np.testing.assert_array_equal(_subsample_indices(50, 300, seed=0), np.arange(50))


def test_project_2d_keeps_2d_input():
    x = np.random.default_rng(0).normal(size=(20, 2))
    coords, labels = _project_2d(x, "tsne", seed=0)
    np.testing.assert_array_equal(coords, x)
    assert labels == ("embedding dimension 1", "embedding dimension 2")


def test_project_2d_pca_matches_first_components():
    rng = np.random.default_rng(0)
    # variance 100 on axis 0, 9 on axis 1, 0.01 elsewhere: PCA recovers axes 0 and 1
    x = rng.normal(size=(500, 4)) * np.array([10.0, 3.0, 0.1, 0.1])
    coords, (xlabel, ylabel) = _project_2d(x, "pca", seed=0)
    centred = x - x.mean(axis=0)
    assert abs(np.corrcoef(coords[:, 0], centred[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(coords[:, 1], centred[:, 1])[0, 1]) > 0.99
    assert xlabel.startswith("PC 1 (9") and ylabel.startswith("PC 2")


def test_project_2d_tsne_parameters(monkeypatch):
    import sklearn.manifold

    seen = {}

    class FakeTSNE:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def fit_transform(self, x):
            return x[:, :2]

    monkeypatch.setattr(sklearn.manifold, "TSNE", FakeTSNE)
    x = np.random.default_rng(0).normal(size=(40, 5))
    _project_2d(x, "tsne", seed=3)
    assert seen["perplexity"] == pytest.approx(10.0)  # min(30, 40 / 4)
    assert seen["init"] == "pca" and seen["learning_rate"] == "auto" and seen["random_state"] == 3
    _project_2d(np.random.default_rng(0).normal(size=(400, 5)), "tsne", seed=0)
    assert seen["perplexity"] == pytest.approx(30.0)


def test_plot_embedding_map_subsamples_deterministically(tmp_path, monkeypatch):
    received = []
    real = embedding_plots._project_2d

    def spy(x, method, seed):
        received.append(x.copy())
        return real(x, method, seed)

    monkeypatch.setattr(embedding_plots, "_project_2d", spy)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 6))
    y = rng.integers(0, 4, size=500)
    for name in ("a.png", "b.png"):
        plot_embedding_map(x, y, tmp_path / name, method="pca", max_points=120, title="m")
    assert received[0].shape == (120, 6)
    np.testing.assert_array_equal(received[0], received[1])
    np.testing.assert_array_equal(received[0], x[_subsample_indices(500, 120, 0)])


def test_plot_embedding_map_2d_not_reprojected(tmp_path, monkeypatch):
    import sklearn.decomposition
    import sklearn.manifold

    def forbidden(*args, **kwargs):
        raise AssertionError("2-D embeddings must be plotted as is")

    monkeypatch.setattr(sklearn.manifold, "TSNE", forbidden)
    monkeypatch.setattr(sklearn.decomposition, "PCA", forbidden)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 2))
    _read_png(plot_embedding_map(x, rng.integers(0, 3, 60), tmp_path / "e.png", title="2d"))


def test_plot_embedding_map_tsne_with_heldout_and_names(tmp_path):
    rng = np.random.default_rng(2)
    centres = rng.normal(scale=5, size=(5, 8))
    y = np.repeat(np.arange(5), 12)
    x = centres[y] + rng.normal(size=(60, 8))
    path = plot_embedding_map(
        x, y, tmp_path / "t.png", class_names=["a", "b", "c", "d", "e"], heldout_mask=y >= 3,
        method="tsne", title="tsne",
    )  # fmt: skip
    _read_png(path)


def test_plot_embedding_map_many_classes(tmp_path):
    rng = np.random.default_rng(3)
    y = np.arange(300) % 30
    _read_png(plot_embedding_map(rng.normal(size=(300, 2)), y, tmp_path / "m.png", title="30"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embeddings": np.zeros((10, 1))}, "embeddings must be"),
        ({"labels": np.zeros(9, dtype=int)}, "labels must be"),
        ({"labels": np.zeros(10)}, "labels must be"),
        ({"method": "umap"}, "method must be"),
        ({"max_points": 1}, "max_points"),
        ({"heldout_mask": np.zeros(10, dtype=int)}, "heldout_mask"),
        ({"class_names": ["only zero"]}, "class_names"),
    ],
)
def test_plot_embedding_map_rejects_bad_input(tmp_path, kwargs, match):
    args = {"embeddings": np.random.default_rng(0).normal(size=(10, 3)),
            "labels": np.arange(10) % 2} | kwargs  # fmt: skip
    with pytest.raises(ValueError, match=match):
        plot_embedding_map(
            args.pop("embeddings"), args.pop("labels"), tmp_path / "x.png", title="t", **args
        )


# ---------------------------------------------------------------- retrieval grid


def test_frame_colors_placed_on_the_right_cells():
    correct = np.array([[True, False, True], [False, False, True]])
    colors = _frame_colors(correct)
    assert colors == [
        [QUERY_FRAME_COLOR, CORRECT_FRAME_COLOR, WRONG_FRAME_COLOR, CORRECT_FRAME_COLOR],
        [QUERY_FRAME_COLOR, WRONG_FRAME_COLOR, WRONG_FRAME_COLOR, CORRECT_FRAME_COLOR],
    ]
    with pytest.raises(ValueError, match="correct"):
        _frame_colors(np.array([1, 0]))


def test_retrieval_montage_pixels_against_a_loop():
    # 2 queries x 2 neighbours of 4x4 grey images: every cell is the image enlarged 24x (96 px)
    # inside a 4-px frame of its colour; grey v stays (v, v, v), no contrast stretch
    rng = np.random.default_rng(1)
    q = rng.integers(0, 100, size=(2, 4, 4, 1), dtype=np.uint8)
    n = rng.integers(0, 100, size=(2, 2, 4, 4, 1), dtype=np.uint8)
    colors = _frame_colors(np.array([[True, False], [False, True]]))
    canvas, origins, cell = retrieval_montage(q, n, colors, label_px=5, top_px=7)
    assert canvas.dtype == np.uint8 and cell == 96 + 2 * 4
    rgb = {"#7f7f7f": (127, 127, 127), "#2ca02c": (44, 160, 44), "#d62728": (214, 39, 40)}
    for i in range(2):
        for j in range(3):
            x, y = origins[i, j]
            img = q[i] if j == 0 else n[i, j - 1]
            for yy in range(4):
                for xx in range(4):
                    block = canvas[y + 4 + 24 * yy : y + 4 + 24 * (yy + 1),
                                   x + 4 + 24 * xx : x + 4 + 24 * (xx + 1)]  # fmt: skip
                    assert (block == img[yy, xx, 0]).all()
            frame = canvas[y : y + cell, x : x + cell].copy()
            frame[4:-4, 4:-4] = rgb[colors[i][j]]
            assert (frame == rgb[colors[i][j]]).all()
    assert origins[0, 0, 1] == 7 and origins[1, 0, 1] == 7 + cell + 8 + 5  # top, gap, labels
    assert (canvas[:7] == 255).all()  # room for the column titles stays white


def _grid_data(q: int, k: int, channels: int):
    rng = np.random.default_rng(0)
    queries = rng.integers(0, 256, size=(q, 12, 12, channels), dtype=np.uint8)
    neighbors = rng.integers(0, 256, size=(q, k, 12, 12, channels), dtype=np.uint8)
    return queries, neighbors


def test_plot_retrieval_grid_frames_follow_correctness(tmp_path):
    # greyscale content has no pure red or green, so coloured pixels come from frames and markers
    queries, neighbors = _grid_data(2, 4, channels=1)
    all_right = _read_png(
        plot_retrieval_grid(
            queries, neighbors, np.ones((2, 4), bool), tmp_path / "r.png", title="r"
        )
    )
    all_wrong = _read_png(
        plot_retrieval_grid(
            queries, neighbors, np.zeros((2, 4), bool), tmp_path / "w.png", title="w"
        )
    )
    # the legend shows one small swatch of each colour; the frames dwarf it
    assert _count_color(all_right, CORRECT_FRAME_COLOR) > 10 * _count_color(
        all_wrong, CORRECT_FRAME_COLOR
    )
    assert _count_color(all_wrong, WRONG_FRAME_COLOR) > 10 * _count_color(
        all_right, WRONG_FRAME_COLOR
    )


def test_plot_retrieval_grid_rgb_with_labels(tmp_path):
    queries, neighbors = _grid_data(3, 5, channels=3)
    correct = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=bool)
    path = plot_retrieval_grid(
        queries, neighbors, correct, tmp_path / "g.png", title="grid",
        query_labels=["cat", "dog", "car"], neighbor_labels=[["x"] * 5] * 3,
    )  # fmt: skip
    rgb = _read_png(path)
    assert rgb.shape[1] > rgb.shape[0]  # 6 columns by 3 rows: wider than tall


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("dtype", "query_images must be uint8"),
        ("neighbors", "neighbor_images must be"),
        ("correct", "correct must have shape"),
        ("labels", "query_labels"),
    ],
)
def test_plot_retrieval_grid_rejects_bad_input(tmp_path, change, match):
    queries, neighbors = _grid_data(2, 3, channels=3)
    correct = np.ones((2, 3), bool)
    kwargs = {}
    if change == "dtype":
        queries = queries.astype(np.float32)
    elif change == "neighbors":
        neighbors = neighbors[:, :, :6]
    elif change == "correct":
        correct = np.ones((2, 4), bool)
    else:
        kwargs["query_labels"] = ["a"]
    with pytest.raises(ValueError, match=match):
        plot_retrieval_grid(queries, neighbors, correct, tmp_path / "x.png", title="t", **kwargs)


# ---------------------------------------------------------------- training history


def test_plot_training_history_two_panels(tmp_path):
    epochs = np.arange(1, 9)
    history = pd.DataFrame(
        {
            "epoch": epochs,
            "loss": 1.0 / epochs,
            "val_loss": 1.2 / epochs,
            "val_map": np.where(epochs % 2 == 0, 0.5 + 0.05 * epochs, np.nan),
        }
    )
    with_val = _read_png(plot_training_history(history, tmp_path / "h.png", title="h"))
    loss_only = _read_png(
        plot_training_history(history[["loss"]], tmp_path / "l.png", title="loss only")
    )
    assert with_val.shape[1] > 1.4 * loss_only.shape[1]  # the validation panel sits beside


def test_plot_training_history_single_epoch(tmp_path):
    history = pd.DataFrame({"loss": [0.7], "val_map": [0.4]})
    _read_png(plot_training_history(history, tmp_path / "h.png", title="one epoch"))


def test_plot_training_history_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="'loss' column"):
        plot_training_history(pd.DataFrame({"val_map": [0.1]}), tmp_path / "h.png", title="t")
    with pytest.raises(ValueError, match="at least one row"):
        plot_training_history(pd.DataFrame({"loss": []}), tmp_path / "h.png", title="t")


# ---------------------------------------------------------------- experiment comparison


def _summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "experiment": ["raw", "triplet", "supcon", "stereo", "npairs", "lda"],
            "baseline": [True, False, False, False, False, True],
            "map": [0.40, 0.85, 0.90, np.nan, np.nan, 0.60],
            "map_at_r": [0.30, 0.80, 0.88, np.nan, 0.70, 0.50],
            "precision_at_1": [0.90, 0.97, 0.99, np.nan, 0.95, 0.93],
        }
    )


def test_comparison_order_best_first_nan_last_empty_rows_dropped():
    order = _comparison_order(_summary(), ["map", "map_at_r", "precision_at_1"])
    # supcon, triplet, lda, raw by mAP; npairs has no mAP (last); stereo has no metric (dropped)
    np.testing.assert_array_equal(order, [2, 1, 5, 0, 4])


def test_plot_experiment_comparison_writes_png(tmp_path):
    rgb = _read_png(plot_experiment_comparison(_summary(), tmp_path / "c.png", title="c"))
    assert rgb.shape[0] > 300  # five groups of three bars need height


def test_plot_experiment_comparison_index_names_without_baseline(tmp_path):
    summary = _summary().set_index("experiment").drop(columns="baseline")
    _read_png(plot_experiment_comparison(summary, tmp_path / "c.png", metrics=["map"], title="c"))


def test_plot_experiment_comparison_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="accuracy_3px"):
        plot_experiment_comparison(
            _summary(), tmp_path / "c.png", metrics=["map", "accuracy_3px"], title="c"
        )
    with pytest.raises(ValueError, match="no experiment"):
        plot_experiment_comparison(_summary().iloc[[3]], tmp_path / "c.png", title="c")


# ---------------------------------------------------------------- disparity


def test_bad_pixel_mask_worked_example():
    gt = np.array([[10.0, 10.0, 0.0], [np.inf, 5.0, 5.0]])
    pred = np.array([[12.9, 13.5, 50.0], [1.0, np.nan, 8.0]])
    bad, valid = _bad_pixel_mask(pred, gt, threshold=3.0)
    np.testing.assert_array_equal(valid, [[True, True, False], [False, True, True]])
    # 2.9 px ok; 3.5 px bad; unknown gt never bad; NaN prediction bad; exactly 3 px ok
    np.testing.assert_array_equal(bad, [[False, True, False], [False, True, False]])


def test_plot_disparity_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    h, w = 30, 48
    left = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    gt = np.tile(np.linspace(2, 20, w), (h, 1))
    gt[:5] = np.inf  # unknown rows
    pred = np.where(np.isfinite(gt), gt, 0.0) + rng.normal(0, 2, size=(h, w))
    _read_png(plot_disparity(left, pred, gt, tmp_path / "d.png", title="d", max_disp=24))
    # greyscale float left image, (H, W, 1) too
    _read_png(
        plot_disparity(rng.random((h, w, 1)), pred, gt, tmp_path / "g.png", title="g", max_disp=24)
    )


@pytest.mark.parametrize(
    ("which", "match"),
    [("pred", "disparity_pred"), ("gt", "disparity_gt"), ("max", "max_disp"), ("left", "left")],
)
def test_plot_disparity_rejects_bad_input(tmp_path, which, match):
    left, pred, gt, max_disp = np.zeros((8, 10)), np.zeros((8, 10)), np.ones((8, 10)), 16.0
    if which == "pred":
        pred = np.zeros((8, 9))
    elif which == "gt":
        gt = np.zeros((10, 8))
    elif which == "max":
        max_disp = 0.0
    else:
        left = np.zeros((8, 10, 2))
    with pytest.raises(ValueError, match=match):
        plot_disparity(left, pred, gt, tmp_path / "x.png", title="t", max_disp=max_disp)
