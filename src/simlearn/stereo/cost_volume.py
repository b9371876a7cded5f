"""Cost volumes from per-pixel embeddings, winner-takes-all, and raw NCC as an embedding.

The similarity volume of a rectified pair is ``S[d, y, x] = <f(L)[:, y, x], f(R)[:, y, x - d]>``
for ``d = 0 .. D - 1``; the matching cost is ``C = -S`` (Zbontar & LeCun 2016, eq. 2). Where
``x - d < 0`` the right pixel does not exist: those entries hold ``NaN`` in ``S``.

:func:`similarity_volume` builds S with batched matrix products over tiles of ``T`` columns:
tile ``[x0, x0 + T)`` of the left map against columns ``[x0 - D + 1, x0 + T)`` of the right map is
one (T, C) x (C, T + D - 1) product per row and tile, and a gather keeps the band ``x - d``. It
never loops over pixels or disparities; it loops over blocks of tiles only to bound memory
(``max_elements``). Tiles and windows are strided views of channels-last copies of the maps, so
the batched product reads them in place: on the motorcycle pair (64 x 500 x 741, 68
disparities, 1 busy CPU thread) the first version, which padded channels-first maps and let
``matmul`` copy the windows, spent 3.1 of its 6.4 s copying.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def similarity_volume(
    left: torch.Tensor,
    right: torch.Tensor,
    num_disp: int,
    *,
    tile: int | None = None,
    max_elements: int = 2**26,
) -> torch.Tensor:
    """``S[d, y, x] = <left[:, y, x], right[:, y, x - d]>`` for ``d < num_disp``; NaN where
    ``x - d < 0``.

    Args:
        left, right: embedding maps (C, H, W), same shape.
        num_disp: D, the number of disparities (0 .. D - 1).
        tile: columns per tile (default ``max(D, 32)``: the band costs at most twice the work).
        max_elements: rows are processed in blocks whose tile products hold at most this many
            floats (2**26: 256 MiB in float32).

    Returns:
        (D, H, W) float32.
    """
    if left.shape != right.shape or left.dim() != 3:
        raise ValueError(
            f"left {tuple(left.shape)} and right {tuple(right.shape)}: want equal (C, H, W)"
        )
    if num_disp < 1:
        raise ValueError(f"num_disp={num_disp}: must be >= 1")
    c, h, w = left.shape
    d = num_disp
    t = tile or max(d, 32)
    # padded width: whole tiles, and at least D - 1 zero columns after the image, so that the
    # right windows of row y may run into row y + 1's leading zeros (see below)
    n_tiles = math.ceil((w + d - 1) / t)
    wp = n_tiles * t
    band = t + d - 1
    dev, dt = left.device, left.dtype
    # (H, Wp, C): channels last, so that tiles and windows are views (channels-last embedding maps
    # from the network make the permute free)
    lp = torch.empty(h, wp, c, device=dev, dtype=dt)  # zero only the padding: 0.4 s saved
    lp[:, :w] = left.permute(1, 2, 0)
    lp[:, w:] = 0
    lt = lp.view(h * n_tiles, t, c)  # (H * nT, T, C) left tiles, no copy
    # right, flat: row y occupies [y * Wp, (y + 1) * Wp) after D - 1 leading zeros, so the window
    # of tile k in row y, columns x0 - (D - 1) .. x0 + T - 1, starts at y * Wp + k * T; the last
    # window of a row ends inside the next row's zero padding, which is what it should read
    rflat = torch.empty((d - 1) + h * wp, c, device=dev, dtype=dt)
    rflat[: d - 1] = 0
    rflat[d - 1 :].view(h, wp, c)[:, :w] = right.permute(1, 2, 0)
    rflat[d - 1 :].view(h, wp, c)[:, w:] = 0
    rw = rflat.as_strided((h * n_tiles, c, band), (t * c, 1, c))  # (H * nT, C, band), no copy
    # S[y, x0 + i, d] = prod[i, j] with j = i + (D - 1) - d
    i = torch.arange(t, device=dev).view(t, 1)
    dd = torch.arange(d, device=dev).view(1, d)
    j = (i + (d - 1) - dd).expand(t, d)  # (T, D)
    out = torch.empty(h * n_tiles, t, d, dtype=torch.float32, device=dev)
    rows = max(1, max_elements // max(1, t * band))  # tiles per block: bounded memory
    for k0 in range(0, h * n_tiles, rows):  # blocks of tiles, never single pixels or disparities
        k1 = min(h * n_tiles, k0 + rows)
        prod = torch.bmm(lt[k0:k1], rw[k0:k1])  # (k, T, band)
        torch.gather(prod.float(), 2, j.expand(k1 - k0, t, d), out=out[k0:k1])
    vol = out.view(h, wp, d)[:, :w].permute(2, 0, 1)  # (D, H, W), a view of (H, W, D) memory
    x = torch.arange(w, device=dev).view(1, 1, w)
    return vol.masked_fill_(x < torch.arange(d, device=dev).view(d, 1, 1), float("nan"))


def similarity_to_cost(sim: torch.Tensor) -> torch.Tensor:
    """Matching cost ``C = -S``; missing entries (NaN) get the worst cost of the volume, so that
    aggregation can pass over them and winner-takes-all never picks them while another exists."""
    cost = -sim
    worst = torch.nan_to_num(cost, nan=-math.inf).amax()
    return torch.nan_to_num(cost, nan=float(worst) if torch.isfinite(worst) else 1.0)


def winner_takes_all(cost: torch.Tensor) -> torch.Tensor:
    """(D, H, W) cost -> (H, W) int64 disparity of the lowest cost (the first on ties)."""
    return cost.argmin(dim=0)


def ncc_embedding(images: torch.Tensor, patch: int = 9, eps: float = 1e-6) -> torch.Tensor:
    """Raw normalised cross-correlation as an embedding: each pixel's ``patch`` x ``patch``
    neighbourhood (all channels, zero padding), minus its mean, divided by its norm.

    The dot product of two such vectors is the NCC of the two patches (Hirschmueller &
    Scharstein 2009, "Evaluation of Stereo Matching Costs on Images with Radiometric
    Differences"), so :func:`similarity_volume` gives the NCC volume unchanged.

    Args:
        images: (B, C, H, W) float.

    Returns:
        (B, C * patch**2, H, W) float32, unit norm per pixel (zero where a patch is constant).
    """
    if patch < 1 or patch % 2 == 0:
        raise ValueError(f"patch={patch}: must be odd and >= 1")
    b, c, h, w = images.shape
    cols = F.unfold(images.float(), patch, padding=patch // 2)  # (B, C*p*p, H*W)
    cols = cols - cols.mean(dim=1, keepdim=True)
    cols = cols / cols.norm(dim=1, keepdim=True).clamp_min(eps)
    return cols.view(b, c * patch * patch, h, w)
