"""ImageNet-pretrained ResNets through torchvision's weights API, read from the torch hub cache.

``model: {name: resnet50, weights: imagenet}`` builds torchvision's ``resnet50`` as it was
trained on ImageNet (3-channel input, 7x7 stride-2 stem and max-pool), loads
``ResNet50_Weights.IMAGENET1K_V1``, and replaces the classifier ``fc`` by a linear head to
``embedding_dim`` (then L2-normalised when ``normalize``), the set-up of the metric-learning
benchmarks (Musgrave et al., "A Metric Learning Reality Check", ECCV 2020,
https://arxiv.org/abs/2003.08505, fine-tune an ImageNet ResNet-50 or BN-Inception).

- Which weights: ``IMAGENET1K_V1`` for every ResNet: the original torchvision weights that the
  field's papers fine-tune, the only ones ResNet-18/34 have, and a name that means the same file
  in every torchvision version (``DEFAULT`` is V2 for ResNet-50 since torchvision 0.13).
- Input: standardised with the weights' own mean and std (``weights.transforms().mean/std``,
  ImageNet's), not the training split's; a greyscale image enters as three equal channels.
- Frozen batch norm (``freeze_bn``): every BatchNorm layer stays in eval mode (the ImageNet
  running statistics) and its affine parameters get no gradient: the usual choice when
  fine-tuning with small batches, whose statistics are noisy.
- Offline: the weights file is read from ``torch.hub.get_dir()/checkpoints/<file name of the
  weights' URL>``, where torchvision itself caches it, and never downloaded during a run;
  :func:`check_weights_available` raises a :class:`~simlearn.config.ConfigError` naming the file,
  the cache path, the URL and how to get it, before any run starts.

The saved model (``model.pt``) holds the fine-tuned state dict: loading it reads no weights file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from simlearn.config import ConfigError

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum

__all__ = [
    "IMAGENET_WEIGHTS",
    "ImageNetResNet",
    "check_weights_available",
    "imagenet_state_dict",
    "imagenet_stats",
    "imagenet_weights",
    "require_weights_file",
    "weights_path",
]

#: the torchvision weights that ``weights: imagenet`` names, for every ResNet
IMAGENET_WEIGHTS = "IMAGENET1K_V1"


def imagenet_weights(arch: str) -> WeightsEnum:
    """torchvision's ``IMAGENET1K_V1`` weights entry of ``arch`` (e.g. ``ResNet50_Weights``)."""
    from torchvision.models import get_model_weights  # imported here: ~2 s

    return get_model_weights(arch)[IMAGENET_WEIGHTS]


def weights_path(weights: WeightsEnum) -> Path:
    """Where torch hub caches ``weights``: ``<torch.hub.get_dir()>/checkpoints/<URL file name>``,
    the file ``load_state_dict_from_url`` reads instead of downloading."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def require_weights_file(
    arch: str, asked: str = "model.weights='imagenet'", off: str = "model.weights: null"
) -> Path:
    """The cached weights file of ``arch``'s ImageNet weights; when it is missing, a
    :class:`~simlearn.config.ConfigError` naming the file, the cache path, the URL and how to
    get it. ``asked``: the params setting that wants the weights; ``off``: the one that does
    without them (both named in the message)."""
    weights = imagenet_weights(arch)
    path = weights_path(weights)
    if path.is_file():
        return path
    enum = f"{type(weights).__name__}.{weights.name}"
    raise ConfigError(
        f"{asked}: the ImageNet weights of {arch} ({enum}) are not in the torch hub cache: "
        f"the file {path.name} is missing at {path} (the cache is torch.hub.get_dir() = "
        f"{path.parent.parent}; TORCH_HOME moves it). simlearn never downloads during a run. "
        "To get it, on a machine with network access run\n"
        f"    python -c \"import torchvision; torchvision.models.{arch}(weights='"
        f"{weights.name}')\"\n"
        f"which downloads {weights.url} into that machine's cache, then copy {path.name} to "
        f"{path}; or download {weights.url} yourself and save it as {path}. Or set {off} to "
        "train from a random initialisation."
    )


def _field(model: Any, name: str) -> Any:
    return model.get(name) if isinstance(model, Mapping) else getattr(model, name)


def check_weights_available(model: Any, key: str = "model") -> None:
    """Raise :class:`~simlearn.config.ConfigError` when ``model`` (a ``ModelConfig`` or a spec
    dict) asks for ImageNet weights whose file is not in the torch hub cache
    (:func:`require_weights_file`); ``key``: the model section's key in params."""
    weights = _field(model, "weights")
    if weights is not None:
        require_weights_file(
            _field(model, "name"), f"{key}.weights={weights!r}", f"{key}.weights: null"
        )


def imagenet_state_dict(
    arch: str, asked: str = "model.weights='imagenet'", off: str = "model.weights: null"
) -> dict[str, torch.Tensor]:
    """The ImageNet state dict of ``arch``, read from the torch hub cache (tensors only:
    ``weights_only=True``); :func:`require_weights_file`'s error when the file is not there."""
    return torch.load(require_weights_file(arch, asked, off), map_location="cpu", weights_only=True)


def imagenet_stats(arch: str) -> tuple[list[float], list[float]]:
    """The per-channel mean and std (RGB, [0, 1] scale) that ``arch``'s ImageNet weights expect:
    their ``transforms()``'s."""
    t = imagenet_weights(arch).transforms()
    return [float(m) for m in t.mean], [float(s) for s in t.std]


class ImageNetResNet(nn.Module):
    """torchvision's ``arch`` with its ImageNet stem, ``fc`` replaced by a linear embedding head.

    ``state_dict``: torchvision weights to start from (:func:`imagenet_state_dict`), or None for
    a random initialisation; ``freeze_bn``: batch norm keeps its statistics and affine
    parameters (eval mode whatever the module's mode, no gradient).
    """

    def __init__(
        self,
        arch: str,
        embedding_dim: int,
        normalize: bool = True,
        freeze_bn: bool = False,
        state_dict: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        import torchvision.models

        self.normalize = normalize
        self.freeze_bn = freeze_bn
        backbone = getattr(torchvision.models, arch)(weights=None)
        if state_dict is not None:
            backbone.load_state_dict(state_dict)  # strict: every key of torchvision's network
        width = backbone.fc.in_features  # 512 (resnet18/34) or 2048 (resnet50/101/152)
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(width, embedding_dim)
        if freeze_bn:
            for m in self._batch_norms():
                m.requires_grad_(False)
            self.train(self.training)

    def _batch_norms(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def train(self, mode: bool = True) -> ImageNetResNet:
        super().train(mode)
        if self.freeze_bn:  # the running statistics stay ImageNet's, in training too
            for m in self._batch_norms():
                m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, F) pooled
        if x.shape[1] == 1:  # greyscale: three equal channels, what the stem was trained on
            x = x.expand(-1, 3, -1, -1)
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        x = self.head(self.features(x))
        return F.normalize(x, dim=1) if self.normalize else x
