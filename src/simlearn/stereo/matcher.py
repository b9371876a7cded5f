"""From a rectified pair to disparity maps: embed both views, build the cost volume, take the
winner, and post-process (each step switchable).

Three matchers share this path:

- ``learned``: the MC-CNN fast patch network (:class:`~simlearn.models.patchnet.PatchNet`);
- ``ncc``: raw 9x9 normalised cross-correlation, the same cost volume and post-processing with
  a fixed embedding, so the difference between the two is what learning adds to the costs;
- ``sgbm``: OpenCV's StereoSGBM, which computes its own costs and aggregation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from simlearn.models.patchnet import PatchNet, to_grey
from simlearn.stereo.cost_volume import (
    ncc_embedding,
    similarity_to_cost,
    similarity_volume,
    winner_takes_all,
)
from simlearn.stereo.refine import (
    OUT_OF_VIEW,
    fill_holes,
    left_right_check,
    median_filter,
    out_of_view,
    right_disparity,
    subpixel,
)
from simlearn.stereo.sgm import sgm

METHODS = ("learned", "ncc", "sgbm")


@dataclass(frozen=True)
class PostProcessing:
    """Which post-processing steps run, in this order, after the cost volume."""

    sgm: bool = True  # semi-global matching over the costs (Hirschmueller 2008)
    paths: int = 4  # SGM path directions: 4 or 8
    p1: float = 0.05  # SGM penalty of a 1 px disparity change, in cost units (cost = -cosine)
    p2: float = 0.5  # SGM penalty of a larger change
    lr_check: bool = True  # left-right consistency check, holes filled (Zbontar & LeCun 3.3.3)
    fill: bool = True  # fill the holes the check leaves; false leaves them NaN (density < 1)
    border: bool = True  # fill: left-border pixels whose match left the right image (out_of_view)
    subpixel: bool = True  # parabola through the costs around the winner
    median: int = 5  # median filter size; 1 = off

    @property
    def changes_map(self) -> bool:
        """Whether any step runs that can make the post-processed map differ from WTA."""
        return self.sgm or self.lr_check or self.subpixel or self.median > 1


def num_disparities(max_disp: float) -> int:
    """Disparities searched, 0 .. floor(max_disp)."""
    return int(math.floor(max_disp)) + 1


def image_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (H, W, C) -> float (1, C, H, W) in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return x.permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


class StereoMatcher(nn.Module):
    """The exported model of the stereo task.

    ``forward`` takes a pair stacked along channels, (B, 2C, H, W) floats in [0, 1], and returns
    both views' embedding maps (sgbm: its disparity); :meth:`costs` gives the cost volume that
    :func:`predict` post-processes.

    Args:
        method: learned | ncc | sgbm.
        net: the patch network (learned only).
        num_disp: disparities searched by ``forward``.
        colour: ncc: correlate colour patches instead of grey ones.
        sgbm: keyword arguments of :func:`~simlearn.stereo.sgbm.sgbm_disparity` (sgbm only).
        dtype: the network's inference precision; bfloat16 halves the CPU time where the CPU
            has bf16 instructions (the cost volume is always float32).
    """

    def __init__(
        self,
        method: str,
        net: PatchNet | None = None,
        num_disp: int = 64,
        colour: bool = False,
        patch: int = 9,
        sgbm: dict | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method={method!r}: allowed {', '.join(METHODS)}")
        if (method == "learned") != (net is not None):
            raise ValueError("a patch network is needed by, and only by, method 'learned'")
        self.method = method
        self.net = net
        self.num_disp = num_disp
        self.colour = colour
        self.patch = patch
        self.sgbm = dict(sgbm or {})
        self.dtype = dtype

    @torch.no_grad()
    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """(1, C, H, W) in [0, 1] -> (F, H, W) float32, unit norm per pixel."""
        if self.method == "learned":
            assert self.net is not None
            net = self.net.eval().to(memory_format=torch.channels_last)
            x = image.contiguous(memory_format=torch.channels_last)
            low = self.dtype != torch.float32
            with torch.autocast(x.device.type, dtype=self.dtype, enabled=low):
                out = net(x)
            return out[0].float()
        if self.method == "ncc":
            x = image if self.colour else to_grey(image)
            return ncc_embedding(x, self.patch)[0]
        raise ValueError("sgbm computes its own costs; it has no embedding")

    @torch.no_grad()
    def costs(self, left: torch.Tensor, right: torch.Tensor, num_disp: int) -> torch.Tensor:
        """Images (1, C, H, W) -> cost volume (D, H, W), ``C = -similarity``, missing entries
        (``x - d < 0``) at the worst cost."""
        fl, fr = self.embed(left), self.embed(right)
        return similarity_to_cost(similarity_volume(fl, fr, num_disp))

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        """A pair stacked along channels (B, 2C, H, W) in [0, 1] ->

        - learned, ncc: both views' embedding maps, stacked: (B, 2F, H, W);
        - sgbm: OpenCV's disparity (B, 1, H, W), NaN where it gives none.
        """
        c = pair.shape[1] // 2
        left, right = pair[:, :c], pair[:, c:]
        if self.method == "sgbm":
            from simlearn.stereo.sgbm import sgbm_disparity

            to_u8 = lambda t: (t.permute(1, 2, 0) * 255).round().byte().cpu().numpy()  # noqa: E731
            maps = [
                torch.from_numpy(
                    sgbm_disparity(
                        to_u8(lv), to_u8(rv), self.num_disp - 1, colour=self.colour, **self.sgbm
                    )
                )
                for lv, rv in zip(left, right, strict=True)
            ]
            return torch.stack(maps).unsqueeze(1)
        if self.method == "learned":
            assert self.net is not None
            return torch.cat([self.net(left), self.net(right)], dim=1)
        grey = (lambda x: x) if self.colour else to_grey
        return torch.cat(
            [ncc_embedding(grey(left), self.patch), ncc_embedding(grey(right), self.patch)], dim=1
        )


def fill(
    disparity: torch.Tensor, labels: torch.Tensor, num_disp: int, post: PostProcessing
) -> tuple[torch.Tensor, torch.Tensor]:
    """The holes of ``labels`` (anything not OK) filled as ``post`` says, the one hole filling
    of every method: with ``post.fill``, left-border pixels whose match left the right image take
    the disparity beside the band (``post.border``, :func:`~simlearn.stereo.refine.out_of_view`,
    labelled OUT_OF_VIEW) and the others :func:`~simlearn.stereo.refine.fill_holes`; without
    it, the holes become NaN.

    Args:
        disparity: (H, W) float; labels: (H, W) int64 from the left-right check (or
            :func:`simlearn.stereo.sgbm.hole_labels`); num_disp: the disparities searched.

    Returns:
        (the filled map (H, W) float32, the labels with OUT_OF_VIEW set).
    """
    out = disparity.float()
    if not post.fill:
        return out.masked_fill(labels != 0, float("nan")), labels
    beyond = torch.zeros_like(labels, dtype=torch.bool)
    if post.border:
        beyond, values = out_of_view(out, labels, num_disp)
        labels = labels.clone()
        labels[beyond] = OUT_OF_VIEW
    out = fill_holes(out, labels)
    if post.border:
        out[beyond] = values[beyond]
    return out, labels


@torch.no_grad()
def predict(
    matcher: StereoMatcher,
    left: np.ndarray,
    right: np.ndarray,
    max_disp: float,
    post: PostProcessing,
    device: torch.device | str = "cpu",
) -> dict[str, np.ndarray]:
    """Disparity maps of the left view, float32 (H, W):

    - ``wta``: winner-takes-all on the raw costs (for sgbm, which has no raw costs: OpenCV's
      map, its holes filled as ``post`` fills every method's (:func:`fill`));
    - ``post``: after the post-processing ``post`` (NaN = hole); for sgbm, the filled map
      through ``post.median``; ``post.sgm`` and ``post.subpixel`` have no counterpart there
      (OpenCV aggregates its own costs and returns 1/16 px disparities);
    - ``lr_labels``: int8 left-right labels (0 ok, 1 occlusion, 2 mismatch, 3 out of view; all
      0 when off); for sgbm, its holes (:func:`simlearn.stereo.sgbm.hole_labels`).
    """
    n = num_disparities(max_disp)
    if matcher.method == "sgbm":
        from simlearn.stereo.sgbm import hole_labels, sgbm_disparity, sgbm_right_disparity

        options = {"colour": matcher.colour, **matcher.sgbm}
        out = torch.from_numpy(sgbm_disparity(left, right, max_disp, **options)).to(device)
        labels = torch.zeros(out.shape, dtype=torch.int64, device=out.device)
        if post.lr_check:  # a second SGBM run: the right view's map, for the labels
            right_map = torch.from_numpy(sgbm_right_disparity(left, right, max_disp, **options))
            out, labels = fill(out, hole_labels(out, right_map.to(device)), n, post)
        filled = out
        if post.median > 1:
            out = median_filter(out, post.median)
        return {
            "wta": filled.cpu().numpy().astype(np.float32),
            "post": out.cpu().numpy().astype(np.float32),
            "lr_labels": labels.to(torch.int8).cpu().numpy(),
        }
    cost = matcher.costs(image_tensor(left, device), image_tensor(right, device), n)  # (D, H, W)
    wta = winner_takes_all(cost)
    agg = sgm(cost, post.p1, post.p2, post.paths) if post.sgm else cost
    disp = winner_takes_all(agg) if post.sgm else wta
    labels = torch.zeros_like(disp)
    out = disp.float()
    if post.lr_check:
        out, labels = fill(out, left_right_check(disp, right_disparity(agg)), n, post)
    if post.subpixel:
        out = subpixel(agg, out)
    if post.median > 1:
        out = median_filter(out, post.median)
    return {
        "wta": wta.float().cpu().numpy(),
        "post": out.cpu().numpy().astype(np.float32),
        "lr_labels": labels.to(torch.int8).cpu().numpy(),
    }
