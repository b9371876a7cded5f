"""A tiny tree in the true Sketchy layout, made on the fly (shared by the sbir tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("cat", "dog", "owl")
PHOTOS_PER_CLASS = 4
SKETCHES_PER_PHOTO = 2


def make_sketchy_tree(root: Path, size: int = 24) -> Path:
    """``rendered_256x256/256x256/{photo,sketch}/tx_000000000000/<class>/``: JPEG photos
    ``<class>_<i>.jpg`` (RGB), PNG sketches ``<class>_<i>-<k>.png`` (greyscale). A class's photos
    are a bright square at a class-specific place; its sketches a dark square outline there
    (plus a stray dot, so no two files are equal)."""
    base = root / "rendered_256x256" / "256x256"
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        pdir = base / "photo" / "tx_000000000000" / name
        sdir = base / "sketch" / "tx_000000000000" / name
        pdir.mkdir(parents=True)
        sdir.mkdir(parents=True)
        for i in range(PHOTOS_PER_CLASS):
            photo = rng.integers(0, 60, size=(size, size, 3)).astype(np.uint8)
            y0 = 2 + 7 * c
            photo[y0 : y0 + 6, 4:18] = 230
            Image.fromarray(photo).save(pdir / f"{name}_{i}.jpg", quality=95)
            for k in range(1, SKETCHES_PER_PHOTO + 1):
                sketch = np.full((size, size), 255, dtype=np.uint8)
                sketch[y0, 4:18] = sketch[y0 + 5, 4:18] = 0
                sketch[y0 : y0 + 6, 4] = sketch[y0 : y0 + 6, 17] = 0
                sketch[rng.integers(0, size), rng.integers(20, size)] = 0  # a stray dot: unique
                Image.fromarray(sketch).save(sdir / f"{name}_{i}-{k}.png")
    return root
