"""Two encoders, one per domain (sketch, photo), ending in one shared, L2-normalised space.

Each :class:`Tower` standardises its domain's input with that domain's training statistics
(buffers) and encodes it; :class:`TwoTower` holds one tower per domain. With ``shared`` the two
towers hold the *same* encoder (one set of weights, the ablation): only the input statistics
differ, and greyscale sketches are repeated to three channels to enter the photo network.

Architectures (``arch["name"]``), per domain:

- ``convnet``: :class:`simlearn.models.convnet.ConvNet`, for small images;
- ``resnet18``: :class:`simlearn.models.resnet.ResNetEmbedding` (CIFAR stem, 32-64 px);
- ``resnet18_imagenet``: torchvision's ResNet-18 with its ImageNet stem (7x7 stride-2
  convolution and max-pool, for 128-256 px images such as Sketchy's); ``pretrained`` starts it
  from torchvision's ImageNet weights, read from the torch hub cache (never downloaded during a
  run: :func:`simlearn.models.pretrained.require_weights_file` says how to put them there).

The checkpoint (``model.pt``) holds the spec and the state dict; :func:`build_two_tower` rebuilds
the network from the spec without downloading anything.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from simlearn.models.convnet import ConvNet
from simlearn.models.pretrained import imagenet_state_dict
from simlearn.models.resnet import ResNetEmbedding

__all__ = [
    "ARCHITECTURES",
    "ClassicalEmbedding",
    "ImageNetResNet18",
    "SketchNet",
    "Tower",
    "TwoTower",
    "build_two_tower",
    "sobel_magnitude",
]

ARCHITECTURES = ("convnet", "sketchnet", "resnet18", "resnet18_imagenet")
DOMAIN_CHANNELS = {"sketch": 1, "photo": 3}


class SketchNet(nn.Module):
    """A plain, fast network for 32-64 px sketches and photos: a 5x5 stride-2 stem, then three
    BN-ReLU 3x3 convolutions, two of them followed by 2x2 max-pooling (1/8 of the side at the
    end), global average pooling and a linear head.

    Why not :class:`~simlearn.models.convnet.ConvNet`: that one keeps full resolution through its
    first stage (made for 8-28 px digits), so at 48 px it spends most of its time there; this one
    halves the side first and reaches a receptive field of 46 px (whole outlines) in four layers.
    """

    def __init__(self, in_channels: int, embedding_dim: int, width: int = 16,
                 normalize: bool = True) -> None:  # fmt: skip
        super().__init__()
        w = width

        def block(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
            conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)
            return [conv, nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.normalize = normalize
        self.features = nn.Sequential(
            *block(in_channels, w, 5, 2),  # (B, w, S/2, S/2)
            *block(w, 2 * w),
            nn.MaxPool2d(2),  # (B, 2w, S/4, S/4)
            *block(2 * w, 4 * w),
            nn.MaxPool2d(2),  # (B, 4w, S/8, S/8)
            *block(4 * w, 8 * w),
        )
        self.head = nn.Linear(8 * w, embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        x = self.features(x).mean(dim=(2, 3))  # (B, 8w) global average pool
        x = self.head(x)
        return F.normalize(x, dim=1) if self.normalize else x


def sobel_magnitude(x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 1, H, W)
    """Gradient magnitude of the channel mean, ``sqrt(Gx^2 + Gy^2)`` with the 3x3 Sobel kernels
    (replicate padding): the edge map an SBIR photo encoder may take as an extra input channel.
    kornia has ``kornia.filters.sobel``; two fixed 3x3 convolutions do not justify the
    dependency."""
    g = x.mean(dim=1, keepdim=True)  # (B, 1, H, W)
    k = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    k = torch.stack([k, k.t()])[:, None].to(g.dtype)  # (2, 1, 3, 3): Gx, Gy
    d = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="replicate"), k)  # (B, 2, H, W)
    return d.pow(2).sum(dim=1, keepdim=True).add(1e-12).sqrt()


class ImageNetResNet18(nn.Module):
    """torchvision's ResNet-18 as it was trained on ImageNet (3-channel input, 7x7 stem), its
    classifier replaced by a linear embedding head. ``pretrained``: start from the ImageNet
    weights in the torch hub cache (:func:`simlearn.models.pretrained.imagenet_state_dict`; a
    missing file is a ConfigError naming it, nothing is downloaded); ``key``: the tower's section
    in params, for that message."""

    def __init__(
        self,
        embedding_dim: int,
        normalize: bool = True,
        pretrained: bool = False,
        key: str = "model.photo_model",
    ):
        super().__init__()
        from torchvision.models import resnet18

        self.normalize = normalize
        net = resnet18(weights=None)
        if pretrained:
            asked, off = f"{key}.pretrained=true", f"{key}.pretrained: false"
            net.load_state_dict(imagenet_state_dict("resnet18", asked, off))
        net.fc = nn.Linear(net.fc.in_features, embedding_dim)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, D)
        x = self.net(x)
        return F.normalize(x, dim=1) if self.normalize else x


def build_encoder(
    arch: dict[str, Any],
    in_channels: int,
    embedding_dim: int,
    normalize: bool,
    load: bool,
    key: str = "model.photo_model",
) -> nn.Module:
    """One encoder from ``arch`` (name, width, pretrained). ``load``: read pretrained weights
    (False when the state dict of a checkpoint will overwrite them); ``key``: its params key."""
    name = arch["name"]
    if name == "convnet":
        return ConvNet(in_channels, embedding_dim, int(arch.get("width", 32)), normalize)
    if name == "sketchnet":
        return SketchNet(in_channels, embedding_dim, int(arch.get("width", 16)), normalize)
    if name == "resnet18":
        return ResNetEmbedding(in_channels, embedding_dim, normalize)
    if name == "resnet18_imagenet":
        pretrained = bool(arch.get("pretrained")) and load
        return ImageNetResNet18(embedding_dim, normalize, pretrained, key)
    raise ValueError(f"architecture {name!r}: allowed: {', '.join(ARCHITECTURES)}")


def encoder_channels(arch: dict[str, Any], domain: str, shared: bool) -> int:
    """Input channels of a domain's encoder: 3 for ImageNet networks and shared weights (a
    sketch is repeated to 3 channels), else the domain's own (sketch 1, photo 3)."""
    if shared or arch["name"] == "resnet18_imagenet":
        return 3
    return DOMAIN_CHANNELS[domain]


class Tower(nn.Module):
    """Float images in [0, 1] of one domain, (B, C, H, W) -> embeddings (B, D): resized to
    ``size`` if they are not that size, standardised with the domain's training mean and std,
    repeated to the encoder's channels, with ``edges`` the Sobel gradient magnitude of the image
    appended as one more channel (:func:`sobel_magnitude`, halved: about unit scale), encoded."""

    def __init__(
        self,
        encoder: nn.Module,
        channels: int,
        mean: list[float],
        std: list[float],
        size: int,
        edges: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.channels = channels
        self.size = size
        self.edges = edges
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, c, H, W) -> (B, D)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
        e = sobel_magnitude(x) * 0.5 if self.edges else None  # (B, 1, S, S)
        x = (x - self.mean) / self.std
        if x.shape[1] != self.channels:
            x = x.expand(-1, self.channels, -1, -1)  # (B, 1, H, W) -> (B, 3, H, W)
        if e is not None:
            x = torch.cat([x, e], dim=1)  # (B, channels + 1, S, S)
        return self.encoder(x)


class TwoTower(nn.Module):
    """A sketch tower and a photo tower into one embedding space.

    ``forward(x)`` embeds sketches (the queries: what a user draws), so the exported model takes
    one image batch; :meth:`embed` takes the domain explicitly.
    """

    def __init__(self, sketch: Tower, photo: Tower, shared: bool) -> None:
        super().__init__()
        self.sketch = sketch
        self.photo = photo
        self.shared = shared

    def embed(self, x: torch.Tensor, domain: str) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        if domain == "sketch":
            return self.sketch(x)
        if domain == "photo":
            return self.photo(x)
        raise ValueError(f"domain={domain!r}: allowed: sketch, photo")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # sketches (B, 1, H, W) -> (B, D)
        return self.sketch(x)


def build_two_tower(spec: dict[str, Any], load_pretrained: bool = False) -> TwoTower:
    """The network of ``spec`` (keys: ``sketch_model``, ``photo_model`` (arch dicts),
    ``shared``, ``embedding_dim``, ``normalize``, ``image_size``, ``sketch_mean/std``,
    ``photo_mean/std``).

    With ``shared`` both towers hold the photo encoder; ``load_pretrained`` fetches ImageNet
    weights for an architecture that asks for them (training only)."""
    shared = bool(spec["shared"])
    dim, norm = int(spec["embedding_dim"]), bool(spec["normalize"])
    encoders: dict[str, nn.Module] = {}
    for domain in ("photo", "sketch"):
        arch = spec[f"{domain}_model"]
        if shared and domain == "sketch":
            encoders["sketch"] = encoders["photo"]
            continue
        c = encoder_channels(arch, domain, shared) + int(bool(arch.get("edges", False)))
        encoders[domain] = build_encoder(
            arch, c, dim, norm, load_pretrained, f"model.{domain}_model"
        )
    towers = {
        d: Tower(
            encoders[d],
            encoder_channels(spec["photo_model" if shared else f"{d}_model"], d, shared),
            list(spec[f"{d}_mean"]),
            list(spec[f"{d}_std"]),
            int(spec["image_size"]),
            bool(spec["photo_model" if shared else f"{d}_model"].get("edges", False)),
        )
        for d in ("sketch", "photo")
    }
    return TwoTower(towers["sketch"], towers["photo"], shared)


def hog_batch(
    images: np.ndarray, orientations: int = 9, cell: int = 8, block: int = 2, eps: float = 1e-5
) -> np.ndarray:
    """``skimage.feature.hog`` of every image of a batch (B, H, W), bit for bit: ``orientations``
    bins over 0-180 degrees, ``cell`` x ``cell`` px cells, ``block`` x ``block``-cell blocks,
    L2-Hys; (B, F) in the dtype skimage returns (float32 for float32 input, else float64).

    Why not skimage itself: it runs one image at a time and normalises each block in a Python
    loop. For the 7,680 images of ``sketch_synthetic`` at 48 x 48 px, ``benchmarks/bench_hog.py``
    measured 3.2 s for skimage against 1.4 s here (2.3x; medians of 3 alternating runs on 2
    AMD EPYC cores; 4.4 s against 2.0 s on an earlier round's 2-core machine).
    Same arithmetic as skimage 0.26: central-difference gradients in the input's float type;
    each cell's histogram summed in row-major order into a C ``float`` (as its Cython loop
    does), then divided by the cell area; blocks normalised in float64. ``tests/sbir/
    test_hog.py`` checks equality with skimage on random, binary and blank images.
    """
    x = np.asarray(images)
    ftype = np.float32 if x.dtype in (np.float16, np.float32) else np.float64
    x = x.astype(ftype, copy=False)
    h, w = x.shape[1:]
    if h // cell < block or w // cell < block:
        raise ValueError(
            f"images of {h}x{w} px hold no block of {block}x{block} cells of {cell} px"
        )
    chunks = [  # 128 images at a time: temporaries stay in cache (2x faster than all at once)
        _hog_chunk(x[i : i + 128], orientations, cell, block, eps) for i in range(0, len(x), 128)
    ]
    n_features = (h // cell - block + 1) * (w // cell - block + 1) * block * block * orientations
    return np.concatenate(chunks).astype(ftype) if chunks else np.zeros((0, n_features), ftype)


def _hog_chunk(x: np.ndarray, orientations: int, cell: int, block: int, eps: float) -> np.ndarray:
    b, h, w = x.shape
    g_row = np.zeros_like(x)
    g_row[:, 1:-1, :] = x[:, 2:, :] - x[:, :-2, :]
    g_col = np.zeros_like(x)
    g_col[:, :, 1:-1] = x[:, :, 2:] - x[:, :, :-2]
    g_row, g_col = g_row.astype(np.float64), g_col.astype(np.float64)
    magnitude = np.hypot(g_col, g_row)
    angle = np.rad2deg(np.arctan2(g_row, g_col)) % 180
    per_bin = 180.0 / orientations
    bins = np.searchsorted([per_bin * (i + 1) for i in range(orientations - 1)], angle, "right")
    nr, nc = h // cell, w // cell
    magnitude = magnitude[:, : nr * cell, : nc * cell].reshape(b, nr, cell, nc, cell)
    bins = bins[:, : nr * cell, : nc * cell].reshape(b, nr, cell, nc, cell)
    hist = np.zeros((b, nr, nc, orientations), np.float32)
    for dy in range(cell):  # each pixel adds its magnitude to its bin: one pixel per cell at a time
        for dx in range(cell):
            at = bins[:, :, dy, :, dx, None]
            total = np.take_along_axis(hist, at, -1).astype(np.float64)
            total += magnitude[:, :, dy, :, dx, None]
            np.put_along_axis(hist, at, total.astype(np.float32), -1)
    hist = (hist / np.float32(cell * cell)).astype(np.float64)
    nbr, nbc = nr - block + 1, nc - block + 1
    blocks = np.empty((b, nbr, nbc, block, block, orientations))
    for r in range(block):
        for c in range(block):
            blocks[:, :, :, r, c] = hist[:, r : r + nbr, c : c + nbc]
    blocks = blocks.reshape(b, nbr, nbc, -1)
    out = blocks / np.sqrt(np.sum(blocks**2, axis=-1, keepdims=True) + eps**2)
    out = np.minimum(out, 0.2)
    out = out / np.sqrt(np.sum(out**2, axis=-1, keepdims=True) + eps**2)
    return out.reshape(b, -1)


class ClassicalEmbedding(nn.Module):
    """The fitted-in-closed-form baselines, as a module the pipeline saves and runs.

    ``raw``: greyscale, area-resized to ``raw_size``, flattened: (B, raw_size**2) in [0, 1].
    ``edge_hog``: photos -> greyscale -> Canny edges (``skimage.feature.canny``, ``sigma``) ->
    HOG; sketches -> greyscale, inverted (strokes bright, as edges are) -> HOG. HOG is
    ``skimage.feature.hog`` (9 orientations, ``hog_cell`` px cells, 2x2-cell blocks, L2-Hys;
    computed for the whole batch at once by :func:`hog_batch`, with the same numbers),
    the descriptor of Dalal & Triggs 2005 ("Histograms of Oriented Gradients for Human
    Detection", CVPR). Both are compared with the Euclidean distance.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__()
        self.spec = dict(spec)

    def embed(self, x: torch.Tensor, domain: str) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        grey = x.float().mean(dim=1, keepdim=True)  # (B, 1, H, W) in [0, 1]
        if self.spec["method"] == "raw":
            s = int(self.spec["raw_size"])
            return F.interpolate(grey, size=(s, s), mode="area").flatten(1)
        from skimage.feature import canny

        imgs = grey[:, 0].cpu().numpy()  # (B, H, W)
        if domain == "photo":
            sigma = float(self.spec["canny_sigma"])
            edges = np.stack([canny(img, sigma=sigma) for img in imgs]).astype(np.float64)
        else:
            edges = 1.0 - imgs
        features = hog_batch(edges, cell=int(self.spec["hog_cell"]))
        return torch.from_numpy(features.astype(np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # sketches (B, 1, H, W) -> (B, D)
        return self.embed(x, "sketch")
