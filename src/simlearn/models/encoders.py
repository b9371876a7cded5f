"""The image encoders a model spec names: one ``if`` per architecture (no registry)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from simlearn.config.metric import RESNETS
from simlearn.models.convnet import ConvNet
from simlearn.models.pretrained import ImageNetResNet, imagenet_state_dict
from simlearn.models.resnet import ResNetEmbedding
from simlearn.models.shallow import LinearEmbedding, PixelEmbedding


def imagenet_stem(spec: dict[str, Any]) -> bool:
    """A ResNet spec has torchvision's ImageNet stem: ``stem: imagenet``, or ``auto`` with
    weights (specs saved before these keys existed: the CIFAR stem)."""
    stem = spec.get("stem", "auto")
    return stem == "imagenet" or (stem == "auto" and spec.get("weights") is not None)


def build_encoder(spec: dict[str, Any], load_weights: bool = False) -> nn.Module:
    """The encoder of ``spec``. ``load_weights``: start a pretrained network from its weights
    file (a new training); False when a checkpoint's state dict will overwrite them."""
    name = spec["name"]
    if name == "convnet":
        return ConvNet(spec["in_channels"], spec["embedding_dim"], spec["width"], spec["normalize"])
    if name in RESNETS and imagenet_stem(spec):
        pretrained = load_weights and spec.get("weights") is not None
        return ImageNetResNet(
            name,
            spec["embedding_dim"],
            spec["normalize"],
            freeze_bn=bool(spec.get("freeze_bn", False)),
            state_dict=imagenet_state_dict(name) if pretrained else None,
        )
    if name in RESNETS:
        return ResNetEmbedding(spec["in_channels"], spec["embedding_dim"], spec["normalize"], name)
    if name == "raw":
        return PixelEmbedding()
    if name in ("mahalanobis", "lda"):
        return LinearEmbedding(torch.zeros(spec["weight_shape"]), torch.zeros(spec["mean_shape"]))
    raise ValueError(
        f"model.name={name!r}: allowed convnet, {', '.join(RESNETS)}, raw, mahalanobis, lda"
    )
