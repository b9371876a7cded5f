"""A small, procedurally generated sketch/photo set in the Sketchy folder layout.

It lets the sketch-based retrieval pipeline run offline and in seconds, and it is built so that
neither raw pixels nor edge maps solve it: sketch and photo of one object share only its shape.

- **Categories** (16, :data:`CATEGORIES`): objects made of a few parts (a house is a body, a roof
  and a door; a car a body, a cabin and two wheels), each part a polygon in a unit frame. Every
  instance draws its own proportions (roof height, petal count, wheel size, ...).
- **Photos**: the object at a random pose (rotation, mirror, scale, position) over a cluttered
  background: a colour gradient under faint stripes, checks or blobs, and 0-3 distractor shapes
  of random colours, one sometimes (15%) in front of the object. The object has one random
  colour, each part a little apart from it, with a faint texture under a light gradient; pixel
  noise on top. Textures are faint (amplitude <= 12 of 255, was 30): the cleaner photos did not
  help the edge-HOG baseline, whose weakness is pose (sketch->photo mAP 0.163 with strong
  textures, 0.160 with faint ones, 48 photos x 2 sketches per category). What a photo encoder
  trained from scratch finds hard is the few photos and their random colours (a photo classifier
  on 48 photos per category: val accuracy 0.28; 0.56 with random channel orders and negatives;
  sketches: 0.95), hence 80 photos per category in params.yaml and ``sampler.recolour``.
- **Sketches**: black strokes on white that trace the outlines of *one* photo's object, as a person
  drawing from that photo would: the whole drawing is a little shifted, scaled and rotated; each
  outline wobbles (smooth low-frequency displacement plus jitter), breaks into strokes with gaps,
  overshoots its ends, is sometimes drawn twice (over-strokes), and each stroke has its own line
  width; small details are sometimes left out. Drawn at twice the size and downsampled, so widths
  vary smoothly. About five sketches per photo, as in Sketchy.

Everything follows from ``seed``: the same seed writes the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from simlearn.config.sbir import ZERO_SHOT_SPLITS

__all__ = [
    "CATEGORIES",
    "UNSEEN_CATEGORIES",
    "Part",
    "category_parts",
    "generate_sketch_set",
    "instance",
    "place",
    "render_photo",
    "render_sketch",
]

_TX = "tx_000000000000"  # Sketchy's name for the "no augmentation" variant folder


@dataclass(frozen=True)
class Part:
    """One part of an object, in the object's unit frame (x right, y down, about [-1, 1]).

    ``closed``: a filled polygon (body, wheel); else an open polyline drawn as a thick line
    (a stem, a ray, a handle). ``detail``: small, and a sketch may leave it out.
    """

    points: np.ndarray  # (K, 2) float64
    closed: bool = True
    detail: bool = False


# ----------------------------------------------------------------------------- shapes


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24, a0: float = 0.0,
             a1: float = 2 * np.pi) -> np.ndarray:  # fmt: skip
    t = np.linspace(a0, a1, n, endpoint=a1 - a0 < 2 * np.pi - 1e-9)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _rect(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def _house(r: np.random.Generator) -> list[Part]:
    w, roof = r.uniform(0.55, 0.8), r.uniform(0.35, 0.6)
    top = -0.15
    dw = r.uniform(0.12, 0.2)
    return [
        Part(_rect(-w, top, w, 0.8)),
        Part(np.array([[-w - 0.12, top], [0.0, top - roof], [w + 0.12, top]])),
        Part(_rect(-dw, 0.8 - r.uniform(0.35, 0.5), dw, 0.8), detail=True),
    ]


def _tree(r: np.random.Generator) -> list[Part]:
    tw = r.uniform(0.08, 0.16)
    rx, ry = r.uniform(0.45, 0.7), r.uniform(0.4, 0.6)
    return [Part(_rect(-tw, 0.1, tw, 0.9)), Part(_ellipse(0.0, -0.25, rx, ry))]


def _car(r: np.random.Generator) -> list[Part]:
    h = r.uniform(0.25, 0.35)
    cab = r.uniform(0.3, 0.45)
    wr = r.uniform(0.17, 0.24)
    body = np.array([[-0.95, 0.3], [-0.95, 0.3 - h], [0.95, 0.3 - h], [0.95, 0.3]])
    cabin = np.array([[-0.5, 0.3 - h], [-0.3, 0.3 - h - cab], [0.35, 0.3 - h - cab],
                      [0.6, 0.3 - h]])  # fmt: skip
    return [
        Part(body),
        Part(cabin),
        Part(_ellipse(-0.55, 0.32, wr, wr, 16)),
        Part(_ellipse(0.55, 0.32, wr, wr, 16)),
    ]


def _fish(r: np.random.Generator) -> list[Part]:
    rx, ry = r.uniform(0.55, 0.7), r.uniform(0.28, 0.42)
    tail = r.uniform(0.3, 0.45)
    return [
        Part(_ellipse(-0.15, 0.0, rx, ry)),
        Part(np.array([[rx - 0.25, 0.0], [rx + 0.25, -tail], [rx + 0.25, tail]])),
        Part(_ellipse(-0.45, -0.08, 0.07, 0.07, 10), detail=True),
    ]


def _star(r: np.random.Generator) -> list[Part]:
    k = 5
    inner = r.uniform(0.35, 0.5)
    t = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) - np.pi / 2
    rad = np.where(np.arange(2 * k) % 2 == 0, 0.95, inner)
    return [Part(np.stack([rad * np.cos(t), rad * np.sin(t)], axis=1))]


def _heart(r: np.random.Generator) -> list[Part]:
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    s = r.uniform(0.85, 1.1)
    return [Part(np.stack([x / 17 * s, y / 17], axis=1))]


def _moon(r: np.random.Generator) -> list[Part]:
    k = r.uniform(-0.2, 0.45)  # inner edge: an ellipse of x-radius k (k < 0 bulges outward)
    t = np.linspace(-np.pi / 2, np.pi / 2, 14)
    outer = np.stack([0.9 * np.cos(t), 0.9 * np.sin(t)], axis=1)
    inner = np.stack([0.9 * k * np.cos(t), 0.9 * np.sin(t)], axis=1)[::-1][1:-1]
    return [Part(np.vstack([outer, inner]) - np.array([0.3, 0.0]))]


def _arrow(r: np.random.Generator) -> list[Part]:
    sw, hw, hl = r.uniform(0.1, 0.18), r.uniform(0.35, 0.5), r.uniform(0.35, 0.5)
    x = 0.9 - hl
    return [Part(np.array([[-0.9, -sw], [x, -sw], [x, -hw], [0.9, 0.0], [x, hw], [x, sw],
                           [-0.9, sw]]))]  # fmt: skip


def _umbrella(r: np.random.Generator) -> list[Part]:
    rx = r.uniform(0.75, 0.95)
    canopy = _ellipse(0.0, 0.0, rx, r.uniform(0.45, 0.65), 20, np.pi, 2 * np.pi)
    handle = np.vstack([[[0.0, 0.0], [0.0, 0.8]], _ellipse(0.12, 0.8, 0.12, 0.12, 8, np.pi, 0.0)])
    return [Part(canopy), Part(handle, closed=False)]


def _cup(r: np.random.Generator) -> list[Part]:
    top, bot = r.uniform(0.45, 0.6), r.uniform(0.3, 0.45)
    body = np.array([[-top, -0.7], [top, -0.7], [bot, 0.7], [-bot, 0.7]])
    hr = r.uniform(0.25, 0.35)
    handle = _ellipse(top - 0.05, 0.0, hr, hr * 1.2, 12, -np.pi / 2, np.pi / 2)
    return [Part(body), Part(handle, closed=False)]


def _key(r: np.random.Generator) -> list[Part]:
    br = r.uniform(0.28, 0.38)
    sw = r.uniform(0.07, 0.11)
    x0 = -0.9 + 2 * br
    shaft = np.array([[x0, -sw], [0.9, -sw], [0.9, 0.3], [0.75, 0.3], [0.75, sw], [0.55, sw],
                      [0.55, 0.22], [0.42, 0.22], [0.42, sw], [x0, sw]])  # fmt: skip
    return [Part(_ellipse(-0.9 + br, 0.0, br, br, 16)), Part(shaft)]


def _flower(r: np.random.Generator) -> list[Part]:
    k = int(r.integers(5, 8))
    pr = r.uniform(0.22, 0.3)
    parts = []
    for i in range(k):
        a = 2 * np.pi * i / k
        p = _ellipse(0.3, 0.0, pr, pr * 0.55, 12)  # a petal pointing right from the centre
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        parts.append(Part(p @ rot.T + np.array([0.0, -0.3])))
    parts.append(Part(_ellipse(0.0, -0.3, 0.14, 0.14, 12), detail=True))
    parts.append(Part(np.array([[0.0, -0.1], [0.05, 0.45], [0.0, 0.9]]), closed=False))
    return parts


def _sun(r: np.random.Generator) -> list[Part]:
    cr = r.uniform(0.35, 0.45)
    k = int(r.integers(7, 11))
    parts = [Part(_ellipse(0.0, 0.0, cr, cr, 20))]
    for i in range(k):
        a = 2 * np.pi * i / k
        d = np.array([np.cos(a), np.sin(a)])
        parts.append(Part(np.stack([d * (cr + 0.12), d * 0.92]), closed=False))
    return parts


def _lightning(r: np.random.Generator) -> list[Part]:
    w = r.uniform(0.15, 0.25)
    return [Part(np.array([[0.1, -0.95], [-0.45, 0.1], [-0.05, 0.1], [-0.2, 0.95],
                           [0.45, -0.15], [0.05 + w / 2, -0.15], [0.35, -0.95]]))]  # fmt: skip


def _hourglass(r: np.random.Generator) -> list[Part]:
    w, n = r.uniform(0.5, 0.7), r.uniform(0.04, 0.1)
    return [
        Part(np.array([[-w, -0.75], [w, -0.75], [n, 0.0], [w, 0.75], [-w, 0.75], [-n, 0.0]])),
        Part(_rect(-w - 0.12, -0.92, w + 0.12, -0.75)),
        Part(_rect(-w - 0.12, 0.75, w + 0.12, 0.92)),
    ]


def _bell(r: np.random.Generator) -> list[Part]:
    wb, wt = r.uniform(0.75, 0.95), r.uniform(0.3, 0.4)
    side = np.array([[wt, -0.6], [wt + 0.05, -0.1], [wb - 0.15, 0.35], [wb, 0.6]])
    top = _ellipse(0.0, -0.6, wt, 0.3, 10, 0.0, -np.pi)
    bell = np.vstack([side[::-1], top[1:-1], side * np.array([-1.0, 1.0])])
    return [Part(bell), Part(_ellipse(0.0, 0.72, 0.13, 0.13, 10), detail=True)]


#: category name -> part generator (one instance's proportions drawn from the generator)
CATEGORIES: dict[str, Callable[[np.random.Generator], list[Part]]] = {
    "arrow": _arrow,
    "bell": _bell,
    "car": _car,
    "cup": _cup,
    "fish": _fish,
    "flower": _flower,
    "heart": _heart,
    "hourglass": _hourglass,
    "house": _house,
    "key": _key,
    "lightning": _lightning,
    "moon": _moon,
    "star": _star,
    "sun": _sun,
    "tree": _tree,
    "umbrella": _umbrella,
}

#: the zero-shot split of this set: categories kept out of training (one per kind of outline:
#: a round one, one with a handle, a spiky one, a composite); ``zero_shot: synthetic`` picks it
UNSEEN_CATEGORIES: tuple[str, ...] = ZERO_SHOT_SPLITS["synthetic"]


def category_parts(category: str, rng: np.random.Generator) -> list[Part]:
    """One instance of ``category``: its parts in the unit frame."""
    if category not in CATEGORIES:
        raise ValueError(f"category={category!r}: allowed: {', '.join(CATEGORIES)}")
    return CATEGORIES[category](rng)


def place(parts: Sequence[Part], center: np.ndarray, radius: float, angle: float,
          mirror: bool) -> list[Part]:  # fmt: skip
    """The parts mirrored (x -> -x), rotated by ``angle``, scaled by ``radius`` and moved to
    ``center``: pixel coordinates."""
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    flip = np.array([-1.0, 1.0]) if mirror else np.ones(2)
    return [Part((p.points * flip) @ rot.T * radius + center, p.closed, p.detail) for p in parts]


# ----------------------------------------------------------------------------- photos


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3)


def _texture(size: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A random (S, S) luminance texture: stripes, checks, blobs or nothing."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    kind = int(rng.integers(4))
    if kind == 0:  # stripes at a random angle and period
        th, per = rng.uniform(0, np.pi), rng.uniform(0.06, 0.25)
        t = np.sign(np.sin(2 * np.pi * (xx * np.cos(th) + yy * np.sin(th)) / per))
    elif kind == 1:  # checks
        per = rng.uniform(0.08, 0.25)
        t = np.sign(np.sin(2 * np.pi * xx / per) * np.sin(2 * np.pi * yy / per))
    elif kind == 2:  # smooth blobs: a few random sinusoids
        t = sum(
            np.sin(2 * np.pi * (rng.uniform(1, 4) * xx * np.cos(a) + rng.uniform(1, 4) * yy *
                                np.sin(a)) + rng.uniform(0, 2 * np.pi))
            for a in rng.uniform(0, np.pi, size=3)
        ) / 3  # fmt: skip
    else:
        t = np.zeros((size, size))
    return strength * t


def _mask(parts: Sequence[Part], size: int, line_width: int) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    for p in parts:
        pts = [tuple(v) for v in p.points]
        if p.closed:
            draw.polygon(pts, fill=255)
        else:
            draw.line(pts, fill=255, width=line_width, joint="curve")
    return np.asarray(img) > 127


def _clutter(size: int, rng: np.random.Generator) -> list[tuple[list[Part], np.ndarray]]:
    """0-3 distractors: discs, boxes, bars and random polygons, each with its colour."""
    out = []
    for _ in range(int(rng.integers(0, 4))):
        c = rng.uniform(0, size, size=2)
        rad = rng.uniform(0.05, 0.15) * size
        kind = int(rng.integers(4))
        if kind == 0:
            pts = _ellipse(c[0], c[1], rad, rad * rng.uniform(0.5, 1.0), 16)
            part = Part(pts)
        elif kind == 1:
            part = Part(_rect(c[0] - rad, c[1] - rad * 0.6, c[0] + rad, c[1] + rad * 0.6))
        elif kind == 2:
            d = rng.normal(size=2)
            d = d / np.linalg.norm(d) * rad * 2
            part = Part(np.stack([c - d, c + d]), closed=False)
        else:
            a = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 7))))
            part = Part(np.stack([c[0] + rad * np.cos(a), c[1] + rad * np.sin(a)], axis=1))
        out.append(([part], _colour(rng)))
    return out


def render_photo(parts: Sequence[Part], size: int, rng: np.random.Generator) -> np.ndarray:
    """The object (``parts`` in pixels) on a cluttered, textured background: uint8 (S, S, 3)."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    c0, c1 = _colour(rng), _colour(rng)
    g = rng.uniform(-1, 1, size=2)
    ramp = np.clip(0.5 + g[0] * (xx - 0.5) + g[1] * (yy - 0.5), 0, 1)[..., None]  # (S, S, 1)
    photo = c0 * (1 - ramp) + c1 * ramp + _texture(size, rng, rng.uniform(0, 12))[..., None]
    clutter = _clutter(size, rng)
    n_front = int(rng.random() < 0.15)  # sometimes one distractor in front of the object
    line_w = max(2, size // 24)
    for shape, colour in clutter[: len(clutter) - n_front]:
        m = _mask(shape, size, line_w)
        photo[m] = colour + _texture(size, rng, 8)[m][:, None]
    base = _colour(rng)
    while min(np.abs(base - c0).sum(), np.abs(base - c1).sum()) < 150:  # keep the object visible
        base = _colour(rng)
    light = rng.uniform(-1, 1, size=2)
    shade = 35 * (light[0] * (xx - 0.5) + light[1] * (yy - 0.5))  # (S, S)
    for p in parts:
        m = _mask([p], size, line_w + 1)
        colour = np.clip(base + rng.normal(0, 15, size=3), 0, 255)
        tex = _texture(size, rng, rng.uniform(0, 8)) + shade
        photo[m] = colour + tex[m][:, None]
    for shape, colour in clutter[len(clutter) - n_front :]:
        m = _mask(shape, size, line_w)
        photo[m] = colour
    photo += rng.normal(0, rng.uniform(2, 10), size=photo.shape)
    return np.clip(np.rint(photo), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- sketches


def _resample(points: np.ndarray, closed: bool, step: float) -> np.ndarray:
    """Points every ``step`` pixels along the polyline (the polygon when ``closed``)."""
    pts = np.vstack([points, points[:1]]) if closed else points
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(2, int(np.ceil(s[-1] / step)) + 1)
    t = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(t, s, pts[:, 0]), np.interp(t, s, pts[:, 1])], axis=1)


def _wobble(path: np.ndarray, rng: np.random.Generator, amp: float) -> np.ndarray:
    """Smooth low-frequency displacement along the path (a hand's drift) plus fine jitter."""
    n = len(path)
    u = np.linspace(0.0, 1.0, n)[:, None]
    drift = sum(
        rng.normal(0, amp, size=(1, 2)) * np.sin(2 * np.pi * f * u + rng.uniform(0, 2 * np.pi))
        for f in (rng.uniform(0.5, 1.5), rng.uniform(2, 4))
    )
    return path + drift + rng.normal(0, amp * 0.25, size=path.shape)


def _strokes(path: np.ndarray, rng: np.random.Generator, scale: float) -> list[np.ndarray]:
    """Break one outline into strokes with gaps, overshoot their ends, sometimes redraw a piece."""
    n = len(path)
    cuts = np.sort(rng.choice(np.arange(1, n - 1), size=min(n - 2, int(rng.integers(0, 3))),
                              replace=False)) if n > 3 else np.array([], dtype=int)  # fmt: skip
    pieces = np.split(path, cuts)
    out = []
    for piece in pieces:
        if len(piece) < 2:
            continue
        gap = int(rng.integers(0, max(1, len(piece) // 6) + 1))  # leave a gap at the end
        piece = piece[: max(2, len(piece) - gap)]
        if rng.random() < 0.5:  # overshoot: continue past the end for a few pixels
            d = piece[-1] - piece[-2]
            d = d / (np.linalg.norm(d) + 1e-9)
            piece = np.vstack([piece, piece[-1] + d * rng.uniform(1, 4) * scale])
        out.append(piece)
        if rng.random() < 0.25 and len(piece) > 4:  # an over-stroke along part of the piece
            a = int(rng.integers(0, len(piece) - 3))
            b = int(rng.integers(a + 2, len(piece)))
            out.append(piece[a:b] + rng.normal(0, 1.0 * scale, size=2))
    return out


def render_sketch(parts: Sequence[Part], size: int, rng: np.random.Generator) -> np.ndarray:
    """A hand-drawn outline of ``parts`` (pixels of the photo): uint8 (S, S) greyscale, black on
    white. Drawn at 2x and downsampled."""
    up = 2
    big = size * up
    pts_all = np.vstack([p.points for p in parts])
    center = pts_all.mean(axis=0)
    a = np.deg2rad(rng.normal(0, 5))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    scale = rng.uniform(0.9, 1.1)
    shift = rng.normal(0, 0.03 * size, size=2)
    img = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(img)
    amp = rng.uniform(0.3, 1.0) * up
    for p in parts:
        if p.detail and rng.random() < 0.35:  # small details are sometimes left out
            continue
        pts = ((p.points - center) @ rot.T * scale + center + shift) * up
        path = _wobble(_resample(pts, p.closed, 1.5 * up), rng, amp)
        for stroke in _strokes(path, rng, up):
            width = int(rng.integers(2, 6))  # 1 to 2.5 px after downsampling
            grey = int(rng.integers(0, 70))
            draw.line([tuple(v) for v in stroke], fill=grey, width=width, joint="curve")
    img = img.resize((size, size), Image.Resampling.BOX)  # (S, S): 2x2 means, anti-aliased
    return np.asarray(img).copy()


# ----------------------------------------------------------------------------- the set


def instance(
    category: str, seed: int, index: int, size: int
) -> tuple[list[Part], np.random.Generator]:
    """Photo ``index`` of ``category``: its parts in pixels (random proportions and pose), and
    the generator that then draws its photo and sketches. One generator per photo, so a
    category's images do not depend on the categories generated before it."""
    rng = np.random.default_rng([seed, list(CATEGORIES).index(category), index])
    center = rng.uniform(0.42, 0.58, size=2) * size
    radius = rng.uniform(0.3, 0.42) * size
    angle = np.deg2rad(rng.uniform(-35, 35))
    return place(category_parts(category, rng), center, radius, angle, rng.random() < 0.5), rng


def generate_sketch_set(
    root: str | Path,
    *,
    seed: int = 0,
    classes: Sequence[str] = tuple(CATEGORIES),
    photos_per_class: int = 16,
    sketches_per_photo: int = 5,
    size: int = 64,
    workers: int | None = None,
) -> Path:
    """Write the set under ``root`` in the Sketchy layout and return ``root``.

    Categories are drawn in ``workers`` processes (default: one per CPU), with the same files
    for any count (a test compares 1 and 2 workers byte for byte): the embedded default set
    (16 categories x 80 photos, 7,680 files) took 9.9 and 13.0 s in one process, 5.5 and 7.5 s
    in two, on 2 cores (alternating runs).

    Files: ``rendered_256x256/256x256/photo/tx_000000000000/<class>/<class>_<i>.png`` and
    ``.../sketch/tx_000000000000/<class>/<class>_<i>-<k>.png`` with k = 1..sketches_per_photo
    (Sketchy numbers sketches from 1). The default is 16 classes x 16 photos x 5 sketches of
    64x64 pixels (256 photos, 1,280 sketches, about 2.5 MB of PNG).
    """
    for key, value, low in (
        ("photos_per_class", photos_per_class, 1),
        ("sketches_per_photo", sketches_per_photo, 1),
        ("size", size, 32),
    ):
        if value < low:
            raise ValueError(f"{key}={value}: must be >= {low}")
    unknown = sorted(set(classes) - set(CATEGORIES))
    if unknown:
        raise ValueError(
            f"classes={list(classes)}: unknown {unknown}; allowed: {', '.join(CATEGORIES)}"
        )
    root = Path(root)
    base = root / "rendered_256x256" / "256x256"
    jobs = [(base, c, seed, photos_per_class, sketches_per_photo, size) for c in classes]
    workers = min(len(jobs), workers or os.cpu_count() or 1)
    if workers <= 1:
        for job in jobs:
            _write_category(*job)
    else:  # one generator per photo: the files do not depend on the order or the worker
        with ProcessPoolExecutor(
            workers, initializer=_die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            list(pool.map(_write_category, *zip(*jobs, strict=True)))
    return root


def _die_with_parent(parent: int) -> None:
    """Worker initializer: the kernel kills this worker when the process that started the pool
    dies (Linux ``PR_SET_PDEATHSIG``). Without it, a SIGKILLed ``download@`` left its workers
    blocked on the pool's lock for minutes. Elsewhere, a no-op."""
    import ctypes
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _write_category(
    base: Path, category: str, seed: int, photos_per_class: int, sketches_per_photo: int, size: int
) -> None:
    photo_dir = base / "photo" / _TX / category
    sketch_dir = base / "sketch" / _TX / category
    photo_dir.mkdir(parents=True, exist_ok=True)
    sketch_dir.mkdir(parents=True, exist_ok=True)
    for i in range(photos_per_class):
        parts, rng = instance(category, seed, i, size)
        photo_id = f"{category}_{i:03d}"
        Image.fromarray(render_photo(parts, size, rng)).save(photo_dir / f"{photo_id}.png")
        for k in range(1, sketches_per_photo + 1):
            sketch = render_sketch(parts, size, rng)
            Image.fromarray(sketch).save(sketch_dir / f"{photo_id}-{k}.png")
