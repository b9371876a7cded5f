"""validate_dataset's entry checks: missing files, unknown kinds and bad arguments fail early
with a message naming what is wrong."""

from __future__ import annotations

import pytest

from simlearn.validation import validate_dataset


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        validate_dataset(tmp_path / "nowhere")


def test_missing_meta(images_dir):
    (images_dir / "meta.json").unlink()
    with pytest.raises(FileNotFoundError, match="meta.json is missing"):
        validate_dataset(images_dir)


def test_missing_manifest(images_dir):
    (images_dir / "manifest.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="manifest.parquet is missing"):
        validate_dataset(images_dir)


def test_missing_image_array(images_dir):
    (images_dir / "images.npy").unlink()
    with pytest.raises(FileNotFoundError, match="images.npy is missing"):
        validate_dataset(images_dir)


@pytest.mark.parametrize("kind", ["audio", None])
def test_unknown_kind(images_dir, ds, kind):
    meta = ds.read_meta(images_dir)
    meta["kind"] = kind
    ds.write_meta(images_dir, meta)
    with pytest.raises(ValueError, match=f"kind {kind!r} is not supported; allowed: images"):
        validate_dataset(images_dir)


def test_images_meta_without_required_key(images_dir, ds):
    meta = ds.read_meta(images_dir)
    del meta["num_classes"]
    ds.write_meta(images_dir, meta)
    with pytest.raises(ValueError, match="num_classes"):
        validate_dataset(images_dir)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_rows_per_split": -1}, "min_rows_per_split must be an int >= 0, got -1"),
        ({"min_rows_per_split": 1.5}, "min_rows_per_split must be an int >= 0, got 1.5"),
        ({"min_valid_fraction": 1.5}, r"min_valid_fraction must lie in \[0, 1\], got 1.5"),
        ({"splits": "train"}, "splits must be a sequence of split names or None, got 'train'"),
    ],
)
def test_bad_arguments(images_dir, kwargs, message):
    with pytest.raises(ValueError, match=message):
        validate_dataset(images_dir, **kwargs)


def _validate_stage():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "stages" / "validate.py"
    spec = importlib.util.spec_from_file_location("validate_stage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stage_reports_a_truncated_array_and_a_missing_folder(images_dir, tmp_path, capsys):
    import json

    stage = _validate_stage()
    params = tmp_path / "params.yaml"
    params.write_text("datasets:\n  tiny: {source: digits}\n")
    array = images_dir / "images.npy"
    array.write_bytes(array.read_bytes()[:-100])
    reports = tmp_path / "reports"
    assert stage.main(["tiny", str(images_dir), str(reports), "--params", str(params)]) == 1
    err = capsys.readouterr().err
    assert "validate@tiny: FAILED" in err and "files.loads" in err and "images.npy" in err
    saved = json.loads((reports / "tiny.json").read_text())
    assert saved["success"] is False
    # a dataset folder that was never built: the message, not a traceback
    assert (
        stage.main(["tiny", str(tmp_path / "nowhere"), str(reports), "--params", str(params)]) == 1
    )
    assert "validate@tiny: FAILED" in capsys.readouterr().err
