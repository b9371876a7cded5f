"""Stereo figures: left image, ground truth, prediction and error map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.patches import Patch

from simlearn.disparity import valid_ground_truth
from simlearn.plots._common import (
    ERROR_OK_COLOR,
    WRONG_FRAME_COLOR,
    PathLike,
    _frame,
    _new_figure,
    _save,
)

# --------------------------------------------------------------------------------------------
# 8. Disparity
# --------------------------------------------------------------------------------------------


def _bad_pixel_mask(
    disparity_pred: np.ndarray,
    disparity_gt: np.ndarray,
    threshold: float,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(bad, valid) masks, both (H, W) bool.

    ``valid``: ground truth known (:func:`simlearn.disparity.valid_ground_truth`, the
    metrics' own rule) and inside ``mask`` when given.
    ``bad``: valid and ``|pred - gt| > threshold``; a non-finite prediction on a valid pixel is bad.
    """
    gt = np.asarray(disparity_gt, dtype=np.float64)
    pred = np.asarray(disparity_pred, dtype=np.float64)
    valid = valid_ground_truth(gt)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    with np.errstate(invalid="ignore"):
        good = np.abs(pred - gt) <= threshold  # False where pred or gt is NaN/inf
    return valid & ~good, valid


def plot_disparity(
    left: np.ndarray,
    disparity_pred: np.ndarray,
    disparity_gt: np.ndarray,
    path: PathLike,
    *,
    title: str,
    max_disp: float,
    bad_threshold: float = 3.0,
    mask: np.ndarray | None = None,
) -> Path:
    """Left image, predicted and ground-truth disparity (one shared colour scale) and bad pixels.

    Args:
        left: (H, W) or (H, W, C) left image, uint8 or float in [0, 1].
        disparity_pred: (H, W) predicted disparity in pixels.
        disparity_gt: (H, W) ground truth in pixels; non-finite or <= 0 means unknown.
        path: where the PNG goes.
        title: figure title.
        max_disp: top of the shared disparity colour scale, in pixels.
        bad_threshold: a pixel is bad when its error exceeds this many pixels.
        mask: (H, W) bool, the evaluated pixels (e.g. a held-out block of rows); the error map
            and its figure count only these. Default: every pixel with ground truth.
    """
    img = np.asarray(left)
    pred = np.asarray(disparity_pred, dtype=np.float64)
    gt = np.asarray(disparity_gt, dtype=np.float64)
    if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"left must be (H, W) or (H, W, C) with C in 1, 3, 4; got {img.shape}")
    hw = img.shape[:2]
    if pred.shape != hw:
        raise ValueError(f"disparity_pred must have shape {hw} like left, got {pred.shape}")
    if gt.shape != hw:
        raise ValueError(f"disparity_gt must have shape {hw} like left, got {gt.shape}")
    if not max_disp > 0:
        raise ValueError(f"max_disp must be > 0 pixels, got {max_disp}")
    if not bad_threshold > 0:
        raise ValueError(f"bad_threshold must be > 0 pixels, got {bad_threshold}")
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]

    if mask is not None and np.shape(mask) != hw:
        raise ValueError(f"mask must have shape {hw} like left, got {np.shape(mask)}")
    bad, valid = _bad_pixel_mask(pred, gt, bad_threshold, mask)
    n_valid = int(valid.sum())
    bad_pct = 100.0 * bad.sum() / n_valid if n_valid else float("nan")

    h, w = hw
    # inches per panel: 5 wide for landscape images (KITTI, Middlebury); portrait ones get
    # narrower panels, but never under 3 inches, so that the panel titles still fit
    panel_w = 5.0 if w >= h else max(3.0, 4.5 * w / h)
    panel_h = (panel_w - 0.3) * h / w  # the frame and padding take a little of the width
    fig = _new_figure(2 * panel_w + 0.3, 2 * panel_h + 1.9)
    (ax_img, ax_err), (ax_pred, ax_gt) = fig.subplots(2, 2)
    for ax in (ax_img, ax_err, ax_pred, ax_gt):
        # a thin frame shows the image's extent where its border pixels are white (unknown)
        _frame(ax, "0.6", width=0.8)

    if img.ndim == 2:
        vmax = 255 if img.dtype == np.uint8 else 1.0
        ax_img.imshow(img, cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
    else:
        ax_img.imshow(img, interpolation="nearest")
    ax_img.set_title("left image", fontsize=10)

    # categorical error map: 0 unknown, 1 within threshold, 2 off by more than threshold
    codes = np.zeros(hw, dtype=np.int8)
    codes[valid] = 1
    codes[bad] = 2
    err_cmap = ListedColormap(["white", ERROR_OK_COLOR, WRONG_FRAME_COLOR])
    ax_err.imshow(codes, cmap=err_cmap, vmin=-0.5, vmax=2.5, interpolation="nearest")
    ax_err.set_title(
        f"error > {bad_threshold:g} px on {bad_pct:.1f}% of the\n"
        f"{n_valid:,} {'evaluated ' if mask is not None else ''}pixels with ground truth"
        if n_valid
        else "no pixel has ground truth",
        fontsize=10,
    )
    fig.legend(  # below the figure: under the error panel it ran into the panel below
        handles=[
            Patch(facecolor=ERROR_OK_COLOR, label=f"|error| \u2264 {bad_threshold:g} px"),
            Patch(facecolor=WRONG_FRAME_COLOR, label=f"|error| > {bad_threshold:g} px"),
            Patch(
                facecolor="white",
                edgecolor="0.5",
                label="no ground truth" if mask is None else "not evaluated / no ground truth",
            ),
        ],
        loc="outside lower center",
        ncols=3,
        fontsize=8,
        frameon=False,
    )

    cmap = colormaps["viridis"].with_extremes(bad="white")  # a copy: no global colormap changes
    norm = Normalize(vmin=0.0, vmax=float(max_disp))
    ax_pred.imshow(np.ma.masked_invalid(pred), cmap=cmap, norm=norm, interpolation="nearest")
    ax_pred.set_title("predicted disparity", fontsize=10)
    im = ax_gt.imshow(
        np.ma.masked_where(~valid_ground_truth(gt), gt),
        cmap=cmap,
        norm=norm,
        interpolation="nearest",
    )
    ax_gt.set_title("ground-truth disparity (white: unknown)", fontsize=10)
    fig.colorbar(
        im,
        ax=[ax_pred, ax_gt],
        location="bottom",
        label="disparity (px), one scale for both maps",
        shrink=0.5,
        aspect=40,
        extend="max",
    )
    fig.suptitle(title)
    return _save(fig, path)
