"""torchvision's ResNets with a CIFAR stem, as embedding networks for 32-64 px images.

The ImageNet stem (7x7 stride-2 convolution, then max-pool) shrinks a 32x32 image to 8x8 before
the first block; the CIFAR stem (3x3 stride-1 convolution, no max-pool; He et al. 2016, Sec. 4.2)
keeps the resolution. The classifier becomes the embedding head. Randomly initialised: the
ImageNet-stem networks, pretrained or not, are :class:`simlearn.models.pretrained.ImageNetResNet`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResNetEmbedding(nn.Module):
    """``arch`` (resnet18 | resnet34 | resnet50 | resnet101 | resnet152) with the CIFAR stem."""

    def __init__(
        self, in_channels: int, embedding_dim: int, normalize: bool = True, arch: str = "resnet18"
    ) -> None:
        super().__init__()
        import torchvision.models  # imported here: torchvision takes ~2 s to import

        self.normalize = normalize
        # the order of construction fixes the random draws: resnet18 with these arguments is the
        # network of every saved resnet18 model, weight for weight under the same seed
        net = getattr(torchvision.models, arch)(weights=None, num_classes=embedding_dim)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        x = self.net(x)
        return F.normalize(x, dim=1) if self.normalize else x
