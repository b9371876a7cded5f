"""Source ``stereo_folder`` (simlearn.data.stereo_folder): a user's rectified pairs in left/,
right/ and disparity/, and the ``max_disparity`` key (stereo_folder, KITTI).

Pairs are small random textures whose right view is the left one shifted by a known disparity,
written in the real formats (PNG, JPEG, PFM, KITTI's 16-bit PNG) by the tests. Every error case
asserts the message's content and that nothing is left beside the output folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tests.data.test_sources import _kitti_tree

from simlearn.config import ConfigError, DatasetConfig, dataset_config
from simlearn.data.errors import CorruptFileError, DataError, LayoutError
from simlearn.data.readers import KITTI_DISPARITY_SCALE, write_kitti_disparity, write_pfm
from simlearn.data.sources import _meta, build_dataset, local_files_fingerprint

H, W = 12, 40


def _pair(rng: np.random.Generator, d: int, grey: bool = False) -> tuple[np.ndarray, ...]:
    """(left, right, disparity): right(x) = left(x + d), so left pixel x matches right x - d;
    the first d columns of the left view have no match and no ground truth."""
    shape = (H, W + d) if grey else (H, W + d, 3)
    scene = rng.integers(0, 256, shape, dtype=np.uint8)
    left, right = scene[:, d:], scene[:, :W]
    gt = np.full((H, W), float(d), dtype=np.float32)
    gt[:, :d] = np.inf
    return np.ascontiguousarray(left), np.ascontiguousarray(right), gt


def make_folder(
    root: Path,
    disparities: dict[str, int],
    *,
    gt: dict[str, str] | None = None,
    left_ext: dict[str, str] | None = None,
    grey: tuple[str, ...] = (),
) -> dict[str, tuple[np.ndarray, ...]]:
    """left/<stem>, right/<stem>.png, disparity/<stem>.<gt[stem]> ("pfm", "png", or "" for none)."""
    rng = np.random.default_rng(0)
    gt = gt or {}
    left_ext = left_ext or {}
    for sub in ("left", "right", "disparity"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    pairs = {}
    for stem, d in disparities.items():
        left, right, disparity = _pair(rng, d, grey=stem in grey)
        Image.fromarray(left).save(root / "left" / f"{stem}.{left_ext.get(stem, 'png')}")
        Image.fromarray(right).save(root / "right" / f"{stem}.png")
        kind = gt.get(stem, "pfm")
        if kind == "pfm":
            write_pfm(root / "disparity" / f"{stem}.pfm", disparity)
        elif kind == "png":
            write_kitti_disparity(root / "disparity" / f"{stem}.png", np.where(
                np.isfinite(disparity), disparity, np.nan))  # fmt: skip
        pairs[stem] = (left, right, disparity)
    return pairs


def _cfg(root: Path, **kw) -> DatasetConfig:
    return DatasetConfig(source="stereo_folder", path=str(root), **{"max_disparity": 16.0, **kw})


def _build(root: Path, out: Path, **kw):
    """Defaults to val_fraction 0.5: one of two pairs in val."""
    kw = {"val_fraction": 0.5, **kw}
    return build_dataset("mine", _cfg(root, **kw), out, out.parent / "downloads")


def _fails(root: Path, tmp_path: Path, error: type[Exception], *patterns: str, **kw) -> str:
    """Builds, expects ``error`` whose message matches every pattern, and checks that nothing
    was written: no output folder and no staging folder beside it."""
    out = tmp_path / "data" / "mine"
    with pytest.raises(error) as info:
        _build(root, out, **kw)
    message = str(info.value)
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)
    assert isinstance(info.value, DataError | ConfigError)  # the download stage prints these
    assert not out.exists() and list(out.parent.iterdir()) == []
    return message


# ----------------------------------------------------------------------------- layout


def test_pairs_pfm_and_kitti_png_ground_truth_are_stored_as_given(tmp_path, capsys):
    root = tmp_path / "pairs"
    pairs = make_folder(root, {"a": 3, "b": 5, "c": 7}, gt={"b": "png"}, left_ext={"c": "bmp"})
    (root / "left" / "notes.txt").write_text("not an image")
    (root / "right" / ".hidden.png").write_bytes(b"skipped")
    out = tmp_path / "data" / "mine"
    m = _build(root, out, seed=0, val_fraction=0.2)
    assert sorted(m["id"]) == ["a", "b", "c"]
    assert m["split"].value_counts().to_dict() == {"train": 2, "val": 1}  # round(3 x 0.2) = 1
    assert (m["max_disp"] == 16.0).all() and (m["channels"] == 3).all()
    for row in m.itertuples():
        left, right, gt = pairs[row.id]
        np.testing.assert_array_equal(np.asarray(Image.open(out / row.left_path)), left)
        np.testing.assert_array_equal(np.asarray(Image.open(out / row.right_path)), right)
        stored = np.load(out / row.disparity_path)
        d = int(gt[0, -1])
        np.testing.assert_array_equal(stored[:, d:], gt[:, d:])  # integers: exact in both formats
        assert np.isnan(stored[:, :d]).all()  # inf (PFM) and 0 (PNG) both mean "unknown"
        assert row.disp_max == d and row.valid_fraction == pytest.approx((W - d) / W)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "stereo" and meta["source"] == "stereo_folder"
    assert meta["config"]["path"] == str(root) and meta["config"]["max_disparity"] == 16.0
    assert meta["without_ground_truth"] == []
    assert "1 other file(s) ignored (e.g. left/notes.txt)" in capsys.readouterr().out


def test_split_is_seeded_like_kitti(tmp_path):
    from simlearn.data.splits import split_pairs

    root = tmp_path / "pairs"
    make_folder(root, {f"p{i}": 2 + i for i in range(6)})
    for seed in (0, 1):
        m = _build(root, tmp_path / f"out{seed}", seed=seed, val_fraction=0.34)
        expected = split_pairs([f"p{i}" for i in range(6)], val_fraction=0.34, seed=seed)
        assert dict(zip(m["id"], m["split"], strict=True)) == expected


def test_pairs_without_ground_truth_are_left_out_and_named(tmp_path, capsys):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 3, "b": 4, "c": 5, "nogt": 6}, gt={"nogt": ""})
    out = tmp_path / "data" / "mine"
    m = _build(root, out)
    assert sorted(m["id"]) == ["a", "b", "c"]
    assert json.loads((out / "meta.json").read_text())["without_ground_truth"] == ["nogt"]
    assert "1 without, left out" in capsys.readouterr().out


def test_one_pair_is_a_test_pair_scored_on_held_out_rows(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"only": 4})
    m = _build(root, tmp_path / "out")
    assert m["split"].tolist() == ["test"]  # the one-pair protocol of the stereo task


def test_greyscale_pairs_stay_grey_and_a_mixed_set_is_read_as_colour(tmp_path):
    grey_root, mixed_root = tmp_path / "grey", tmp_path / "mixed"
    make_folder(grey_root, {"a": 2, "b": 3}, grey=("a", "b"))
    m = _build(grey_root, tmp_path / "out_grey", val_fraction=0.5)
    assert (m["channels"] == 1).all()
    pairs = make_folder(mixed_root, {"a": 2, "b": 3}, grey=("a",))
    out = tmp_path / "out_mixed"
    m = _build(mixed_root, out, val_fraction=0.5)
    assert (m["channels"] == 3).all()
    row = m.set_index("id").loc["a"]
    stored = np.asarray(Image.open(out / row["left_path"]))
    np.testing.assert_array_equal(stored, np.repeat(pairs["a"][0][..., None], 3, axis=2))


def test_local_files_fingerprint_follows_the_folder(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    before = local_files_fingerprint(_cfg(root))
    assert before["files"] == 6 and before["local"] == str(root)
    (root / "disparity" / "b.pfm").unlink()
    assert local_files_fingerprint(_cfg(root))["sha256"] != before["sha256"]


# ----------------------------------------------------------------------------- errors


def test_path_that_is_no_folder(tmp_path):
    _fails(tmp_path / "nowhere", tmp_path, ConfigError, r"datasets\.mine\.path=", "no such folder")


def test_missing_right_folder_names_what_was_found(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2})
    (root / "right").rename(root / "Right views")
    _fails(root, tmp_path, LayoutError, r"no right/ folder", r"found: Right views/, disparity/")


def test_empty_left_folder(tmp_path):
    root = tmp_path / "pairs"
    for sub in ("left", "right", "disparity"):
        (root / sub).mkdir(parents=True)
    _fails(root, tmp_path, LayoutError, re.escape(str(root / "left")) + ": no image")


@pytest.mark.parametrize(
    ("remove", "pattern"),
    [
        ("right/b.png", r"1 left images have no partner .* in .*right \(left/b\.png\)"),
        ("left/b.png", r"1 right images have no partner .* in .*left \(right/b\.png\)"),
    ],
)
def test_an_image_without_its_partner_is_named(tmp_path, remove, pattern):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    (root / remove).unlink()
    if remove.startswith("left"):
        (root / "disparity" / "b.pfm").unlink()
    _fails(root, tmp_path, LayoutError, pattern, "rename or remove")


def test_a_disparity_map_without_its_left_view_is_named(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    (root / "disparity" / "b.pfm").rename(root / "disparity" / "B.pfm")
    _fails(root, tmp_path, LayoutError, r"1 disparity maps have no partner .*\(disparity/B\.pfm\)")


def test_two_files_with_one_name(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2})
    Image.new("RGB", (W, H)).save(root / "left" / "a.jpg")
    _fails(root, tmp_path, LayoutError, r"a\.jpg and a\.png", "keep one file per name")


@pytest.mark.parametrize("disparity_dir", ["missing", "empty"])
def test_no_ground_truth_at_all_is_refused(tmp_path, disparity_dir):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3}, gt={"a": "", "b": ""})
    if disparity_dir == "missing":
        (root / "disparity").rmdir()
    _fails(root, tmp_path, LayoutError, "no ground truth", r"<name>\.pfm", "16-bit")


@pytest.mark.parametrize("which", ["right", "disparity"])
def test_sizes_that_disagree_name_the_pair_and_the_sizes(tmp_path, which):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    if which == "right":
        Image.new("RGB", (W + 1, H)).save(root / "right" / "b.png")
        pattern = rf"b: left {W}x{H}, right {W + 1}x{H}, disparity {W}x{H}"
    else:
        write_pfm(root / "disparity" / "b.pfm", np.ones((H - 2, W), np.float32))
        pattern = rf"b: left {W}x{H}, right {W}x{H}, disparity {W}x{H - 2}"
    _fails(root, tmp_path, CorruptFileError, pattern, "resize or remove")


def test_ground_truth_above_max_disparity_names_the_files_and_the_value_needed(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 9, "c": 12})
    _fails(
        root, tmp_path, ConfigError,
        r"datasets\.mine\.max_disparity=8: the ground truth of 2 pair\(s\) exceeds it",
        r"disparity/c\.pfm \(12 px\), disparity/b\.pfm \(9 px\)",
        "at least 12",
        max_disparity=8.0,
    )  # fmt: skip


def test_a_file_that_is_no_image_is_named(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    (root / "right" / "b.png").write_bytes(b"this is not a PNG")
    _fails(root, tmp_path, CorruptFileError, re.escape(str(root / "right" / "b.png")),
           "cannot read the image")  # fmt: skip


def test_a_truncated_image_is_named_when_decoded(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    victim = root / "left" / "b.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (H, W, 3), np.uint8)).save(victim)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])  # the header survives, the pixels do not
    _fails(root, tmp_path, CorruptFileError, re.escape(str(victim)), "cannot decode the image")


def test_a_16_bit_view_is_refused(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2})
    Image.fromarray(np.zeros((H, W), np.uint16)).save(root / "left" / "a.png")
    _fails(root, tmp_path, CorruptFileError, r"left/a\.png: a I;16 image", "8-bit")


def test_a_truncated_pfm_is_named(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    victim = root / "disparity" / "b.pfm"
    victim.write_bytes(victim.read_bytes()[:-40])
    _fails(root, tmp_path, CorruptFileError, re.escape(str(victim)),
           "cannot read the disparity map", "PFM")  # fmt: skip


def test_an_8_bit_png_disparity_says_how_pngs_are_read(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3}, gt={"b": "png"})
    Image.fromarray(np.full((H, W), 3, np.uint8)).save(root / "disparity" / "b.png")
    _fails(root, tmp_path, CorruptFileError, r"disparity/b\.png: cannot read",
           "16-bit format", "or as PFM")  # fmt: skip


def test_negative_disparities_suggest_swapped_views(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2})
    write_pfm(root / "disparity" / "a.pfm", np.full((H, W), -2.0, np.float32))
    _fails(root, tmp_path, CorruptFileError, r"480 negative disparities \(down to -2 px\)",
           "swapped")  # fmt: skip


def test_a_split_that_leaves_val_empty_says_which_fractions_work(tmp_path):
    root = tmp_path / "pairs"
    make_folder(root, {"a": 2, "b": 3})
    _fails(root, tmp_path, ConfigError, r"val_fraction=0\.2: of 2 pairs .* 0 in val",
           r"in \[0\.25, 0\.75\) .* e\.g\. 0\.5 holds out one pair", val_fraction=0.2)  # fmt: skip


def test_the_download_stage_prints_one_message_without_traceback(tmp_path, monkeypatch, capsys):
    import yaml
    from stages import download

    root = tmp_path / "pairs"
    make_folder(root, {"a": 2})
    (root / "right" / "a.png").unlink()
    params = {"datasets": {"mine": {"source": "stereo_folder", "path": "pairs",
                                    "max_disparity": 16}}}  # fmt: skip
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    assert download.main(["mine", "data/mine"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("download@mine failed:\n") and "left/a.png" in err
    assert "Traceback" not in err and not (tmp_path / "data" / "mine").exists()


# ----------------------------------------------------------------------------- max_disparity


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"source": "stereo_folder", "path": "p"}, r"max_disparity=None: source 'stereo_folder'"),
        ({"source": "stereo_folder"}, r"path=None: .* left/, right/ and disparity/"),
        ({"source": "stereo_folder", "path": "p", "max_disparity": 0}, r"must be > 0"),
        ({"source": "stereo_folder", "path": "p", "max_disparity": "wide"}, "expected a number"),
        ({"source": "motorcycle", "max_disparity": 100}, r"not 'motorcycle' .* remove it"),
        ({"source": "kitti2015", "path": "p"}, r"only used by sources .*stereo_folder"),
    ],
)
def test_max_disparity_and_path_are_checked_when_params_load(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        dataset_config({"datasets": {"mine": data}}, "mine")


def test_max_disparity_is_read_as_a_float_and_kept_out_of_other_meta():
    cfg, _ = dataset_config({"datasets": {"k": {"source": "kitti2012", "max_disparity": 192}}}, "k")
    assert cfg.max_disparity == 192.0 and isinstance(cfg.max_disparity, float)
    assert _meta(cfg)["config"]["max_disparity"] == 192.0
    for source in ("kitti2012", "motorcycle", "digits"):  # their meta.json stay as they were
        config = _meta(DatasetConfig(source=source))["config"]
        assert "max_disparity" not in config and "path" not in config


def test_kitti_max_disparity_replaces_256_and_a_lower_one_names_the_file(tmp_path):
    downloads = tmp_path / "downloads"
    disps = _kitti_tree(downloads / "training", n=3)
    top = max(np.nanmax(d) for d in disps.values())
    assert 150 < top < 200  # the tree's ground truth: 1/256 .. 200 px
    m = build_dataset(
        "k", DatasetConfig(source="kitti2015", max_disparity=300.0), tmp_path / "k300", downloads
    )
    assert (m["max_disp"] == 300.0).all()
    out = tmp_path / "k100"
    with pytest.raises(
        ConfigError, match=r"datasets\.k\.max_disparity=100: .*disp_noc_0/0000"
    ) as e:
        build_dataset("k", DatasetConfig(source="kitti2015", max_disparity=100.0), out, downloads)
    assert "at least" in str(e.value) and not out.exists()
    assert KITTI_DISPARITY_SCALE == 256.0  # why KITTI's own bound is 256 px
