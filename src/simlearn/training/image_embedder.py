"""What the two image-embedding tasks (metric, simclr) export, and how it comes back.

Both train an :class:`~simlearn.models.Embedder` (input standardisation + encoder) that
:func:`simlearn.models.save_model` writes to ``<model_dir>/model.pt``. The task modules use these
two functions as their ``example_input`` and ``load_model``; torch is imported when they are
called, not when this module is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simlearn.data.image_dataset import ImageDataset

if TYPE_CHECKING:
    from torch import nn

__all__ = ["example_input", "load_model"]


def example_input(ds: ImageDataset) -> np.ndarray:
    """Two training images as the exported model takes them: float32 (2, C, H, W) in [0, 1]."""
    from simlearn.models import to_input

    return to_input(ds.images[ds.indices("train")[:2]]).numpy()


def load_model(model_dir: str | Path) -> tuple[nn.Module, dict]:
    """The :class:`~simlearn.models.Embedder` in ``model_dir/model.pt``, in eval mode, and its
    spec."""
    from simlearn.models import load_model as _load

    return _load(Path(model_dir) / "model.pt")
