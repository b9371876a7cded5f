"""A small pre-activation (BN-ReLU-Conv) network for small greyscale or colour images.

Sized for 8x8 digits and 28x28 MNIST-like images: three stages of two 3x3 convolutions, the last
two stages downsampling by 2, global average pooling, then a linear embedding head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    """BN-ReLU-Conv twice, with a residual connection (He et al. 2016, "Identity Mappings")."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        # the shortcut sees the pre-activated input when it is a projection (as in the paper)
        skip = self.shortcut(out) if not isinstance(self.shortcut, nn.Identity) else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


class ConvNet(nn.Module):
    def __init__(
        self, in_channels: int, embedding_dim: int, width: int = 32, normalize: bool = True
    ) -> None:
        super().__init__()
        if in_channels < 1 or embedding_dim < 1 or width < 1:
            raise ValueError(
                f"ConvNet needs in_channels, embedding_dim and width >= 1, got "
                f"{in_channels}, {embedding_dim}, {width}"
            )
        self.normalize = normalize
        self.stem = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.stages = nn.Sequential(
            PreActBlock(width, width, 1),
            PreActBlock(width, 2 * width, 2),
            PreActBlock(2 * width, 4 * width, 2),
        )
        self.bn = nn.BatchNorm2d(4 * width)
        self.head = nn.Linear(4 * width, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        x = self.stages(self.stem(x))
        x = F.relu(self.bn(x)).mean(dim=(2, 3))  # (B, 4w) global average pool
        x = self.head(x)
        return F.normalize(x, dim=1) if self.normalize else x
