"""Readers for the on-disk formats of the remote datasets.

Pure functions: a path in, arrays or a table out. Each one is tested on small files written in
the true format by the test itself.

- PFM (Middlebury disparities): :func:`read_pfm`, :func:`write_pfm`.
- KITTI disparities (16-bit PNG, value / 256, 0 = no ground truth): :func:`read_kitti_disparity`,
  :func:`write_kitti_disparity`.
- Middlebury ``calib.txt``: :func:`read_middlebury_calib`.
- The Sketchy ``rendered_256x256`` folder tree: :func:`list_sketchy`.

IDX (MNIST, Fashion-MNIST) is read by torchvision and not re-implemented here.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from simlearn.data.errors import CorruptFileError, LayoutError

__all__ = [
    "KITTI_DISPARITY_SCALE",
    "SKETCHY_PHOTO_SUFFIXES",
    "list_sketchy",
    "read_image",
    "read_kitti_disparity",
    "read_middlebury_calib",
    "read_pfm",
    "sketchy_layout_root",
    "write_kitti_disparity",
    "write_pfm",
]

#: KITTI stores disparity d as round(d * 256) in a uint16 PNG; 0 means "no ground truth".
KITTI_DISPARITY_SCALE = 256.0
#: Sketchy photos are JPEG; the synthetic set writes PNG. Sketches are always PNG.
SKETCHY_PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


# ----------------------------------------------------------------------------- PFM


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a Portable Float Map.

    Header: ``Pf`` (1 channel) or ``PF`` (3 channels), then ``width height``, then ``scale``
    whose sign gives the byte order (negative: little-endian, positive: big-endian). Rows are
    stored bottom-up, so they are flipped here. Values are returned as stored: Middlebury marks
    pixels without ground truth with ``inf``; the canonical writer turns them into NaN.

    Returns:
        float32, native byte order, shape (H, W) for ``Pf`` or (H, W, 3) for ``PF``.
    """
    path = Path(path)
    if not path.is_file():
        raise CorruptFileError(f"{path}: missing; a PFM disparity map is expected there")
    with open(path, "rb") as f:
        magic = f.readline().strip()
        if magic not in (b"Pf", b"PF"):
            raise CorruptFileError(
                f"{path}: not a PFM file: header {magic!r}, expected b'Pf' or b'PF'"
            )
        channels = 3 if magic == b"PF" else 1
        tokens: list[bytes] = []
        while len(tokens) < 3:  # width, height (one or two lines), then scale on its own line
            line = f.readline()
            if not line:
                raise CorruptFileError(f"{path}: PFM header ends before width, height and scale")
            tokens += line.split()
        try:
            width, height, scale = int(tokens[0]), int(tokens[1]), float(tokens[2])
        except ValueError as e:
            raise CorruptFileError(f"{path}: bad PFM header values {tokens[:3]!r}") from e
        if width <= 0 or height <= 0 or scale == 0:
            raise CorruptFileError(
                f"{path}: bad PFM header width={width} height={height} scale={scale}"
            )
        dtype = np.dtype("<f4" if scale < 0 else ">f4")
        count = width * height * channels
        data = np.fromfile(f, dtype=dtype, count=count)
    if data.size != count:
        raise CorruptFileError(f"{path}: PFM truncated: {data.size} of {count} float values")
    shape = (height, width, channels) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)  # bottom-up -> top-down, native


def write_pfm(
    path: str | Path, array: np.ndarray, *, little_endian: bool = True, scale: float = 1.0
) -> Path:
    """Write ``array`` (H, W) or (H, W, 3) as PFM: rows bottom-up, byte order in the scale sign."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 3:
        magic = b"PF"
    elif array.ndim == 2:
        magic = b"Pf"
    else:
        raise ValueError(f"array shape {array.shape}: expected (H, W) or (H, W, 3)")
    if scale <= 0:
        raise ValueError(f"scale={scale}: must be > 0 (the byte order is given by little_endian)")
    height, width = array.shape[:2]
    signed_scale = -scale if little_endian else scale
    data = np.flipud(array).astype("<f4" if little_endian else ">f4")
    path = Path(path)
    with open(path, "wb") as f:
        f.write(magic + b"\n" + f"{width} {height}\n{signed_scale}\n".encode("ascii"))
        f.write(np.ascontiguousarray(data).tobytes())
    return path


# ----------------------------------------------------------------------------- KITTI


def read_kitti_disparity(path: str | Path) -> np.ndarray:
    """Read a KITTI disparity map: 16-bit PNG holding ``d * 256``; 0 = no ground truth.

    Returns:
        float32 (H, W) disparity in pixels, NaN where the stored value is 0.
    """
    path = Path(path)
    with _decoding(path, "a 16-bit PNG disparity map"):
        with Image.open(path) as img:
            mode = img.mode
            raw = np.array(img)
    if raw.dtype != np.uint16 and not (mode == "I" and raw.dtype == np.int32):
        raise CorruptFileError(
            f"{path}: KITTI disparity must be a 16-bit greyscale PNG, got PIL mode {mode!r} "
            f"(dtype {raw.dtype})"
        )
    if raw.ndim != 2:
        raise CorruptFileError(
            f"{path}: KITTI disparity must be one channel, got shape {raw.shape}"
        )
    disparity = raw.astype(np.float32) / np.float32(KITTI_DISPARITY_SCALE)  # (H, W)
    disparity[raw == 0] = np.nan
    return disparity


def write_kitti_disparity(path: str | Path, disparity: np.ndarray) -> Path:
    """Write float disparities as KITTI does: ``round(d * 256)`` in a uint16 PNG, NaN -> 0."""
    disparity = np.asarray(disparity, dtype=np.float64)
    if disparity.ndim != 2:
        raise ValueError(f"disparity shape {disparity.shape}: expected (H, W)")
    valid = np.isfinite(disparity)
    if np.any(disparity[valid] < 0) or np.any(disparity[valid] * KITTI_DISPARITY_SCALE > 65535):
        raise ValueError("disparity values must lie in [0, 65535 / 256] to fit a 16-bit PNG")
    raw = np.zeros(disparity.shape, dtype=np.uint16)
    raw[valid] = np.round(disparity[valid] * KITTI_DISPARITY_SCALE).astype(np.uint16)
    path = Path(path)
    Image.fromarray(raw).save(path)
    return path


# ----------------------------------------------------------------------------- Middlebury

_INT_KEYS = {"width", "height", "ndisp", "isint"}
_MATRIX = re.compile(r"^\[(.*)\]$")


def read_middlebury_calib(path: str | Path) -> dict[str, Any]:
    """Parse a Middlebury 2014 ``calib.txt``.

    Lines are ``key=value``: ``cam0`` and ``cam1`` are 3x3 matrices written
    ``[f 0 cx; 0 f cy; 0 0 1]`` (returned as float64 (3, 3) arrays); ``width``, ``height``,
    ``ndisp`` (a conservative bound on the disparity range) and ``isint`` are ints; ``doffs``
    (x-difference of the principal points), ``baseline`` (mm), ``vmin``/``vmax`` (tight bounds of
    the true disparities), ``dyavg``, ``dymax`` and any other key are floats.
    """
    path = Path(path)
    out: dict[str, Any] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CorruptFileError(f"{path}: cannot be read as a calib.txt ({err})") from err
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if "=" not in line:
            raise CorruptFileError(f"{path}:{number}: expected key=value, got {line!r}")
        key, value = (s.strip() for s in line.split("=", 1))
        matrix = _MATRIX.match(value)
        try:
            if matrix:
                rows = [r.split() for r in matrix.group(1).split(";")]
                out[key] = np.array(rows, dtype=np.float64)
                if out[key].shape != (3, 3):
                    raise ValueError(f"matrix shape {out[key].shape}, expected (3, 3)")
            elif key in _INT_KEYS:
                out[key] = int(float(value))
            else:
                out[key] = float(value)
        except ValueError as e:
            raise CorruptFileError(f"{path}:{number}: bad value for {key}: {value!r} ({e})") from e
    return out


# ----------------------------------------------------------------------------- arrays

#: what a damaged .npy / .npz raises when read: a short file, a bad header, a broken zip
_ARRAY_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def read_npy(path: str | Path, *, mmap_mode: str | None = None, remedy: str = "") -> np.ndarray:
    """``np.load`` of one ``.npy`` (no pickles); a missing, truncated or foreign file raises
    `CorruptFileError` naming it, followed by ``remedy`` (what rebuilds it)."""
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except _ARRAY_ERRORS as err:
        raise _array_error(Path(path), err, remedy) from err


def read_npz(path: str | Path, *, remedy: str = "") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), read now, so a truncated member fails here,
    naming the file, and not later in whatever uses it."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in z.files}
    except _ARRAY_ERRORS as err:
        raise _array_error(Path(path), err, remedy) from err


def _array_error(path: Path, err: BaseException, remedy: str) -> CorruptFileError:
    what = "missing" if isinstance(err, FileNotFoundError) else (
        f"cannot be read ({type(err).__name__}: {err}): the file is truncated or damaged"
    )  # fmt: skip
    return CorruptFileError(f"{path}: {what}." + (f" {remedy}" if remedy else ""))


# ----------------------------------------------------------------------------- images


def read_image(path: str | Path) -> np.ndarray:
    """Decode an 8-bit image file to uint8 (H, W) for greyscale or (H, W, 3) for colour.

    Palette, alpha and other modes are converted to RGB, so callers only ever see L or RGB. A
    missing, truncated or non-image file raises `CorruptFileError` naming it.
    """
    with _decoding(Path(path), "an image"):
        with Image.open(path) as img:
            if img.mode not in ("L", "RGB"):
                img = img.convert("RGB")
            array = np.array(img)
    if array.dtype != np.uint8:
        raise CorruptFileError(f"{path}: expected an 8-bit image, got dtype {array.dtype}")
    return array


class _decoding:  # noqa: N801 - used as a context manager, read as a phrase
    """Turn what Pillow raises for a bad file (OSError "image file is truncated", Unidentified
    ImageError, SyntaxError from a broken header, a decompression bomb) into one
    `CorruptFileError` that names the file and says what to do."""

    def __init__(self, path: Path, what: str) -> None:
        self.path, self.what = path, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type | None, err: BaseException | None, tb: object) -> bool:
        if err is None or isinstance(err, CorruptFileError):
            return False
        if isinstance(err, FileNotFoundError):
            raise CorruptFileError(f"{self.path}: missing; {self.what} is expected there") from err
        if isinstance(err, OSError | SyntaxError | ValueError | Image.DecompressionBombError):
            raise CorruptFileError(
                f"{self.path}: cannot be decoded as {self.what} ({err}): the file is truncated, "
                "damaged or not an image. Replace it with a good copy (or remove it) and rerun"
            ) from err
        return False


# ----------------------------------------------------------------------------- Sketchy


def sketchy_layout_root(root: str | Path) -> Path:
    """The ``256x256`` folder of a Sketchy tree under ``root`` (``root`` may also be that folder's
    parent ``rendered_256x256``)."""
    root = Path(root)
    for candidate in (root / "rendered_256x256" / "256x256", root / "256x256"):
        if candidate.is_dir():
            return candidate
    return root / "rendered_256x256" / "256x256"


def list_sketchy(root: str | Path) -> pd.DataFrame:
    """List a Sketchy tree: ``rendered_256x256/256x256/{photo,sketch}/tx_000000000000/<class>/``.

    Photos are ``<photo_id>.jpg`` (or .png); sketches are ``<photo_id>-<k>.png`` and belong to
    photo ``<photo_id>`` of the same class. A sketch whose photo is missing is an error (the
    message lists a few), never silently kept.

    Returns:
        one row per file, sorted by (domain, class_name, photo_id, sketch_index), columns
        ``domain`` ("photo" | "sketch"), ``class_name``, ``photo_id``, ``sketch_index`` (int64,
        -1 for photos) and ``source_path`` (absolute path as str).
    """
    base = sketchy_layout_root(root)
    folders = {d: base / d / "tx_000000000000" for d in ("photo", "sketch")}
    for domain, folder in folders.items():
        if not folder.is_dir():
            raise LayoutError(
                f"Sketchy {domain} folder not found: {folder.resolve()} (expected "
                f"rendered_256x256/256x256/{domain}/tx_000000000000/<class>/ under {root})"
            )
    rows: list[tuple[str, str, str, int, str]] = []
    photos: set[tuple[str, str]] = set()
    for class_dir in sorted(p for p in folders["photo"].iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.name.startswith(".") or f.suffix.lower() not in SKETCHY_PHOTO_SUFFIXES:
                continue
            photos.add((class_dir.name, f.stem))
            rows.append(("photo", class_dir.name, f.stem, -1, str(f.resolve())))
    orphans: list[str] = []
    for class_dir in sorted(p for p in folders["sketch"].iterdir() if p.is_dir()):
        for f in sorted(class_dir.iterdir()):
            if f.name.startswith(".") or f.suffix.lower() != ".png":
                continue
            photo_id, sep, k = f.stem.rpartition("-")
            if not sep or not k.isdigit():
                raise LayoutError(f"{f}: sketch file name must be <photo_id>-<k>.png")
            if (class_dir.name, photo_id) not in photos:
                orphans.append(f"{class_dir.name}/{f.name}")
                continue
            rows.append(("sketch", class_dir.name, photo_id, int(k), str(f.resolve())))
    if orphans:
        raise LayoutError(
            f"{len(orphans)} sketch(es) under {folders['sketch']} have no photo of the same class "
            f"and id under {folders['photo']}, e.g. {', '.join(orphans[:5])}"
        )
    if not photos:
        raise LayoutError(f"no photos found under {folders['photo']}")
    table = pd.DataFrame(
        rows, columns=["domain", "class_name", "photo_id", "sketch_index", "source_path"]
    )
    table["sketch_index"] = table["sketch_index"].astype(np.int64)
    return table.sort_values(["domain", "class_name", "photo_id", "sketch_index"]).reset_index(
        drop=True
    )
