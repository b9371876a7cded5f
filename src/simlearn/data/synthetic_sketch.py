"""A small, procedurally generated sketch/photo set in the Sketchy folder layout.

It lets the sketch-based retrieval pipeline run offline and in seconds. Each class is a shape
(circle, square, triangle, star, hexagon, cross). A *photo* is the shape filled with a striped
texture on a shaded background of another colour, at a random position, size and rotation; each
of its *sketches* is a black outline of the same shape on white, drawn with the wobble of a hand:
the outline is subdivided and every point jittered, and the whole stroke is shifted and scaled a
little. A sketch therefore matches its own photo better than other photos of its class, as in
Sketchy, where every sketch was drawn from one photo.

Everything follows from ``seed``: the same seed writes the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPES", "generate_sketch_set", "render_photo", "render_sketch", "shape_outline"]

SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross")
_TX = "tx_000000000000"  # Sketchy's name for the "no augmentation" variant folder


def shape_outline(
    shape: str, center: tuple[float, float], radius: float, angle: float
) -> np.ndarray:
    """Vertices (K, 2) as (x, y) of a closed polygon outlining ``shape``, rotated by ``angle``."""
    if shape == "circle":
        t = np.linspace(0.0, 2 * np.pi, 32, endpoint=False)
        local = np.stack([np.cos(t), np.sin(t)], axis=1)
    elif shape in ("square", "triangle", "hexagon"):
        k = {"square": 4, "triangle": 3, "hexagon": 6}[shape]
        t = np.linspace(0.0, 2 * np.pi, k, endpoint=False) + np.pi / k
        local = np.stack([np.cos(t), np.sin(t)], axis=1)
    elif shape == "star":
        t = np.linspace(0.0, 2 * np.pi, 10, endpoint=False)
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        local = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    elif shape == "cross":
        w = 0.35  # half-width of an arm, relative to the arm length
        local = np.array(
            [[w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w],
             [-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w]],
            dtype=np.float64,
        )  # fmt: skip
    else:
        raise ValueError(f"shape={shape!r}: allowed shapes are {', '.join(SHAPES)}")
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return local @ rot.T * radius + np.asarray(center, dtype=np.float64)  # (K, 2)


def render_photo(vertices: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """The filled, textured shape on a shaded background: uint8 (size, size, 3)."""
    background = rng.uniform(0, 255, size=3)
    fill = rng.uniform(0, 255, size=3)
    while np.abs(fill - background).max() < 100:  # keep the shape visible
        fill = rng.uniform(0, 255, size=3)
    yy, xx = np.mgrid[0:size, 0:size] / size  # (S, S) each
    gx, gy = rng.uniform(-1, 1, size=2)
    shade = 40 * (gx * (xx - 0.5) + gy * (yy - 0.5))  # (S, S) soft light gradient
    theta, period = rng.uniform(0, np.pi), rng.uniform(0.08, 0.25)
    stripes = 30 * np.sign(np.sin(2 * np.pi * (xx * np.cos(theta) + yy * np.sin(theta)) / period))
    mask_img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask_img).polygon([tuple(v) for v in vertices], fill=255)
    mask = (np.asarray(mask_img) > 0)[..., None]  # (S, S, 1)
    photo = np.where(mask, fill + stripes[..., None], background + shade[..., None])  # (S, S, 3)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)


def render_sketch(
    vertices: np.ndarray, size: int, rng: np.random.Generator, jitter: float = 0.8
) -> np.ndarray:
    """A wobbly black outline of the polygon on white: uint8 (size, size), greyscale."""
    center = vertices.mean(axis=0)
    scale = rng.uniform(0.92, 1.08)
    shift = rng.uniform(-2.0, 2.0, size=2)
    closed = np.vstack([vertices, vertices[:1]])  # (K+1, 2)
    steps = np.linspace(0.0, 1.0, 4, endpoint=False)[:, None]  # 4 points per edge
    points = np.concatenate(
        [a + steps * (b - a) for a, b in zip(closed[:-1], closed[1:], strict=True)]
    )
    points = (points - center) * scale + center + shift + rng.normal(0, jitter, size=points.shape)
    points = np.vstack([points, points[:1]])  # close the stroke
    img = Image.new("L", (size, size), 255)
    ImageDraw.Draw(img).line([tuple(p) for p in points], fill=0, width=int(rng.integers(1, 3)))
    return np.asarray(img).copy()


def generate_sketch_set(
    root: str | Path,
    *,
    seed: int = 0,
    classes: Sequence[str] = SHAPES,
    photos_per_class: int = 20,
    sketches_per_photo: int = 2,
    size: int = 64,
) -> Path:
    """Write the set under ``root`` in the Sketchy layout and return ``root``.

    Files: ``rendered_256x256/256x256/photo/tx_000000000000/<class>/<class>_<i>.png`` and
    ``.../sketch/tx_000000000000/<class>/<class>_<i>-<k>.png`` with k = 1..sketches_per_photo
    (Sketchy numbers sketches from 1). The default is 6 classes x 20 photos x 2 sketches of
    64x64 pixels, about 0.2 MB of PNG.
    """
    for key, value, low in (
        ("photos_per_class", photos_per_class, 1),
        ("sketches_per_photo", sketches_per_photo, 1),
        ("size", size, 16),
    ):
        if value < low:
            raise ValueError(f"{key}={value}: must be >= {low}")
    unknown = sorted(set(classes) - set(SHAPES))
    if unknown:
        raise ValueError(
            f"classes={list(classes)}: unknown {unknown}; allowed: {', '.join(SHAPES)}"
        )
    root = Path(root)
    base = root / "rendered_256x256" / "256x256"
    rng = np.random.default_rng(seed)
    for shape in classes:
        photo_dir = base / "photo" / _TX / shape
        sketch_dir = base / "sketch" / _TX / shape
        photo_dir.mkdir(parents=True, exist_ok=True)
        sketch_dir.mkdir(parents=True, exist_ok=True)
        for i in range(photos_per_class):
            center = tuple(rng.uniform(0.38, 0.62, size=2) * size)
            radius = rng.uniform(0.22, 0.32) * size
            vertices = shape_outline(shape, center, radius, rng.uniform(0, 2 * np.pi))
            photo_id = f"{shape}_{i:03d}"
            Image.fromarray(render_photo(vertices, size, rng)).save(photo_dir / f"{photo_id}.png")
            for k in range(1, sketches_per_photo + 1):
                sketch = render_sketch(vertices, size, rng)
                Image.fromarray(sketch).save(sketch_dir / f"{photo_id}-{k}.png")
    return root
