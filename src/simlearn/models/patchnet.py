"""The MC-CNN "fast" patch embedding (Zbontar & LeCun 2016, "Stereo Matching by Training a
Convolutional Neural Network to Compare Image Patches", JMLR 17, https://arxiv.org/abs/1510.05970).

Four 3x3 convolutions with 64 maps and no pooling: the receptive field is 9x9. A ReLU follows
every layer but the last; the output is L2-normalised, so the similarity of two pixels is the dot
product of their embeddings (the cosine), in [-1, 1].

- Training feeds 9x9 patches without padding: each gives a (64, 1, 1) embedding.
- Inference feeds a whole image, zero-padded by 4 pixels, so the embedding map has the image's
  size (:meth:`PatchNet.forward`).
- Pixels are standardised per image (zero mean, unit variance over all its pixels and channels),
  in training (:func:`standardise`) and inference alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: ITU-R BT.601 luma weights, as in OpenCV's and PIL's RGB -> grey conversion
GREY_WEIGHTS = (0.299, 0.587, 0.114)


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 1, H, W) luma; one-channel input is returned unchanged."""
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise ValueError(f"to_grey: expected 1 or 3 channels, got {images.shape[1]}")
    w = torch.tensor(GREY_WEIGHTS, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * w).sum(1, keepdim=True)


def standardise(images: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Per image: ``(x - mean) / std`` over all pixels and channels. (B, C, H, W) -> same."""
    x = images.float()
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / std.clamp_min(eps)


class PatchNet(nn.Module):
    """MC-CNN fast: ``layers`` 3x3 convolutions of ``features`` maps, ReLU but after the last.

    Args:
        in_channels: channels the network sees (1 for grey, 3 for colour).
        colour: keep the input's colour; ``False`` converts RGB input to grey first.
        batch_norm: BatchNorm after every convolution but the last (the reference ablation's
            "batch norm on" rows).
        features: maps per layer (64 in the paper).
        layers: convolutions (4 in the paper: a 9x9 receptive field).
    """

    kernel = 3

    def __init__(
        self,
        in_channels: int = 3,
        colour: bool = False,
        batch_norm: bool = False,
        features: int = 64,
        layers: int = 4,
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels={in_channels}: allowed 1 or 3")
        if colour and in_channels != 3:
            raise ValueError("colour=True needs 3 input channels")
        if layers < 1 or features < 1:
            raise ValueError(f"layers={layers}, features={features}: both must be >= 1")
        self.in_channels = in_channels
        self.colour = colour
        self.net_channels = 3 if colour else 1
        blocks: list[nn.Module] = []
        c = self.net_channels
        for i in range(layers):
            last = i == layers - 1
            blocks.append(nn.Conv2d(c, features, self.kernel, bias=not (batch_norm and not last)))
            if not last:
                if batch_norm:
                    blocks.append(nn.BatchNorm2d(features))
                blocks.append(nn.ReLU(inplace=True))
            c = features
        self.features = nn.Sequential(*blocks)
        self.radius = layers * (self.kernel // 2)  # 4: the patch is 9x9
        self.dim = features

    @property
    def patch_size(self) -> int:
        return 2 * self.radius + 1

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, in_channels, H, W) in [0, 1] -> standardised network input (B, c, H, W)."""
        if images.shape[1] != self.in_channels:
            raise ValueError(f"expected {self.in_channels} channels, got {images.shape[1]}")
        x = images if self.colour else to_grey(images)
        return standardise(x)

    def embed_patches(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised input (B, c, h, w) without padding -> (B, F, h - 8, w - 8), unit norm."""
        return F.normalize(self.features(x), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Whole images (B, in_channels, H, W) in [0, 1] -> embedding maps (B, F, H, W), unit
        norm per pixel (zero padding of 4 pixels, so the map keeps the image's size)."""
        x = F.pad(self.prepare(images), (self.radius,) * 4)
        return self.embed_patches(x)
