"""torchvision's ResNet-18 with a CIFAR stem, as an embedding network for 32x32 colour images.

The ImageNet stem (7x7 stride-2 convolution, then max-pool) shrinks a 32x32 image to 8x8 before
the first block; the CIFAR stem (3x3 stride-1 convolution, no max-pool; He et al. 2016, Sec. 4.2)
keeps the resolution. The classifier becomes the embedding head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResNet18Embedding(nn.Module):
    def __init__(self, in_channels: int, embedding_dim: int, normalize: bool = True) -> None:
        super().__init__()
        from torchvision.models import resnet18  # imported here: torchvision takes ~2 s to import

        self.normalize = normalize
        net = resnet18(weights=None, num_classes=embedding_dim)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        x = self.net(x)
        return F.normalize(x, dim=1) if self.normalize else x
