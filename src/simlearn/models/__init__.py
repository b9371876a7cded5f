"""Encoders: build one from a model config, save and load it without pickles."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simlearn.models.convnet import ConvNet
from simlearn.models.embedder import Embedder, embed_images, to_input
from simlearn.models.encoders import build_encoder
from simlearn.models.pretrained import ImageNetResNet, check_weights_available
from simlearn.models.resnet import ResNetEmbedding
from simlearn.models.shallow import LinearEmbedding, PixelEmbedding, fit_shallow

__all__ = [
    "ConvNet",
    "ResNetEmbedding",
    "ImageNetResNet",
    "check_weights_available",
    "LinearEmbedding",
    "PixelEmbedding",
    "Embedder",
    "embed_images",
    "to_input",
    "fit_shallow",
    "build_model",
    "save_model",
    "load_model",
]


def build_model(spec: dict[str, Any]) -> Embedder:
    """An :class:`Embedder` from ``spec``: the model config plus ``in_channels``, ``input_mean``,
    ``input_std`` and, for linear models, ``weight_shape``/``mean_shape``."""
    return Embedder(build_encoder(spec), spec["input_mean"], spec["input_std"])


def save_model(path: str | Path, model: nn.Module, spec: dict[str, Any]) -> None:
    """``model.pt``: ``{"spec": ..., "state_dict": ...}``, loadable with ``weights_only=True``."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    encoder = getattr(model, "encoder", model)
    if isinstance(encoder, LinearEmbedding):
        spec = {
            **spec,
            "weight_shape": list(encoder.weight.shape),
            "mean_shape": list(encoder.mean.shape),
        }
    fd, tmp = tempfile.mkstemp(dir=Path(path).parent, prefix=f".{Path(path).name}.", suffix=".tmp")
    os.close(fd)  # a unique name: two writers never share a temporary file
    try:
        torch.save({"spec": spec, "state_dict": state}, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_model(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[nn.Module, dict]:
    blob = torch.load(path, map_location=map_location, weights_only=True)
    model = build_model(blob["spec"])
    model.load_state_dict(blob["state_dict"])
    return model.eval(), blob["spec"]
