"""SimCLR views: every random parameter drawn per sample, the whole batch transformed at once on
its device.

The view family of Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020, https://arxiv.org/abs/2002.05709, appendix A, in the order the paper
applies it:

1. random resized crop (area fraction in ``crop_scale``, default (0.08, 1); aspect ratio
   log-uniform in ``crop_ratio``, default (3/4, 4/3)) resized back to the input size, composed
   with the affine warp that the digits views use (rotation, shift, zoom; identity when off), so
   that a view costs one ``affine_grid`` + ``grid_sample`` (bilinear; outside the image zeros,
   or the edge pixel when cropping, as torchvision's resize);
2. horizontal flip with probability ``flip_p``;
3. (digits) additive brightness and contrast about the image mean, as before;
4. colour jitter with strength ``s`` (``jitter``), applied with probability ``jitter_p`` (0.8):
   brightness, contrast and saturation factors uniform in ``[max(0, 1 - 0.8 s), 1 + 0.8 s]``, hue
   shift uniform in ``[-0.2 s, 0.2 s]`` of a turn, the four in a random order drawn per image
   (as ``color_jitter_rand`` of the paper's code), each followed by a clip to [0, 1]; the
   operations are those of ``torchvision.transforms.v2.ColorJitter``;
5. greyscale with probability ``grey_p`` (0.2 in the paper);
6. Gaussian blur with probability ``blur_p`` (0.5 on ImageNet, off on CIFAR), sigma uniform in
   ``blur_sigma`` (0.1, 2.0) pixels, kernel 10% of the image side (odd, at least 3).

Every option defaults to off, and an option that is off draws no random number, so the digits
views (affine, brightness, contrast) are bit for bit what they were before the colour operations
existed.

Randomness comes from a ``torch.Generator`` the caller seeds, on the CPU, so a batch's views
depend on that seed alone: a resumed run sees the views an uninterrupted one would have seen,
whatever the device. The per-sample parameters (a few numbers per image) are drawn on the CPU and
reach the device in one packed copy from pinned memory that does not wait for the GPU; the pixel
work is batched tensor code on the device, with no host synchronisation.

Why not kornia. ``kornia.augmentation`` (0.9.0) has the same operations, but (a) it draws from
torch's global generator, so a per-batch seed means ``torch.random.fork_rng`` + ``manual_seed``
around every call (then it does repeat itself on the CPU), and it draws its parameters on the
input's device unless ``set_rng_device_and_dtype`` moves them to the CPU, so by default CPU and
GPU runs see different views; (b) its ``ColorJitter`` draws one order of the four operations
per batch, not per image; (c) it is slower. ``benchmarks/bench_augment.py`` times both on the
same 512x3x32x32 batch with the CIFAR recipe (crop, flip, jitter s = 0.5 with p = 0.8,
greyscale p = 0.2), one view, CPU, 1 torch thread, the candidates interleaved, median of 9, on a
shared 2-core machine (absolute times are noisy, the ratios less so): this module 230 ms,
kornia 385 ms with its default crop (a Python loop over images) and 425 ms with
``cropping_mode="resample"``, i.e. kornia takes 1.7x and 1.8x as long (in two earlier runs 1.5x
to 2.0x). So the views stay here, and kornia is no dependency.

The sbir task's views are simpler, one per image and domain: :func:`flip_and_shift` (both
domains) and :func:`recolour` (photos: channel order and negative), drawn from the same kind of
per-batch generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "AffineParams",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "affine_theta",
    "blur_kernel_size",
    "crop_theta",
    "flip_and_shift",
    "gaussian_blur",
    "gaussian_kernels",
    "JitterParams",
    "random_view",
    "recolour",
    "rgb_to_grey",
    "sample_affine",
    "sample_crop",
    "sample_jitter",
    "view_kwargs",
    "warp",
]

#: ITU-R BT.601 luma weights, as torchvision's ``rgb_to_grayscale``
GREY_WEIGHTS = (0.2989, 0.587, 0.114)


# ----------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class AffineParams:
    """Per-sample parameters of the forward warp (where an input pixel goes), each (B,)."""

    angle: torch.Tensor  # degrees, counter-clockwise in the displayed image
    scale: torch.Tensor  # > 0; > 1 enlarges
    tx: torch.Tensor  # shift right, as a fraction of the width
    ty: torch.Tensor  # shift down, as a fraction of the height


def sample_affine(
    n: int,
    degrees: float,
    translate: float,
    scale_range: tuple[float, float],
    generator: torch.Generator,
) -> AffineParams:
    """Uniform angle in [-degrees, degrees], shift in [-translate, translate] of each side,
    scale uniform in ``scale_range``."""

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    return AffineParams(
        angle=uniform(-degrees, degrees),
        scale=uniform(*scale_range),
        tx=uniform(-translate, translate),
        ty=uniform(-translate, translate),
    )


def affine_theta(p: AffineParams, height: int, width: int) -> torch.Tensor:
    """The (B, 2, 3) matrices ``affine_grid`` wants: for each output pixel, where to read in the
    input, in normalised coordinates (x right, y down, both in [-1, 1]). That is the inverse of
    the forward warp ``x' = s R(angle) x + t``.

    Rotation is done in pixel units, so a non-square image is not sheared.
    """
    a = torch.deg2rad(p.angle)
    cos, sin = torch.cos(a), torch.sin(a)
    # forward warp in pixel units about the centre; y points down, so a counter-clockwise turn in
    # the displayed image is [[cos, sin], [-sin, cos]] in (x, y)
    fwd = torch.stack(
        [torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2
    ) * p.scale.view(-1, 1, 1)  # (B, 2, 2)
    inv = torch.linalg.inv(fwd)  # (B, 2, 2), pixel units
    half = torch.tensor([width / 2.0, height / 2.0], dtype=inv.dtype)
    # normalised -> pixels: u = half * x_n; the inverse in normalised units is D^-1 inv D
    inv_n = inv * half.view(1, 1, 2) / half.view(1, 2, 1)
    shift = torch.stack([p.tx * 2.0, p.ty * 2.0], -1)  # (B, 2), normalised units
    offset = -(inv_n @ shift.unsqueeze(-1))  # (B, 2, 1): x_in = inv_n (x_out - shift)
    return torch.cat([inv_n, offset], -1)


def sample_crop(
    n: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    height: int,
    width: int,
    generator: torch.Generator,
    attempts: int = 10,
) -> torch.Tensor:
    """Boxes of torchvision's ``RandomResizedCrop``, one per sample, as (B, 4) float64
    ``(x0, y0, w, h)`` in fractions of the image width and height.

    Area fraction uniform in ``scale`` and aspect ratio (width / height, in pixels) log-uniform
    in ``ratio``; the first of ``attempts`` draws whose box fits in the image is kept, its
    position uniform over the places it fits; when none fits, the largest centred box whose
    ratio is within ``ratio``. Boxes are continuous (not rounded to whole pixels): ``grid_sample``
    reads between pixels anyway. Every sample consumes the same random numbers, so the draws of
    a batch depend on ``n`` and the generator alone.
    """
    area = scale[0] + (scale[1] - scale[0]) * torch.rand(
        n, attempts, generator=generator, dtype=torch.float64
    )
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    r = torch.exp(
        log_lo
        + (log_hi - log_lo) * torch.rand(n, attempts, generator=generator, dtype=torch.float64)
    )
    pos = torch.rand(n, 2, generator=generator, dtype=torch.float64)  # (B, 2) in [0, 1)
    aspect = width / height
    w = torch.sqrt(area * r / aspect)  # (B, attempts) fraction of the width: w_px = sqrt(A r)
    h = torch.sqrt(area / r * aspect)  # fraction of the height: h_px = sqrt(A / r)
    fits = (w <= 1.0) & (h <= 1.0)
    first = torch.argmax(fits.to(torch.int8), dim=1, keepdim=True)  # (B, 1) first fitting draw
    w_ok, h_ok = w.gather(1, first)[:, 0], h.gather(1, first)[:, 0]
    # fallback (torchvision's): the whole image, narrowed to the nearest allowed ratio
    if aspect < ratio[0]:
        fw, fh = 1.0, aspect / ratio[0]
    elif aspect > ratio[1]:
        fw, fh = ratio[1] / aspect, 1.0
    else:
        fw, fh = 1.0, 1.0
    any_fit = fits.any(dim=1)
    w = torch.where(any_fit, w_ok, torch.full_like(w_ok, fw))
    h = torch.where(any_fit, h_ok, torch.full_like(h_ok, fh))
    x0 = torch.where(any_fit, pos[:, 0] * (1.0 - w), (1.0 - w) / 2)
    y0 = torch.where(any_fit, pos[:, 1] * (1.0 - h), (1.0 - h) / 2)
    return torch.stack([x0, y0, w, h], 1)


def crop_theta(boxes: torch.Tensor, theta: torch.Tensor | None = None) -> torch.Tensor:
    """(B, 2, 3) sampling matrices that read the boxes (B, 4) ``(x0, y0, w, h)`` (fractions of
    the image), resized to the full output; with ``theta``, the crop is read through that warp
    first: ``x_in = crop(theta(x_out))``."""
    w, h = boxes[:, 2], boxes[:, 3]
    cx, cy = 2 * boxes[:, 0] + w - 1, 2 * boxes[:, 1] + h - 1  # box centre, normalised
    zero = torch.zeros_like(w)
    crop = torch.stack(
        [torch.stack([w, zero, cx], -1), torch.stack([zero, h, cy], -1)], -2
    )  # (B, 2, 3): x_in = diag(w, h) x_crop + c
    if theta is None:
        return crop
    lin, off = crop[:, :, :2], crop[:, :, 2:]
    return torch.cat([lin @ theta[:, :, :2], lin @ theta[:, :, 2:] + off], -1)


def warp(images: torch.Tensor, theta: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Apply (B, 2, 3) ``theta`` to float images (B, C, H, W); bilinear; outside the image:
    zeros, or the nearest edge pixel with ``padding="border"``."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode=padding, align_corners=False)


# ----------------------------------------------------------------------------- colour


def _per_sample(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.to(x).view(-1, 1, 1, 1)


def rgb_to_grey(x: torch.Tensor) -> torch.Tensor:
    """Luma of RGB images (B, 3, H, W) -> (B, 1, H, W): 0.2989 R + 0.587 G + 0.114 B."""
    b, _, h, w = x.shape
    weights = torch.tensor(GREY_WEIGHTS, dtype=x.dtype, device=x.device).view(1, 1, 3)
    return (weights @ x.reshape(b, 3, h * w)).view(b, 1, h, w)  # one batched product


def _blend(x: torch.Tensor, ref: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clip(f x + (1 - f) ref, 0, 1)``, as ``torch.lerp``, which is exact at both ends: f = 1
    gives ``x``, f = 0 gives ``ref``. One fused kernel instead of four broadcasting ones."""
    return torch.lerp(ref.expand_as(x), x, factor.expand_as(x)).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``clip(f x)`` per image; ``factor`` (B,), 1 = identity (torchvision's brightness)."""
    return _blend(x, torch.zeros_like(x), _per_sample(factor, x))


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the mean grey level of each image (torchvision's contrast); 1 = identity."""
    mean = rgb_to_grey(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, _per_sample(factor, x))


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each pixel's grey level (torchvision's saturation); 1 = identity, 0 = grey."""
    return _blend(x, rgb_to_grey(x), _per_sample(factor, x))


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Turn the hue of RGB images (B, 3, H, W) in [0, 1] by ``shift`` (B,) turns, in HSV space
    (torchvision's ``adjust_hue``, to 1e-6); value and saturation are kept, a whole turn is the
    identity.

    With ``v = max(r, g, b)`` and ``d = v - min(r, g, b)``, the hue in sixths of a turn is
    ``h6 = (g - b) / d`` when r is the largest, ``2 + (b - r) / d`` when g is, ``4 + (r - g) / d``
    otherwise; after the turn, channel c (n_c = 5, 3, 1 for r, g, b) is
    ``v - d clip(min(q, 4 - q), 0, 1)`` with ``q = (n_c + h6 + 6 shift) mod 6``, the branch-free
    form of HSV -> RGB (``v s = d``).
    """
    r, g, b = x.unbind(1)  # each (B, H, W)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    delta = maxc - minc
    is_r, is_g = maxc == r, maxc == g
    num = torch.where(is_r, g - b, torch.where(is_g, b - r, r - g))
    sector = torch.where(is_r, 0.0, torch.where(is_g, 2.0, 4.0)).to(x.dtype)
    # grey pixels (d = 0) have num = 0: any hue will do, as d * k = 0 below
    h6 = (
        sector
        + num / delta.clamp_min(torch.finfo(x.dtype).tiny)
        + 6.0 * _per_sample(shift, x)[:, 0]
    )
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    q = torch.remainder(n + h6.unsqueeze(1), 6.0)  # (B, 3, H, W)
    k = torch.minimum(q, 4.0 - q).clamp_(0.0, 1.0)
    return maxc.unsqueeze(1) - delta.unsqueeze(1) * k


# ----------------------------------------------------------------------------- blur


def blur_kernel_size(height: int, width: int) -> int:
    """10% of the shorter side, odd, at least 3 (the paper's 23 for 224 pixels; 3 for 32)."""
    return max(3, int(round(0.1 * min(height, width))) // 2 * 2 + 1)


def gaussian_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Normalised 1-D Gaussian kernels (B, size) of standard deviation ``sigma`` (B,) pixels;
    sigma = 0 gives the unit impulse (no blur)."""
    t = torch.arange(size, dtype=sigma.dtype) - size // 2  # (size,)
    s = sigma.view(-1, 1)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    k = torch.exp(-0.5 * (t / safe) ** 2)
    k = torch.where(s > 0, k, (t == 0).to(k).expand_as(k))
    return k / k.sum(1, keepdim=True)


def gaussian_blur(x: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Blur each image of (B, C, H, W) with its own separable kernel (B, K), reflect padding
    (as torchvision's ``gaussian_blur``); one grouped convolution per axis for the batch."""
    b, c, h, w = x.shape
    size = kernels.shape[1]
    pad = size // 2
    weight = kernels.to(x).repeat_interleave(c, dim=0)  # (B*C, K)
    y = x.reshape(1, b * c, h, w)
    y = F.conv2d(
        F.pad(y, (pad, pad, 0, 0), mode="reflect"), weight.view(-1, 1, 1, size), groups=b * c
    )
    y = F.conv2d(
        F.pad(y, (0, 0, pad, pad), mode="reflect"), weight.view(-1, 1, size, 1), groups=b * c
    )
    return y.view(b, c, h, w)


# ----------------------------------------------------------------------------- the view


def _to_device(t: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A CPU tensor onto ``device`` as ``dtype``; to a GPU from pinned memory, without waiting
    for the work already queued there (a plain copy from pageable memory would)."""
    t = t.to(dtype)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


@dataclass(frozen=True)
class JitterParams:
    """Per-sample colour jitter, on the CPU. The four operations run in four slots, in each
    image's own order; brightness, contrast and saturation are one blend with a reference
    (0, the image's mean grey, the pixel's grey), so a slot is one blend for the whole batch."""

    factor: torch.Tensor  # (B, 4) blend factor of each slot; 1 (identity) in the hue slot
    contrast: torch.Tensor  # (B, 4) 1 where the slot blends with the mean grey, else 0
    saturation: torch.Tensor  # (B, 4) 1 where the slot blends with the pixel's grey, else 0
    hue: torch.Tensor  # (B,) hue turn (0 where jitter is not applied)
    hue_slot: torch.Tensor  # (B,) int64, the slot of the hue turn; 4 where jitter is not applied


def sample_jitter(n: int, s: float, p: float, generator: torch.Generator) -> JitterParams:
    """Apply with probability ``p``; factors uniform in ``[max(0, 1 - 0.8 s), 1 + 0.8 s]``,
    hue uniform in ``[-0.2 s, 0.2 s]``; the order is the argsort of 4 uniform keys (a uniform
    permutation) per image."""
    apply = torch.rand(n, generator=generator) < p  # (B,)
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)  # brightness, contrast, sat, hue
    order = torch.argsort(torch.rand(n, 4, generator=generator), dim=1)  # (B, 4): op of slot k
    lo = max(0.0, 1.0 - 0.8 * s)
    factors = torch.cat(
        [lo + (1.0 + 0.8 * s - lo) * u[:, :3], torch.ones(n, 1, dtype=u.dtype)], 1
    )  # (B, 4)
    on = apply.view(-1, 1)
    factor = torch.where(on, factors.gather(1, order), 1.0)  # (B, 4)
    return JitterParams(
        factor=factor,
        contrast=(on & (order == 1)).to(factor.dtype),
        saturation=(on & (order == 2)).to(factor.dtype),
        hue=torch.where(apply, (2 * u[:, 3] - 1) * 0.2 * s, 0.0),
        hue_slot=torch.where(apply, torch.argmax((order == 3).to(torch.int8), 1), 4),
    )


def random_view(
    images: torch.Tensor,
    generator: torch.Generator,
    *,
    degrees: float = 15.0,
    translate: float = 0.15,
    scale_range: tuple[float, float] = (0.85, 1.15),
    flip_p: float = 0.0,
    brightness: float = 0.0,
    contrast: float = 0.0,
    crop_scale: tuple[float, float] | None = None,
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: float = 0.0,
    jitter_p: float = 0.8,
    grey_p: float = 0.0,
    blur_p: float = 0.0,
    blur_sigma: tuple[float, float] = (0.1, 2.0),
) -> torch.Tensor:
    """One random view of each image in ``images`` (B, C, H, W), float in [0, 1].

    - affine: see :func:`sample_affine` (identity with ``degrees=0, translate=0,
      scale_range=(1, 1)``);
    - random resized crop when ``crop_scale`` is given (see :func:`sample_crop`), read through
      the affine warp;
    - horizontal flip with probability ``flip_p`` (not for digits, whose classes it changes);
    - brightness: add a uniform shift in [-b, b]; contrast: scale the deviation from the image's
      mean by a uniform factor in [1 - c, 1 + c]; the result is clipped to [0, 1];
    - colour jitter of strength ``jitter`` (s) with probability ``jitter_p``, greyscale with
      probability ``grey_p``, Gaussian blur with probability ``blur_p``: see the module
      docstring. The colour operations need RGB images (C = 3).
    """
    b, c, h, w = images.shape
    if (jitter > 0 or grey_p > 0) and c != 3:
        raise ValueError(f"colour jitter and greyscale need RGB images (C = 3), got C = {c}")
    # draws, always in this order; an option that is off draws nothing
    p = sample_affine(b, degrees, translate, scale_range, generator)
    flip = torch.rand(b, generator=generator) < flip_p if flip_p > 0 else None
    shift = factor = None
    if brightness > 0 or contrast > 0:
        shift = (2 * torch.rand(b, generator=generator) - 1) * brightness
        factor = 1 + (2 * torch.rand(b, generator=generator) - 1) * contrast
    boxes = sample_crop(b, crop_scale, crop_ratio, h, w, generator) if crop_scale else None
    jit = sample_jitter(b, jitter, jitter_p, generator) if jitter > 0 else None
    grey = torch.rand(b, generator=generator) < grey_p if grey_p > 0 else None
    kernels = None
    if blur_p > 0:
        blurred = torch.rand(b, generator=generator) < blur_p
        u = torch.rand(b, generator=generator, dtype=torch.float64)
        sigma = torch.where(blurred, blur_sigma[0] + (blur_sigma[1] - blur_sigma[0]) * u, 0.0)
        kernels = gaussian_kernels(sigma, blur_kernel_size(h, w))

    # the geometry is one sampling matrix per image; a flip mirrors the output's x
    theta = affine_theta(p, h, w)  # (B, 2, 3)
    if boxes is not None:
        theta = crop_theta(boxes, theta)
    if flip is not None:
        theta[:, :, 0] *= torch.where(flip, -1.0, 1.0).to(theta.dtype).view(-1, 1)
    # every per-sample number reaches the device in one copy, in the images' dtype; the colour
    # jitter works on the images grouped by the slot of their hue turn (see _jitter)
    cols = [theta.flatten(1)]
    for v in (shift, factor, grey):
        if v is not None:
            cols.append(v.view(-1, 1))
    if jit is not None:
        by_hue = torch.argsort(jit.hue_slot, stable=True)  # (B,)
        cols += [t[by_hue] for t in (jit.factor, jit.contrast, jit.saturation)]
        cols.append(jit.hue[by_hue].view(-1, 1))
    if kernels is not None:
        cols.append(kernels)
    cols = [v.to(images.dtype) for v in cols]
    dev = iter(
        _to_device(torch.cat(cols, 1), images.device, images.dtype).split(
            [v.shape[1] for v in cols], 1
        )
    )

    with torch.autocast(images.device.type, enabled=False):  # views in the images' precision
        # a crop reads up to half a pixel past the image edge: the edge pixel, as torchvision's
        # resize does (zeros would darken the border of every crop that touches it)
        out = warp(images, next(dev).view(b, 2, 3), "border" if boxes is not None else "zeros")
        if shift is not None:
            shift_d, factor_d = next(dev).view(-1, 1, 1, 1), next(dev).view(-1, 1, 1, 1)
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = ((out - mean) * factor_d + mean + shift_d).clamp(0.0, 1.0)
        grey_d = next(dev) if grey is not None else None
        if jit is not None:
            slot = [next(dev) for _ in range(4)]
            out = _jitter(out, *slot, jit.hue_slot, by_hue)
        if grey_d is not None:
            out = torch.where(grey_d.view(-1, 1, 1, 1) > 0.5, rgb_to_grey(out).expand_as(out), out)
        if kernels is not None:
            out = gaussian_blur(out, next(dev))
    return out


def _jitter(
    x: torch.Tensor,
    factor: torch.Tensor,
    contrast: torch.Tensor,
    saturation: torch.Tensor,
    hue: torch.Tensor,
    hue_slot: torch.Tensor,
    by_hue: torch.Tensor,
) -> torch.Tensor:
    """Colour jitter of ``x`` (B, 3, H, W) in a per-image order. On the device, already in the
    order ``by_hue``: ``factor``, ``contrast``, ``saturation`` (B, 4) and ``hue`` (B, 1), as in
    :class:`JitterParams`. On the CPU: ``hue_slot`` (B,) and ``by_hue`` (B,), the order that
    groups the images by the slot of their hue turn. Each slot is one blend over the whole
    batch (factor 1 = identity); the hue turn, the costly one, runs once per image, on the
    contiguous group whose turn falls in that slot."""
    bounds = [0, *torch.bincount(hue_slot, minlength=5).cumsum(0).tolist()]  # CPU: no sync
    x = x.index_select(0, _to_device(by_hue, x.device, torch.long))
    for k in range(4):
        grey = rgb_to_grey(x)  # (B, 1, H, W)
        ref = grey * saturation[:, k].view(-1, 1, 1, 1) + grey.mean(
            dim=(2, 3), keepdim=True
        ) * contrast[:, k].view(-1, 1, 1, 1)  # brightness: 0
        x = _blend(x, ref, factor[:, k].view(-1, 1, 1, 1))
        lo, hi = bounds[k], bounds[k + 1]
        if hi > lo:  # x is this function's own tensor: write the group in place
            x[lo:hi] = adjust_hue(x[lo:hi], hue[lo:hi, 0])
    inverse = torch.empty_like(by_hue)
    inverse[by_hue] = torch.arange(len(by_hue))
    return x.index_select(0, _to_device(inverse, x.device, torch.long))


def view_kwargs(augment: Any) -> dict[str, Any]:
    """The keyword arguments of :func:`random_view` for an ``AugmentConfig`` (the ``augment``
    section of a simclr experiment)."""
    a = augment
    return {
        "degrees": a.degrees,
        "translate": a.translate,
        "scale_range": (a.scale_min, a.scale_max),
        "flip_p": a.flip_p,
        "brightness": a.brightness,
        "contrast": a.contrast,
        "crop_scale": (a.crop_scale_min, a.crop_scale_max) if a.crop else None,
        "crop_ratio": (a.crop_ratio_min, a.crop_ratio_max),
        "jitter": a.jitter,
        "jitter_p": a.jitter_p,
        "grey_p": a.grey_p,
        "blur_p": a.blur_p,
        "blur_sigma": (a.blur_sigma_min, a.blur_sigma_max),
    }


# ----------------------------------------------------------------------------- sbir views


def flip_and_shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and shift (replicate-padded, up to 1/16 of the side) per image.

    ``x`` (B, C, H, W) on the CPU; draws, from ``g``: B flips, then B row shifts, then B
    column shifts, each shift uniform in ``[-pad, pad]`` with ``pad = max(1, H // 16)``.
    """
    b, _, h, w = x.shape  # (B, C, H, W)
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = max(1, h // 16)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g)
    rows = (torch.arange(h)[None, :] + dy[:, None])[:, None, :, None]  # (B, 1, H, 1)
    cols = (torch.arange(w)[None, :] + dx[:, None])[:, None, None, :]  # (B, 1, 1, W)
    bidx = torch.arange(b)[:, None, None, None]
    cidx = torch.arange(x.shape[1])[None, :, None, None]
    return padded[bidx, cidx, rows, cols]


def recolour(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Photos only: a random permutation of the RGB channels per image and, for half of the
    images, the negative (1 - x). The synthetic photos draw every colour at random, so colour
    says nothing about the category; this makes the photo encoder see it.

    ``x`` (B, 3, H, W) in [0, 1] on the CPU; draws, from ``g``: (B, 3) uniforms whose argsort is
    each permutation, then B coins for the negative.
    """
    b = x.shape[0]  # (B, 3, H, W)
    perm = torch.argsort(torch.rand(b, 3, generator=g), dim=1)  # (B, 3)
    x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    neg = torch.rand(b, generator=g) < 0.5
    return torch.where(neg[:, None, None, None], 1.0 - x, x)
