"""SimCLR views: random affine warps, flips and brightness/contrast, drawn per sample, applied to a
whole batch at once on its device.

torchvision's ``v2.RandomAffine`` draws one set of parameters per call, so a batch would get one
warp for every image; looping over images costs a Python call each. Here the parameters of every
sample are drawn at once, turned into (B, 2, 3) affine matrices and applied with one
``affine_grid`` + ``grid_sample`` (bilinear, zero fill outside the image).

Randomness comes from a ``torch.Generator`` the caller seeds, on the CPU, so a batch's views
depend on that seed alone: a resumed run sees the views an uninterrupted one would have seen,
whatever the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


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


def warp(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Apply (B, 2, 3) ``theta`` to float images (B, C, H, W); bilinear, zeros outside."""
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


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
) -> torch.Tensor:
    """One random view of each image in ``images`` (B, C, H, W), float in [0, 1].

    - affine: see :func:`sample_affine`;
    - horizontal flip with probability ``flip_p`` (not for digits, whose classes it changes);
    - brightness: add a uniform shift in [-b, b]; contrast: scale the deviation from the image's
      mean by a uniform factor in [1 - c, 1 + c]; the result is clipped to [0, 1].
    """
    b, _, h, w = images.shape
    p = sample_affine(b, degrees, translate, scale_range, generator)
    out = warp(images, affine_theta(p, h, w))
    if flip_p > 0:
        flip = (torch.rand(b, generator=generator) < flip_p).to(images.device)
        out = torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)
    if brightness > 0 or contrast > 0:
        shift = (2 * torch.rand(b, generator=generator) - 1) * brightness
        factor = 1 + (2 * torch.rand(b, generator=generator) - 1) * contrast
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        factor, shift = factor.to(out).view(-1, 1, 1, 1), shift.to(out).view(-1, 1, 1, 1)
        out = (out - mean) * factor + mean + shift
        out = out.clamp(0.0, 1.0)
    return out
