"""data/<dataset>/digest.json: written by every build, and checked by validate@ before its suite.

train@, embed@ and evaluate@ depend on that file instead of the dataset folder (dvc.yaml), so it
must change exactly when the folder does, and a folder edited behind its back must be refused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from simlearn.data.canonical import (
    DIGEST_FILE,
    content_digest,
    digest_mismatch,
    parquet_content,
    write_content_digest,
)
from simlearn.data.sources import DatasetConfig, build_dataset

ROOT = Path(__file__).resolve().parents[2]


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "stages" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _md5sum_listing_md5(folder: Path) -> tuple[str, int]:
    """coreutils' md5sum of every file but digest.json, sorted by path, then the MD5 of that;
    a Parquet file's line holds the MD5 of its table instead (parquet_content, tested below)."""
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != DIGEST_FILE
    )
    out = subprocess.run(
        ["md5sum", "--", *names], cwd=folder, capture_output=True, text=True, check=True
    ).stdout
    lines = []
    for line in out.splitlines(keepends=True):
        name = line.split("  ", 1)[1].rstrip("\n")
        if name.endswith(".parquet"):
            line = f"{hashlib.md5(parquet_content(folder / name)).hexdigest()}  {name}\n"
        lines.append(line)
    return hashlib.md5("".join(lines).encode()).hexdigest(), len(names)


@pytest.mark.parametrize(
    ("source", "extra"),
    [
        ("digits", {}),
        ("sketch_synthetic", {"photos_per_class": 2, "sketches_per_photo": 2}),
        ("motorcycle", {}),
    ],
)
def test_every_build_writes_the_digest_of_exactly_its_files(tmp_path, source, extra):
    out = tmp_path / source
    build_dataset(source, DatasetConfig(source=source, seed=1, **extra), out)
    digest = json.loads((out / DIGEST_FILE).read_text())
    md5, files = _md5sum_listing_md5(out)
    assert digest["md5"] == md5 and digest["files"] == files
    assert digest["bytes"] == sum(
        len(parquet_content(p)) if p.suffix == ".parquet" else p.stat().st_size
        for p in out.rglob("*")
        if p.is_file() and p.name != DIGEST_FILE
    )
    # a rebuild with the same config gives the same digest (the stages downstream stay cached)
    again = tmp_path / "again"
    build_dataset(source, DatasetConfig(source=source, seed=1, **extra), again)
    assert json.loads((again / DIGEST_FILE).read_text()) == digest


def test_validate_refuses_a_folder_edited_after_its_download_in_one_message(tmp_path, capsys):
    out = tmp_path / "data" / "sk"
    cfg = {"source": "sketch_synthetic", "photos_per_class": 2, "sketches_per_photo": 2}
    build_dataset("sk", DatasetConfig(seed=1, **cfg), out)
    params = tmp_path / "params.yaml"
    params.write_text(json.dumps({"datasets": {"sk": cfg}}))
    validate = _stage("validate")
    argv = ["sk", str(out), str(tmp_path / "reports"), "--params", str(params)]
    assert validate.main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    victim = next((out / "photo").rglob("*.png"))
    pixels = np.asarray(Image.open(victim)).copy()
    pixels[0, 0] ^= 1  # one pixel, a valid PNG: only the digest can tell
    Image.fromarray(pixels).save(victim)
    assert digest_mismatch(out) is not None
    assert validate.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("FAILED") == 1 and "Traceback" not in err
    assert f"{out} changed after its download wrote it" in err
    assert "dvc repro -f -s download@sk" in err


def test_content_digest_equals_md5sum_of_md5sum_and_follows_every_kind_of_change(tmp_path):
    folder = tmp_path / "ds"
    (folder / "photo" / "cup").mkdir(parents=True)
    (folder / "photo" / "cup" / "a b.png").write_bytes(b"\x89PNG" + bytes(range(256)))
    (folder / "images.npy").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    (folder / "meta.json").write_text("{}\n")
    digest = write_content_digest(folder)
    assert digest == {"md5": _md5sum_listing_md5(folder)[0], "files": 3, "bytes": 4 + 256 + 100 + 3}
    assert json.loads((folder / DIGEST_FILE).read_text()) == digest
    assert content_digest(folder) == digest  # digest.json itself is left out
    assert digest_mismatch(folder) is None
    seen = {digest["md5"]}
    changes = [
        lambda: (folder / "images.npy").write_bytes(b"\x01" + bytes(99)),  # same size
        lambda: (folder / "photo" / "cup" / "a b.png").rename(folder / "photo" / "cup" / "c.png"),
        lambda: (folder / "extra.txt").write_text(""),  # an empty file added
        lambda: (folder / "meta.json").unlink(),
    ]
    for change in changes:
        change()
        now = content_digest(folder)
        assert now["md5"] == _md5sum_listing_md5(folder)[0] and now["md5"] not in seen
        seen.add(now["md5"])
        why = digest_mismatch(folder)
        assert why is not None and f"md5 {digest['md5']}" in why and str(folder) in why
    (folder / DIGEST_FILE).unlink()
    assert "digest.json cannot be read" in digest_mismatch(folder)


def test_a_parquet_file_counts_by_its_table_not_by_its_writer_or_layout(tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = pd.DataFrame(
        {"split": ["train", "test", "val"], "label": [3, 1, 2], "mean": [0.25, 0.5, 1 / 3]}
    )
    frame.to_parquet(tmp_path / "pandas.parquet", index=False)  # pandas' and pyarrow's versions
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(
        {"writer": "another library 99.0"}
    )
    pq.write_table(table, tmp_path / "zstd.parquet", compression="zstd", row_group_size=2)
    pq.write_table(table.replace_schema_metadata(None), tmp_path / "plain.parquet",
                   compression="none", data_page_version="1.0")  # fmt: skip
    files = [tmp_path / f"{n}.parquet" for n in ("pandas", "zstd", "plain")]
    assert len({f.read_bytes() for f in files}) == 3  # three files of other bytes
    assert len({parquet_content(f) for f in files}) == 1  # one table
    for other in (
        frame.assign(mean=[0.25, 0.5, 0.3333]),  # a value
        frame.rename(columns={"label": "class"}),  # a column's name
        frame.astype({"label": "int32"}),  # a column's type
        frame.iloc[[1, 0, 2]],  # the rows' order
    ):
        other.to_parquet(tmp_path / "other.parquet", index=False)
        assert parquet_content(tmp_path / "other.parquet") != parquet_content(files[0])
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(pa.ArrowInvalid):
        parquet_content(tmp_path / "broken.parquet")
