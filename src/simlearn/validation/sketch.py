"""Suite for kind "sketch": `photo/<class>/<photo_id>.png`, `sketch/<class>/<photo_id>-<k>.png`
and one manifest row per photo or sketch.

Tables validated:
- `manifest`: the raw manifest has the contract's columns and at least one row.
- `samples`: manifest rows plus values recomputed from the files (`file_*` size, channels and
  sha256), each sketch's link to its photo (found, file present, same class, same split), each
  photo's number of sketches, and leakage flags.
- `splits`: one row per expected split with its number of photos and sketches.
- `classes`: one row per class 0..C-1 with its number of train photos and train sketches.

The manifest `sha256` may be the digest of the file's bytes or of its decoded pixels (as PIL
loads them); the recomputed `file_sha256` is whichever of the two the manifest records.

`tree_checks(root)` builds the checks of a raw tree in the Sketchy layout
(`rendered_256x256/256x256/{photo,sketch}/tx_000000000000/<class>/`) before it is
canonicalised (run by :func:`simlearn.validation.runner.validate_sketchy_tree`), with one table:
- `tree`: one row per image file (`domain`, `class_name`, `file`), with whether its name parses
  (`<photo_id>.jpg|png` for photos, `<photo_id>-<k>.png` for sketches), whether a sketch's photo
  exists in the same class folder, and each photo's number of sketches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from great_expectations.expectations import Expectation

from simlearn.validation.common import (
    TableCheck,
    add_leakage_flags,
    class_table,
    expect_between,
    expect_columns,
    expect_equal,
    expect_in_set,
    expect_rows,
    expect_true,
    expect_type,
    expect_unique,
    expected_splits,
    id_and_split_expectations,
    image_header,
    label_matches_class_name,
    leakage_expectations,
    pixel_stat_expectations,
    read_image,
    resolve,
    sha256_hex,
    split_expectations,
    split_table,
    with_columns,
)

COLUMNS: tuple[str, ...] = (
    "id", "domain", "class_name", "label", "photo_id", "path", "split", "height", "width",
    "channels", "mean", "std", "sha256",
)  # fmt: skip
DOMAINS: tuple[str, ...] = ("photo", "sketch")


def build_tables(
    data_dir: Path,
    meta: Mapping[str, Any],
    manifest: pd.DataFrame,
    *,
    min_rows_per_split: int,
    splits: Sequence[str] | None = None,
) -> list[TableCheck]:
    """The tables and expectations of the sketch suite for the dataset in `data_dir`."""
    frame = with_columns(manifest, COLUMNS)
    meta_names = meta.get("class_names")
    class_names = (
        [str(c) for c in meta_names]
        if meta_names is not None
        else sorted({str(c) for c in frame["class_name"].dropna()})
    )
    num_classes = int(meta.get("num_classes", len(class_names)))
    samples = _samples_frame(data_dir, frame, None if meta_names is None else class_names)

    is_photo = samples["domain"] == "photo"
    is_sketch = samples["domain"] == "sketch"
    splits_frame = split_table(
        samples,
        expected_splits(meta, manifest, splits),
        meta,
        {"photos": is_photo, "sketches": is_sketch},
    )
    classes = class_table(
        samples,
        [class_names[k] if k < len(class_names) else "" for k in range(num_classes)],
        {"train_photos": is_photo, "train_sketches": is_sketch},
    )
    manifest_checks = [expect_columns(COLUMNS, "manifest"), expect_rows(1, "manifest")]
    split_checks = split_expectations(splits_frame, min_rows_per_split, ("photos", "sketches"))
    class_checks = [
        expect_between("train_photos", "every class 0..C-1 has train photos", 1),
        expect_between("train_sketches", "every class 0..C-1 has train sketches", 1),
    ]
    return [
        TableCheck("manifest", manifest, manifest_checks, []),
        TableCheck("samples", samples, _sample_expectations(num_classes), ["id"]),
        TableCheck("splits", splits_frame, split_checks, ["split"]),
        TableCheck("classes", classes, class_checks, ["label", "class_name"]),
    ]


def _file_facts(path: Path | None, manifest_sha: Any) -> dict[str, Any]:
    """Size, channels and digest of one image file; `ok` False when missing or not an image."""
    header = None if path is None else image_header(path)
    if header is None:
        return {"ok": False, "height": None, "width": None, "channels": None, "sha256": None}
    digest = sha256_hex(path.read_bytes())
    if digest != manifest_sha:  # the manifest may hash the decoded pixels instead of the file
        pixels = read_image(path)
        if pixels is not None:
            pixel_digest = sha256_hex(np.ascontiguousarray(pixels).tobytes())
            digest = pixel_digest if pixel_digest == manifest_sha else digest
    height, width, channels = header
    return {"ok": True, "height": height, "width": width, "channels": channels, "sha256": digest}


def _samples_frame(
    data_dir: Path, frame: pd.DataFrame, class_names: list[str] | None
) -> pd.DataFrame:
    """Adds per-row file facts, sketch-to-photo links, sketches per photo and leakage flags."""
    facts = [
        _file_facts(resolve(data_dir, p), s)
        for p, s in zip(frame["path"], frame["sha256"], strict=True)
    ]
    frame["file_ok"] = [f["ok"] for f in facts]
    for key in ("height", "width", "channels"):
        frame[f"file_{key}"] = pd.Series([f[key] for f in facts], dtype="Int64")
    frame["file_sha256"] = pd.Series([f["sha256"] for f in facts], dtype=object)
    frame["class_name_matches_label"] = label_matches_class_name(
        frame["label"], frame["class_name"], class_names
    )

    is_photo = (frame["domain"] == "photo").to_numpy()
    is_sketch = (frame["domain"] == "sketch").to_numpy()
    photo_rows: dict[Any, int] = {}  # photo_id -> row of its (first) photo
    for row in np.flatnonzero(is_photo):
        photo_rows.setdefault(frame.at[row, "photo_id"], int(row))
    sketches_per_photo = frame.loc[is_sketch, "photo_id"].value_counts()

    # Per-row links; None where a link does not apply (photos, or a sketch without its photo).
    found: list[bool | None] = []
    photo_ok: list[bool | None] = []
    same_class: list[bool | None] = []
    same_split: list[bool | None] = []
    for row in range(len(frame)):
        photo = photo_rows.get(frame.at[row, "photo_id"]) if is_sketch[row] else None
        found.append(bool(photo is not None) if is_sketch[row] else None)
        if photo is None:
            photo_ok.append(None)
            same_class.append(None)
            same_split.append(None)
            continue
        photo_ok.append(bool(frame.at[photo, "file_ok"]))
        same_class.append(
            bool(
                frame.at[row, "class_name"] == frame.at[photo, "class_name"]
                and frame.at[row, "label"] == frame.at[photo, "label"]
            )
        )
        same_split.append(bool(frame.at[row, "split"] == frame.at[photo, "split"]))
    frame["photo_in_manifest"] = pd.Series(found, dtype=object)
    frame["photo_file_exists"] = pd.Series(photo_ok, dtype=object)
    frame["same_class_as_photo"] = pd.Series(same_class, dtype=object)
    frame["same_split_as_photo"] = pd.Series(same_split, dtype=object)
    frame["photo_key"] = frame["photo_id"].where(is_photo, None).astype(object)
    frame["num_sketches"] = pd.Series(
        [
            int(sketches_per_photo.get(pid, 0)) if p else None
            for pid, p in zip(frame["photo_id"], is_photo, strict=True)
        ],
        dtype="Int64",
    )
    add_leakage_flags(frame, "file_sha256")
    return frame


def _sample_expectations(num_classes: int) -> list[Expectation]:
    return [
        *id_and_split_expectations(),
        expect_in_set("domain", DOMAINS, "domain is photo or sketch"),
        expect_type("label", "int64", "label is int64"),
        expect_between("label", f"label lies in 0..{num_classes - 1}", 0, num_classes - 1),
        expect_true("class_name_matches_label", "class_name agrees with label"),
        expect_true("file_ok", "the image file exists and decodes"),
        expect_equal("file_height", "height", "manifest height equals the file"),
        expect_equal("file_width", "width", "manifest width equals the file"),
        expect_equal("file_channels", "channels", "manifest channels equals the file"),
        expect_equal("file_sha256", "sha256", "manifest sha256 equals the file's"),
        *pixel_stat_expectations(("mean", "std")),
        expect_unique("photo_key", "photo ids are unique among photos"),
        expect_true("photo_in_manifest", "every sketch's photo_id is a photo of the manifest"),
        expect_true("photo_file_exists", "every sketch's photo file exists"),
        expect_true("same_class_as_photo", "every sketch has its photo's class and label"),
        expect_true("same_split_as_photo", "every sketch is in its photo's split"),
        expect_between("num_sketches", "every photo has at least one sketch", 1),
        *leakage_expectations(),
    ]


# ----------------------------------------------------------------------------- raw Sketchy tree

SKETCHY_VARIANT = "tx_000000000000"  # Sketchy's folder of the non-augmented renderings
PHOTO_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def sketchy_tree_table(root: Path) -> pd.DataFrame:
    """One row per image file of the Sketchy tree under `root` (the folder holding
    `rendered_256x256`, or `rendered_256x256` itself, or its `256x256`).

    Columns: `id` (`<domain>/<class>/<file>`), `domain`, `class_name`, `file`, `photo_id`,
    `name_ok` (the file name parses), `photo_exists` (sketches: a photo with that id in the same
    class folder; None for photos) and `num_sketches` (photos: sketches naming them; None for
    sketches). A missing domain folder gives no rows for it; `tree_checks` reports it.
    """
    from simlearn.data.readers import sketchy_layout_root

    base = sketchy_layout_root(root)
    rows: list[dict[str, Any]] = []
    for domain in DOMAINS:
        folder = base / domain / SKETCHY_VARIANT
        if not folder.is_dir():
            continue
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for f in sorted(class_dir.iterdir()):
                if f.name.startswith(".") or not f.is_file():
                    continue
                if domain == "photo":
                    ok = f.suffix.lower() in PHOTO_SUFFIXES
                    photo_id = f.stem
                else:
                    photo_id, sep, k = f.stem.rpartition("-")
                    ok = f.suffix.lower() == ".png" and bool(sep) and k.isdigit() and bool(photo_id)
                rows.append(
                    {
                        "id": f"{domain}/{class_dir.name}/{f.name}",
                        "domain": domain,
                        "class_name": class_dir.name,
                        "file": f.name,
                        "photo_id": photo_id if ok else None,
                        "name_ok": ok,
                    }
                )
    frame = pd.DataFrame(
        rows, columns=["id", "domain", "class_name", "file", "photo_id", "name_ok"]
    )
    is_photo = (frame["domain"] == "photo").to_numpy()
    is_sketch = ~is_photo
    photos = set(zip(frame["class_name"][is_photo], frame["photo_id"][is_photo], strict=True))
    sketch_keys = list(zip(frame["class_name"], frame["photo_id"], strict=True))
    counts: dict[tuple[Any, Any], int] = {}
    for key, sk in zip(sketch_keys, is_sketch, strict=True):
        if sk:
            counts[key] = counts.get(key, 0) + 1
    frame["photo_exists"] = pd.Series(
        [
            (key in photos) if sk and ok else None
            for key, sk, ok in zip(sketch_keys, is_sketch, frame["name_ok"], strict=True)
        ],
        dtype=object,
    )
    frame["num_sketches"] = pd.Series(
        [counts.get(key, 0) if p else None for key, p in zip(sketch_keys, is_photo, strict=True)],
        dtype="Int64",
    )
    return frame


def tree_checks(root: Path) -> list[TableCheck]:
    """The tables and expectations of a raw Sketchy tree (see :func:`sketchy_tree_table`)."""
    from simlearn.data.readers import sketchy_layout_root

    base = sketchy_layout_root(root)
    folders = pd.DataFrame(
        {
            "domain": list(DOMAINS),
            "folder_exists": [(base / d / SKETCHY_VARIANT).is_dir() for d in DOMAINS],
        }
    )
    folders["files"] = [0, 0]
    tree = sketchy_tree_table(root)
    for i, d in enumerate(DOMAINS):
        folders.loc[i, "files"] = int((tree["domain"] == d).sum())
    return [
        TableCheck(
            "folders",
            folders,
            [
                expect_true(
                    "folder_exists",
                    f"rendered_256x256/256x256/<domain>/{SKETCHY_VARIANT}/ exists for both domains",
                ),
                expect_between("files", "each domain folder holds image files", 1),
            ],
            ["domain"],
        ),
        TableCheck(
            "tree",
            tree,
            [
                expect_true(
                    "name_ok", "photos are <photo_id>.jpg|png, sketches <photo_id>-<k>.png"
                ),
                expect_true("photo_exists", "every sketch's photo exists in the same class folder"),
                expect_between("num_sketches", "every photo has at least one sketch", 1),
            ],
            ["id"],
        ),
    ]
