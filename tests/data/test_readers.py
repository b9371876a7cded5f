"""Readers on small files written in the true on-disk formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simlearn.data.errors import LayoutError
from simlearn.data.readers import (
    list_sketchy,
    read_image,
    read_kitti_disparity,
    read_middlebury_calib,
    read_pfm,
    write_kitti_disparity,
    write_pfm,
)

# ----------------------------------------------------------------------------- PFM


def _pfm_bytes(magic: bytes, top_down: np.ndarray, scale: str, dtype: str) -> bytes:
    """A PFM file built by hand: header, then rows bottom-up in the given byte order."""
    h, w = top_down.shape[:2]
    body = np.ascontiguousarray(top_down[::-1]).astype(dtype).tobytes()
    return magic + f"\n{w} {h}\n{scale}\n".encode() + body


KNOWN = np.array([[0.5, 1.0, 2.0], [np.inf, -3.25, 7.0]], dtype=np.float32)  # (2, 3)


@pytest.mark.parametrize(("scale", "dtype"), [("-1.0", "<f4"), ("1.0", ">f4"), ("-0.5", "<f4")])
def test_read_pfm_greyscale_both_byte_orders_and_bottom_up(tmp_path, scale, dtype):
    path = tmp_path / "d.pfm"
    path.write_bytes(_pfm_bytes(b"Pf", KNOWN, scale, dtype))
    out = read_pfm(path)
    assert out.dtype == np.float32 and out.dtype.isnative
    assert out.shape == (2, 3)
    np.testing.assert_array_equal(out, KNOWN)  # first row of the array = top row of the image
    assert np.isinf(out[1, 0])  # inf survives: it is the "no ground truth" marker


def test_read_pfm_colour_channels_are_interleaved(tmp_path):
    rgb = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)  # (H, W, 3)
    path = tmp_path / "c.pfm"
    path.write_bytes(_pfm_bytes(b"PF", rgb, "-1", "<f4"))
    np.testing.assert_array_equal(read_pfm(path), rgb)


def test_read_pfm_accepts_width_and_height_on_separate_lines(tmp_path):
    body = np.array([[3.0, 4.0], [1.0, 2.0]], "<f4").tobytes()  # bottom row first
    path = tmp_path / "s.pfm"
    path.write_bytes(b"Pf\n2\n2\n-1.0\n" + body)
    np.testing.assert_array_equal(read_pfm(path), [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("little", [True, False])
def test_write_pfm_writes_exactly_the_hand_made_bytes(tmp_path, little):
    path = write_pfm(tmp_path / "w.pfm", KNOWN, little_endian=little)
    expected = _pfm_bytes(b"Pf", KNOWN, "-1.0" if little else "1.0", "<f4" if little else ">f4")
    assert path.read_bytes() == expected


def test_read_pfm_rejects_bad_header_and_truncation(tmp_path):
    bad = tmp_path / "bad.pfm"
    bad.write_bytes(b"P6\n2 2\n255\n" + bytes(12))
    with pytest.raises(ValueError, match="not a PFM"):
        read_pfm(bad)
    short = tmp_path / "short.pfm"
    short.write_bytes(b"Pf\n4 4\n-1\n" + bytes(8))
    with pytest.raises(ValueError, match="truncated: 2 of 16"):
        read_pfm(short)


# ----------------------------------------------------------------------------- KITTI


def test_sixteen_bit_png_round_trips_exactly(tmp_path):
    raw = np.array([[0, 1, 255, 256], [65535, 12345, 0, 2]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "r.png")
    with Image.open(tmp_path / "r.png") as img:
        back = np.array(img)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, raw)


def test_read_kitti_disparity_divides_by_256_and_marks_zero_invalid(tmp_path):
    raw = np.array([[0, 256, 512, 1], [25600, 0, 65535, 384]], dtype=np.uint16)
    Image.fromarray(raw).save(tmp_path / "000000_10.png")  # as KITTI writes them
    d = read_kitti_disparity(tmp_path / "000000_10.png")
    assert d.dtype == np.float32 and d.shape == (2, 4)
    expected = np.array([[np.nan, 1.0, 2.0, 1 / 256], [100.0, np.nan, 65535 / 256, 1.5]])
    np.testing.assert_array_equal(np.isnan(d), np.isnan(expected))
    np.testing.assert_allclose(d[~np.isnan(d)], expected[~np.isnan(expected)], rtol=0, atol=0)


def test_write_kitti_disparity_round_trips_on_the_256_grid(tmp_path):
    d = np.array([[np.nan, 0.5, 10.25], [255.99609375, 3.0, np.nan]])
    back = read_kitti_disparity(write_kitti_disparity(tmp_path / "d.png", d))
    np.testing.assert_array_equal(back, d.astype(np.float32))  # NaN == NaN for this helper


def test_read_kitti_disparity_rejects_eight_bit_png(tmp_path):
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "e.png")
    with pytest.raises(ValueError, match="16-bit"):
        read_kitti_disparity(tmp_path / "e.png")


# ----------------------------------------------------------------------------- Middlebury

# Middlebury 2014 Motorcycle, full resolution
MOTORCYCLE_CALIB = """cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]
cam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]
doffs=124.343
baseline=193.001
width=2964
height=2000
ndisp=270
isint=0
vmin=23
vmax=245
dyavg=0
dymax=0
"""


def test_read_middlebury_calib_worked_example(tmp_path):
    (tmp_path / "calib.txt").write_text(MOTORCYCLE_CALIB)
    c = read_middlebury_calib(tmp_path / "calib.txt")
    np.testing.assert_array_equal(
        c["cam0"], [[3979.911, 0, 1244.772], [0, 3979.911, 1019.507], [0, 0, 1]]
    )
    assert c["cam1"].shape == (3, 3) and c["cam1"][0, 2] == 1369.115
    assert (c["width"], c["height"], c["ndisp"], c["isint"]) == (2964, 2000, 270, 0)
    assert all(isinstance(c[k], int) for k in ("width", "height", "ndisp", "isint"))
    assert (c["vmin"], c["vmax"], c["baseline"]) == (23.0, 245.0, 193.001)
    # doffs is the x-difference of the principal points: cx1 - cx0
    assert c["cam1"][0, 2] - c["cam0"][0, 2] == pytest.approx(c["doffs"], abs=1e-9)
    # depth of the nearest surface (vmax): Z = baseline * f / (d + doffs) = 2079.711 mm
    z = c["baseline"] * c["cam0"][0, 0] / (c["vmax"] + c["doffs"])
    assert z == pytest.approx(2079.711, abs=1e-3)


def test_read_middlebury_calib_names_the_bad_line(tmp_path):
    (tmp_path / "calib.txt").write_text("width=10\nndisp=abc\n")
    with pytest.raises(ValueError, match=r"calib.txt:2: bad value for ndisp"):
        read_middlebury_calib(tmp_path / "calib.txt")


# ----------------------------------------------------------------------------- images


def test_read_image_keeps_grey_and_rgb_and_converts_palette(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), grey)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (2, 2, 3) and (out[..., 0] == 200).all()


# ----------------------------------------------------------------------------- Sketchy


def _sketchy_tree(root: Path, photos: dict[str, list[str]], sketches: dict[str, list[str]]) -> Path:
    base = root / "rendered_256x256" / "256x256"
    for domain, files in (("photo", photos), ("sketch", sketches)):
        for cls, names in files.items():
            folder = base / domain / "tx_000000000000" / cls
            folder.mkdir(parents=True, exist_ok=True)
            for n in names:
                fmt = "JPEG" if n.endswith(".jpg") else "PNG"
                Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(folder / n, fmt)
    return root


def test_list_sketchy_pairs_each_sketch_with_its_photo(tmp_path):
    root = _sketchy_tree(
        tmp_path,
        {"cat": ["n1_1.jpg", "n1_2.jpg"], "dog": ["n2_7.jpg"]},
        {"cat": ["n1_1-1.png", "n1_1-2.png", "n1_2-5.png"], "dog": ["n2_7-1.png"]},
    )
    table = list_sketchy(root)
    columns = ["domain", "class_name", "photo_id", "sketch_index", "source_path"]
    assert list(table.columns) == columns
    photos = table[table.domain == "photo"]
    sketches = table[table.domain == "sketch"]
    assert sorted(zip(photos.class_name, photos.photo_id, strict=True)) == [
        ("cat", "n1_1"), ("cat", "n1_2"), ("dog", "n2_7"),
    ]  # fmt: skip
    assert sorted(zip(sketches.photo_id, sketches.sketch_index, strict=True)) == [
        ("n1_1", 1), ("n1_1", 2), ("n1_2", 5), ("n2_7", 1),
    ]  # fmt: skip
    assert (photos.sketch_index == -1).all() and table.sketch_index.dtype == np.int64
    assert all(Path(p).is_file() and Path(p).is_absolute() for p in table.source_path)
    # the same listing from the rendered_256x256 folder itself
    assert list_sketchy(root / "rendered_256x256").equals(table)


def test_list_sketchy_reports_sketches_without_photo(tmp_path):
    root = _sketchy_tree(
        tmp_path,
        {"cat": ["n1_1.jpg"], "dog": ["n2_7.jpg"]},
        {"cat": ["n1_1-1.png", "n9_9-1.png"], "dog": ["n1_1-1.png"]},  # n1_1 is a cat, not a dog
    )
    with pytest.raises(ValueError, match=r"2 sketch\(es\).*cat/n9_9-1.png.*dog/n1_1-1.png"):
        list_sketchy(root)


def test_list_sketchy_missing_tree_names_the_expected_folder(tmp_path):
    with pytest.raises(LayoutError, match="photo/tx_000000000000"):
        list_sketchy(tmp_path)
