"""Argument checks shared by the losses: each raises ``ValueError`` naming the argument, the
value given and what is allowed, so a bad config fails at construction or at the loss entry."""

from __future__ import annotations

import math

import torch

from simlearn.distances import check_embeddings

__all__ = [
    "check_embeddings",
    "check_labels",
    "check_nonnegative",
    "check_positive",
    "check_same_shape",
]


def check_nonnegative(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number >= 0")
    if value < 0:
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number >= 0")
    return float(value)


def check_positive(name: str, value: float) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number > 0")
    if value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed; expected a finite number > 0")
    return float(value)


def check_same_shape(names: tuple[str, ...], tensors: tuple[torch.Tensor, ...]) -> None:
    """All embedding matrices given side by side must have one shape (row i of each is a tuple)."""
    for name, x in zip(names, tensors, strict=True):
        check_embeddings(name, x)
    shapes = {tuple(x.shape) for x in tensors}
    if len(shapes) != 1:
        given = ", ".join(f"{n} {tuple(x.shape)}" for n, x in zip(names, tensors, strict=True))
        raise ValueError(f"{', '.join(names)} must have the same shape; got {given}")


def check_labels(labels: torch.Tensor, n: int) -> None:
    """Labels are a vector ``(N,)`` matching the ``N`` embeddings they annotate."""
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"labels must have shape ({n},) to match the embeddings; got {tuple(labels.shape)}"
        )
