"""Post-processing of a disparity map, in torch (CPU and GPU): left-right consistency check with
hole filling, sub-pixel refinement, median filter. The steps follow Zbontar & LeCun 2016
(section 3.3), which follow Hirschmueller 2008.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OK, OCCLUSION, MISMATCH, OUT_OF_VIEW = 0, 1, 2, 3


def right_disparity(cost: torch.Tensor) -> torch.Tensor:
    """Winner-takes-all disparity of the right view from the left view's cost volume:
    ``d_R(y, x) = argmin_d C(d, y, x + d)`` (Hirschmueller 2008, section 3.4), with the costs
    past the right border treated as missing.

    Args:
        cost: (D, H, W) left-view costs (finite).

    Returns:
        (H, W) int64.
    """
    d, h, w = cost.shape
    # rows padded with D infinities: cp[d, y, x + d] is a strided view (no gather), and
    # x + d >= W reads the padding
    cp = torch.full((d, h, w + d), float("inf"), dtype=cost.dtype, device=cost.device)
    cp[:, :, :w] = cost
    sheared = cp.as_strided((d, h, w), (h * (w + d) + 1, w + d, 1))  # [d, y, x] = cp[d, y, x + d]
    return sheared.argmin(dim=0)


def left_right_check(
    disp_left: torch.Tensor, disp_right: torch.Tensor, tolerance: float = 1.0
) -> torch.Tensor:
    """Label each left pixel: OK when ``|d_L(x) - d_R(x - d_L(x))| <= tolerance``; else
    MISMATCH when some disparity ``d`` would be consistent (``d_R(x - d) == d``), else OCCLUSION
    (Zbontar & LeCun 2016, eq. 9).

    Args:
        disp_left, disp_right: (H, W) integer disparities of the left and right views.

    Returns:
        (H, W) int64 labels OK / OCCLUSION / MISMATCH.
    """
    h, w = disp_left.shape
    x = torch.arange(w, device=disp_left.device).view(1, w)
    xr = x - disp_left.long()
    inside = xr >= 0
    back = torch.gather(disp_right, 1, xr.clamp_min(0))
    ok = inside & ((disp_left - back).abs() <= tolerance)
    # is some disparity consistent at this pixel, d_R(x - d) == d for some d? Equivalently some
    # right pixel xr lands on x (xr + d_R(xr) == x): one scatter over the right pixels instead
    # of a search over every disparity (0.56 s -> 0.05 s on the motorcycle pair)
    target = torch.arange(w, device=disp_left.device).view(1, w) + disp_right.long()  # (H, W)
    hit = torch.zeros(h, w + 1, dtype=torch.bool, device=disp_left.device)
    hit.scatter_(1, target.clamp(0, w), torch.ones_like(target, dtype=torch.bool))
    any_consistent = hit[:, :w]
    labels = torch.full_like(disp_left, OCCLUSION, dtype=torch.int64)
    labels[any_consistent] = MISMATCH
    labels[ok] = OK
    return labels


def _nearest_valid_along_x(
    values: torch.Tensor, valid: torch.Tensor, reverse: bool
) -> torch.Tensor:
    """For each pixel, the value of the nearest valid pixel on its left (``reverse``: right) in
    its row; NaN where there is none. values, valid: (H, W)."""
    if reverse:
        return _nearest_valid_along_x(values.flip(1), valid.flip(1), False).flip(1)
    h, w = values.shape
    pos = torch.arange(w, device=values.device).view(1, w).expand(h, w)
    last = torch.where(valid, pos, torch.full_like(pos, -1)).cummax(dim=1).values  # (H, W)
    out = torch.gather(values, 1, last.clamp_min(0))
    return out.masked_fill(last < 0, float("nan"))


def fill_holes(disparity: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fill pixels that failed the left-right check (Zbontar & LeCun 2016, section 3.3.3):

    - OCCLUSION: the value of the nearest OK pixel to the left (occluded pixels belong to the
      background, which lies to their left in the left view);
    - MISMATCH: the median of the nearest OK pixels left, right, above and below.

    Holes with no OK pixel in any searched direction stay NaN.

    Args:
        disparity: (H, W) float disparities of the left view.
        labels: (H, W) from :func:`left_right_check`.
    """
    d = disparity.float()
    ok = labels == OK
    left = _nearest_valid_along_x(d, ok, reverse=False)
    right = _nearest_valid_along_x(d, ok, reverse=True)
    up = _nearest_valid_along_x(d.t(), ok.t(), reverse=False).t()
    down = _nearest_valid_along_x(d.t(), ok.t(), reverse=True).t()
    median = torch.stack([left, right, up, down]).nanmedian(dim=0).values
    occ_fill = torch.where(torch.isnan(left), median, left)  # no OK pixel on the left: median
    out = d.clone()
    out[labels == OCCLUSION] = occ_fill[labels == OCCLUSION]
    out[labels == MISMATCH] = median[labels == MISMATCH]
    return out


def out_of_view(
    disparity: torch.Tensor, labels: torch.Tensor, num_disp: int, tolerance: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-border pixels whose match lies outside the right image, and their disparity.

    A left pixel at column ``x`` can only be matched with ``d <= x``: where the true disparity is
    larger, its match left the right image, no cost can find it, and its neighbours in the band
    are no help either (they share the problem, and the left-right check passes some of them by
    chance). Outside the band (``x >= num_disp - 1``) every disparity was searched; so a pixel of
    the band is out of view when the nearest OK pixel to its right *outside the band* has a
    disparity ``d_R > x + tolerance``, and it takes ``d_R`` (the surface continues to the
    border). On the motorcycle pair (held-out rows, learned costs + SGM) this lifts the band's
    accuracy at 3 px from 0.32 to 1.00 and the whole test block's from 0.901 to 0.967.

    Args:
        disparity: (H, W) float; labels: (H, W) from :func:`left_right_check`.
        num_disp: D, the disparities searched.

    Returns:
        (mask (H, W) bool, values (H, W) float: ``d_R``, NaN where there is none).
    """
    h, w = disparity.shape
    x = torch.arange(w, device=disparity.device).view(1, w).expand(h, w)
    band = x < num_disp - 1
    anchors = (labels == OK) & ~band
    right = _nearest_valid_along_x(disparity.float(), anchors, reverse=True)
    mask = band & torch.isfinite(right) & (right > x + tolerance)
    return mask, right


def subpixel(cost: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Fit a parabola through the costs at ``d - 1, d, d + 1`` and take its minimum (Zbontar &
    LeCun 2016, eq. 10): ``d* = d - (C+ - C-) / (2 (C+ - 2C + C-))``. Pixels at the ends of the
    range, non-finite disparities, or a curve that is not convex keep ``d``.

    Args:
        cost: (D, H, W) costs; disparity: (H, W) float (rounded to the nearest integer for the
            lookup).

    Returns:
        (H, W) float32.
    """
    n = cost.shape[0]
    disp = disparity.float()
    finite = torch.isfinite(disp)
    di = torch.nan_to_num(disp, nan=0.0).round().long().clamp(0, n - 1)
    inner = finite & (di > 0) & (di < n - 1)
    c0 = torch.gather(cost, 0, di.unsqueeze(0))[0]
    cm = torch.gather(cost, 0, (di - 1).clamp_min(0).unsqueeze(0))[0]
    cp = torch.gather(cost, 0, (di + 1).clamp_max(n - 1).unsqueeze(0))[0]
    denom = cp - 2 * c0 + cm
    use = inner & (denom > 0)
    offset = torch.where(use, -(cp - cm) / (2 * denom.clamp_min(1e-12)), torch.zeros_like(c0))
    out = torch.where(use, di.float() + offset.clamp(-0.5, 0.5), disp)
    return out


def median_filter(disparity: torch.Tensor, size: int = 5) -> torch.Tensor:
    """``size`` x ``size`` median, NaN-aware (NaNs are skipped; all-NaN windows stay NaN);
    borders replicate. (H, W) -> (H, W)."""
    if size < 1 or size % 2 == 0:
        raise ValueError(f"median size={size}: must be odd and >= 1")
    if size == 1:
        return disparity.float()
    h, w = disparity.shape
    r = size // 2
    x = F.pad(disparity.float().view(1, 1, h, w), (r, r, r, r), mode="replicate")
    win = x.unfold(2, size, 1).unfold(3, size, 1).reshape(h, w, size * size)
    return win.nanmedian(dim=2).values
