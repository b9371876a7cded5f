"""The model that stages save, MLflow logs and ``embed`` runs: input normalisation + encoder."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from torch import nn


class Embedder(nn.Module):
    """Takes float images in [0, 1], (B, C, H, W); standardises each channel with the training
    split's mean and std, or the pretrained weights' (stored as buffers, so the saved model needs
    no other state); encodes."""

    def __init__(self, encoder: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, D)
        if x.shape[1] == 1 and self.mean.shape[1] == 3:
            x = x.expand(-1, 3, -1, -1)  # greyscale into an RGB-trained network: 3 equal channels
        return self.encoder((x - self.mean) / self.std)


def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    x = torch.as_tensor(images)
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def rows_per_batch(shape: Sequence[int]) -> int:
    """Images (N, H, W, C) per inference batch: 1024, fewer above 44x44 (2 megapixels a batch:
    488 at 64 px, 39 at 224 px), so that the batch's activations stay small at any image size:
    a width-16 convnet's first feature map is 16 floats a pixel, 128 MB at 2 megapixels. One
    training epoch over 5,000 images read at 64 px peaked at 1,968 MiB RSS with 10 megapixels a
    batch, 1,564 MiB with 2 (``benchmarks/bench_loader.py``, its epoch figures, before and after
    the change)."""
    return max(1, min(1024, 2_000_000 // (int(shape[1]) * int(shape[2]))))


def _chunks(images: Any, rows: np.ndarray | None, size: int) -> Iterator[np.ndarray]:
    """uint8 (B, H, W, C) chunks of ``images[rows]`` (all rows when None), in order. An array
    is sliced; anything else (images decoded from files) is read one chunk ahead, in a thread,
    so that decoding the next chunk overlaps the network's work on this one."""
    n = len(images) if rows is None else len(rows)

    def read(start: int) -> np.ndarray:
        pick = slice(start, start + size) if rows is None else rows[start : start + size]
        return np.asarray(images[pick])

    if isinstance(images, np.ndarray):
        for start in range(0, n, size):
            yield read(start)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="embed-read") as pool:
        ahead = pool.submit(read, 0) if n else None
        for start in range(0, n, size):
            chunk = ahead.result()  # type: ignore[union-attr]
            ahead = pool.submit(read, start + size) if start + size < n else None
            yield chunk


@torch.no_grad()
def embed_images(
    model: nn.Module,
    images: Any,
    device: torch.device | str = "cpu",
    batch_size: int | None = None,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Embed uint8 images (N, H, W, C), or their ``rows``, in chunks of ``batch_size`` rows
    (default :func:`rows_per_batch`); returns float32 (N or len(rows), D).

    ``images`` is an array or an array-like that decodes the rows it is indexed with (images
    read from files): only one chunk (and the next, being read) is in memory at a time."""
    model = model.to(device).eval()
    size = batch_size or rows_per_batch(images.shape)
    out = []
    for chunk in _chunks(images, rows, size):
        x = to_input(chunk).to(device)
        out.append(model(x).float().cpu())
    if not out:
        raise ValueError("embed_images: no images to embed")
    return torch.cat(out).numpy().astype(np.float32)


def channel_stats(images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, H, W, C), on the [0, 1] scale."""
    x = np.asarray(images, dtype=np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


#: training rows read for the channel statistics of images that live in files
STATS_SAMPLE = 1024


def sampled_channel_stats(
    images: Any, rows: np.ndarray, seed: int, n: int = STATS_SAMPLE, chunk: int = 64
) -> tuple[list[float], list[float]]:
    """:func:`channel_stats` of up to ``n`` of ``rows`` (a seeded sample, read in order), read
    ``chunk`` rows at a time: memory stays bounded whatever the number of images."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) > n:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    c = int(images.shape[3])
    total, squares, count = np.zeros(c), np.zeros(c), 0
    for x in _chunks(images, rows, chunk):
        x = x.astype(np.float64) / 255.0  # (B, H, W, C)
        total += x.sum(axis=(0, 1, 2))
        squares += np.square(x).sum(axis=(0, 1, 2))
        count += x.shape[0] * x.shape[1] * x.shape[2]
    if count == 0:
        raise ValueError("sampled_channel_stats: no rows to compute statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean**2, 0.0))
    return mean.tolist(), np.maximum(std, 1e-6).tolist()


def model_spec(model: Any, in_channels: int, mean: list[float], std: list[float]) -> dict:
    """What ``model.pt`` stores to rebuild a network: the model config section, the input
    channels and the input statistics (the training split's, or the pretrained weights')."""
    from simlearn.config import to_dict

    return {**to_dict(model), "in_channels": in_channels, "input_mean": mean, "input_std": std}


def new_embedder(
    model: Any, images: Any, seed: int, rows: np.ndarray | None = None
) -> tuple[Embedder, dict]:
    """A new network for model config ``model`` behind its input standardisation; and its spec.

    Its random weights depend on ``seed`` alone (with ``weights: imagenet``, the backbone's come
    from the weights file and only the head is drawn). The standardisation: the pretrained
    weights' mean and std; else the channel statistics of the training ``rows`` of ``images``
    (uint8 (N, H, W, C); all rows when None): exact over every row for an array, over a seeded
    sample of :data:`STATS_SAMPLE` rows for images read from files."""
    from simlearn.models.encoders import build_encoder

    if getattr(model, "weights", None) is not None:
        from simlearn.models.pretrained import imagenet_stats

        mean, std = imagenet_stats(model.name)
    elif isinstance(images, np.ndarray):
        mean, std = channel_stats(images if rows is None else images[rows])
    else:
        train = np.arange(len(images)) if rows is None else rows
        mean, std = sampled_channel_stats(images, train, seed)
    spec = model_spec(model, int(images.shape[3]), mean, std)
    torch.manual_seed(seed)
    return Embedder(build_encoder(spec, load_weights=True), mean, std), spec


def embed_labelled(cfg: Any, model: Any, ds: Any, device: Any) -> dict[str, np.ndarray]:
    """What ``embed`` writes for an image task: ``embeddings`` float32 (N, D), ``labels`` int64
    (N,), ``ids`` (N,), ``split`` (N,) and ``holdout`` bool (N,) (classes never trained on).
    The images are read in chunks (:func:`embed_images`), never all at once."""
    emb = embed_images(model, ds.images, device)
    return {
        "embeddings": emb,
        "labels": ds.labels,
        "ids": ds.ids,
        "split": ds.splits,
        "holdout": np.isin(ds.labels, np.asarray(cfg.holdout_classes, dtype=np.int64)),
    }
