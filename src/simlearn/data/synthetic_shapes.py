"""A generated folder of labelled photos-like images, in torchvision's ImageFolder layout.

    python -m simlearn.data.synthetic_shapes <folder> [--classes 20] [--per-class 100]

Each class is a shape (filled or outlined circle, square, triangle, diamond, hexagon, star, ...)
drawn at a random place, scale and rotation, in a random colour, on a random background with
noise: the class is the shape alone, so raw pixels (which see position and colour) retrieve
poorly and a network that learns shape does well, also on shapes it never saw. The files mix
what a real folder holds: JPEG, PNG, WebP and BMP, sizes from ``min_size`` to ``max_size`` px,
and, when ``oddities`` is set, one greyscale JPEG, one CMYK JPEG and one RGBA PNG.

It is the data of the README's "Your data" worked example, of the end-to-end test of the
``image_folder`` source, and of ``benchmarks/bench_loader.py``: the same seed gives the same
bytes (PIL's encoders are deterministic for a given Pillow version).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["SHAPES", "draw_shape", "make_image_folder"]

#: the classes, in the order classes are taken (``classes=k`` uses the first k)
SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "cross", "ring", "frame", "triangle_outline", "plus",
    "bar", "pillar", "diamond", "diamond_outline", "star", "hexagon", "hexagon_outline",
    "semicircle", "two_dots", "three_dots", "ell", "arrow",
)  # fmt: skip

FORMATS: tuple[tuple[str, str], ...] = (
    ("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("BMP", ".bmp"),
)  # fmt: skip


def _polygon(cx: float, cy: float, r: float, n: int, turn: float, star: bool = False) -> list:
    points = []
    for k in range(n * (2 if star else 1)):
        radius = r * (0.45 if star and k % 2 else 1.0)
        a = turn + 2 * math.pi * k / (n * (2 if star else 1))
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def draw_shape(shape: str, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """One RGB image (``size`` = (width, height)) of ``shape`` on a noisy random background."""
    if shape not in SHAPES:
        raise ValueError(f"shape={shape!r}: allowed: {', '.join(SHAPES)}")
    w, h = size
    background = rng.integers(0, 110, 3)
    noise = rng.normal(0, 10, (h, w, 3))
    img = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    r = min(w, h) * rng.uniform(0.25, 0.42)  # the shape's radius
    cx, cy = w * rng.uniform(0.38, 0.62), h * rng.uniform(0.38, 0.62)
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    turn = rng.uniform(-0.3, 0.3)  # a small rotation, in radians
    line = max(2, int(r / 4))
    box = (cx - r, cy - r, cx + r, cy + r)
    rot = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])

    def turned(points: list) -> list:
        p = np.asarray(points, dtype=float) - (cx, cy)
        return [tuple(v) for v in (p @ rot.T + (cx, cy))]

    def seg(x0: float, y0: float, x1: float, y1: float) -> None:
        d.line(turned([(x0, y0), (x1, y1)]), fill=colour, width=line)

    def outline_or_fill(points: list) -> None:
        if shape.endswith(("_outline", "frame")):
            d.line([*points, points[0]], fill=colour, width=line, joint="curve")
        else:
            d.polygon(points, fill=colour)

    if shape == "circle":
        d.ellipse(box, fill=colour)
    elif shape == "ring":
        d.ellipse(box, outline=colour, width=line)
    elif shape in ("square", "frame"):
        outline_or_fill(
            turned([(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)])
        )
    elif shape in ("triangle", "triangle_outline"):
        outline_or_fill(_polygon(cx, cy, r, 3, turn - math.pi / 2))
    elif shape == "cross":
        seg(cx - r, cy - r, cx + r, cy + r)
        seg(cx - r, cy + r, cx + r, cy - r)
    elif shape == "plus":
        seg(cx - r, cy, cx + r, cy)
        seg(cx, cy - r, cx, cy + r)
    elif shape in ("bar", "pillar"):
        a, b = (r, r / 4) if shape == "bar" else (r / 4, r)
        d.polygon(turned([(cx - a, cy - b), (cx + a, cy - b), (cx + a, cy + b), (cx - a, cy + b)]),
                  fill=colour)  # fmt: skip
    elif shape in ("diamond", "diamond_outline"):
        outline_or_fill(_polygon(cx, cy, r, 4, turn))
    elif shape == "star":
        d.polygon(_polygon(cx, cy, r, 5, turn - math.pi / 2, star=True), fill=colour)
    elif shape in ("hexagon", "hexagon_outline"):
        outline_or_fill(_polygon(cx, cy, r, 6, turn))
    elif shape == "semicircle":
        start = math.degrees(turn)
        d.pieslice(box, start=180 + start, end=360 + start, fill=colour)
    elif shape in ("two_dots", "three_dots"):
        n = 2 if shape == "two_dots" else 3
        s = r / 3
        for x, y in turned([(cx - r + s + k * (2 * r - 2 * s) / (n - 1), cy) for k in range(n)]):
            d.ellipse((x - s, y - s, x + s, y + s), fill=colour)
    elif shape == "ell":
        seg(cx - r / 2, cy - r, cx - r / 2, cy + r)
        seg(cx - r / 2, cy + r, cx + r, cy + r)
    else:  # arrow
        seg(cx - r, cy, cx + r, cy)
        seg(cx + r, cy, cx + r / 3, cy - r / 1.5)
        seg(cx + r, cy, cx + r / 3, cy + r / 1.5)
    return img


def make_image_folder(
    root: str | Path,
    *,
    classes: int = 20,
    per_class: int = 100,
    seed: int = 0,
    min_size: int = 48,
    max_size: int = 160,
    oddities: bool = True,
) -> list[Path]:
    """Write ``classes`` x ``per_class`` images to ``root/<shape>/<shape>_<i>.<ext>``; return
    their paths (class by class). Formats cycle through JPEG, PNG, WebP and BMP; with
    ``oddities``, image 0 of the first class is greyscale, image 0 of the second CMYK (JPEG)
    and image 0 of the third RGBA with a transparent band (PNG)."""
    if not 1 <= classes <= len(SHAPES):
        raise ValueError(f"classes={classes}: must be in 1..{len(SHAPES)}")
    if per_class < 1 or not 8 <= min_size <= max_size:
        raise ValueError(f"per_class={per_class}, sizes {min_size}..{max_size}: bad values")
    root = Path(root)
    rng = np.random.default_rng(seed)
    paths = []
    for c, shape in enumerate(SHAPES[:classes]):
        (root / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            size = (
                int(rng.integers(min_size, max_size + 1)),
                int(rng.integers(min_size, max_size + 1)),
            )
            img = draw_shape(shape, size, rng)
            fmt, ext = FORMATS[(c + i) % len(FORMATS)]
            if oddities and i == 0 and c < 3:
                fmt, ext = (("JPEG", ".jpg"), ("JPEG", ".jpg"), ("PNG", ".png"))[c]
                if c == 0:
                    img = img.convert("L")
                elif c == 1:
                    img = img.convert("CMYK")
                else:
                    img = img.convert("RGBA")
                    alpha = np.full((size[1], size[0]), 255, np.uint8)
                    alpha[:, : size[0] // 4] = 0
                    img.putalpha(Image.fromarray(alpha))
            path = root / shape / f"{shape}_{i:04d}{ext}"
            img.save(path, format=fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))
            paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("root", type=Path)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    paths = make_image_folder(args.root, classes=args.classes, per_class=args.per_class,
                              seed=args.seed)  # fmt: skip
    print(f"{len(paths):,} images in {args.classes} class folders under {args.root}")


if __name__ == "__main__":
    main()
