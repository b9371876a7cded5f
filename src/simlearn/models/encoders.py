"""The image encoders a model spec names: one ``if`` per architecture (no registry)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from simlearn.models.convnet import ConvNet
from simlearn.models.resnet import ResNet18Embedding
from simlearn.models.shallow import LinearEmbedding


def build_encoder(spec: dict[str, Any]) -> nn.Module:
    name = spec["name"]
    if name == "convnet":
        return ConvNet(spec["in_channels"], spec["embedding_dim"], spec["width"], spec["normalize"])
    if name == "resnet18":
        return ResNet18Embedding(spec["in_channels"], spec["embedding_dim"], spec["normalize"])
    if name in ("raw", "mahalanobis", "lda"):
        return LinearEmbedding(torch.zeros(spec["weight_shape"]), torch.zeros(spec["mean_shape"]))
    raise ValueError(f"model.name={name!r}: allowed convnet, resnet18, raw, mahalanobis, lda")
