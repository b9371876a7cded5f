"""Suite for kind "files": images kept on disk as `images/<label:04d>/<id><ext>` with one manifest
row per file (a user's image folder or manifest; the CUB-200, Cars196 and SOP benchmarks).

The download stage is tolerant: it records an unreadable header (height -1), an empty class or a
class with one image and carries on. This suite turns each of those into a failed expectation
that names the file(s), so the validate stage stops before anything trains.

Tables validated:
- `manifest`: the raw manifest has the contract's columns and at least one row.
- `samples`: manifest rows plus facts recomputed from each file by a full decode, run in a
  thread pool (`file_exists`, `decode_error`, `file_*` size, mode, format, bytes and sha256),
  whether `path` follows the layout, the size of the row's class, and the copies of its bytes
  in other splits. Failure examples carry `id`, `path` and `source_path`: the dataset's file and
  the user's original.
- `classes`: one row per class of meta.json `class_names` with its images per split: empty
  classes, train/test overlap under split_by class/official, agreement with meta.json.
- `splits`: one row per expected split with its rows, query rows and gallery rows.
- `dataset`: one row comparing meta.json with itself and the manifest.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from great_expectations.expectations import Expectation
from PIL import Image, ImageFile

from simlearn.config.datasets import default_workers
from simlearn.validation.common import (
    TableCheck,
    expect_between,
    expect_columns,
    expect_equal,
    expect_false,
    expect_in_set,
    expect_rows,
    expect_true,
    expect_type,
    expected_splits,
    id_and_split_expectations,
    label_matches_class_name,
    resolve,
    sha256_hex,
    split_expectations,
    split_table,
    with_columns,
)

# The contract, written here rather than imported from the writer (data/image_files.py): the
# suite checks the writer, so it must not take the writer's word for what the columns are.
COLUMNS: tuple[str, ...] = (
    "id", "split", "label", "class_name", "path", "source_path", "height", "width", "mode",
    "format", "bytes", "sha256", "is_query", "is_gallery",
)  # fmt: skip
META_KEYS: tuple[str, ...] = (
    "num_classes", "class_names", "split_by", "image_size", "resize", "channels", "shape",
)  # fmt: skip
EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp")  # lower case only
#: class: classes drawn for test; image: images drawn per class; official: the split a table
#: gave, with disjoint classes (the benchmarks); given: the split a table gave, classes shared
SPLIT_BY: tuple[str, ...] = ("class", "image", "official", "given")
DISJOINT_SPLIT_BY: tuple[str, ...] = ("class", "official")  # train and test share no class
RESIZE: tuple[str, ...] = ("crop", "stretch")
CHANNELS: tuple[int, ...] = (1, 3)
UNREADABLE = -1  # height and width the download records when a file's header cannot be read
RETRIEVABLE = 2  # a class needs a second image before one of them can be retrieved
KEY: list[str] = ["id", "path", "source_path"]  # names the file in every sample failure


def build_tables(
    data_dir: Path,
    meta: Mapping[str, Any],
    manifest: pd.DataFrame,
    *,
    min_rows_per_split: int,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
) -> list[TableCheck]:
    """The tables and expectations of the files suite for the dataset in `data_dir`.

    workers: threads decoding the files; default: meta.json `workers` (the dataset's config),
        else one per CPU, at most 8.
    Raises ValueError when meta.json lacks a key the suite needs.
    """
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ValueError(
            f"{data_dir / 'meta.json'} lacks {missing} needed for kind 'files' "
            f"(required keys: {', '.join(META_KEYS)})"
        )
    class_names = [str(c) for c in meta["class_names"]]
    num_classes = int(meta["num_classes"])
    split_by = str(meta["split_by"])
    disjoint = split_by in DISJOINT_SPLIT_BY

    frame = with_columns(manifest, COLUMNS)
    threads = workers or int(meta.get("workers") or 0) or default_workers()
    facts = inspect_files([resolve(data_dir, p) for p in frame["path"]], workers=threads)
    samples = _samples_frame(frame, facts, class_names, disjoint=disjoint)
    splits_frame = _splits_frame(samples, expected_splits(meta, manifest, splits), meta)
    classes = _classes_frame(samples, meta, class_names, num_classes, disjoint=disjoint)
    dataset = _dataset_frame(data_dir, meta, samples, class_names, num_classes)

    split_checks = [
        *split_expectations(splits_frame, min_rows_per_split),
        expect_between("test_queries", "the test split has at least one query row (is_query)", 1),
        expect_between(
            "test_gallery", "the test split has at least one gallery row (is_gallery)", 1
        ),
    ]
    return [
        TableCheck(
            "manifest",
            manifest,
            [expect_columns(COLUMNS, "manifest"), expect_rows(1, "manifest")],
            [],
        ),
        TableCheck("samples", samples, _sample_expectations(num_classes, split_by), KEY),
        TableCheck("classes", classes, _class_expectations(), ["label", "class_name"]),
        TableCheck("splits", splits_frame, split_checks, ["split"]),
        TableCheck("dataset", dataset, _dataset_expectations(), ["name"]),
    ]


# ----------------------------------------------------------------------------- decoding


def inspect_file(path: Path | None) -> dict[str, Any]:
    """What one image file holds: `exists`, `bytes`, `sha256`, header `height`, `width`, `mode`,
    `format`, and `decode_error` ("" when PIL decodes every pixel, else the reason; None when the
    file is missing). Header values are None when even the header cannot be read."""
    facts: dict[str, Any] = {
        "exists": False, "bytes": None, "sha256": None, "height": None, "width": None,
        "mode": None, "format": None, "decode_error": None,
    }  # fmt: skip
    if path is None or not path.is_file():
        return facts
    data = path.read_bytes()  # read once: hashed, then decoded from memory
    facts.update(exists=True, bytes=len(data), sha256=sha256_hex(data), decode_error="")
    try:
        with Image.open(io.BytesIO(data)) as img:
            facts.update(height=img.height, width=img.width, mode=img.mode, format=img.format or "")
            img.load()  # the full decode: a truncated file fails here, not at open
    except Exception as err:  # noqa: BLE001 - a corrupt file can make a decoder raise anything
        facts["decode_error"] = f"{type(err).__name__}: {err}"
    return facts


def inspect_files(paths: Sequence[Path | None], *, workers: int) -> list[dict[str, Any]]:
    """:func:`inspect_file` on every path, in `workers` threads (PIL and hashlib release the GIL
    while they decode and hash), with truncated images treated as errors."""
    with _strict_decoding(), ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(inspect_file, paths))


@contextlib.contextmanager
def _strict_decoding() -> Iterator[None]:
    """PIL's LOAD_TRUNCATED_IMAGES is one process-wide flag; a loader that set it would make a
    truncated JPEG decode silently (grey bottom rows). Off while the suite decodes."""
    saved = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = saved


# ----------------------------------------------------------------------------- tables


def _samples_frame(
    frame: pd.DataFrame, facts: list[dict[str, Any]], class_names: list[str], *, disjoint: bool
) -> pd.DataFrame:
    """Adds the recomputed file facts, the layout check, class sizes and cross-split copies."""
    frame["file_exists"] = [f["exists"] for f in facts]
    frame["decode_error"] = pd.Series([f["decode_error"] for f in facts], dtype=object)
    for key in ("height", "width", "bytes"):
        frame[f"file_{key}"] = pd.Series([f[key] for f in facts], dtype="Int64")
    for key in ("mode", "format", "sha256"):
        frame[f"file_{key}"] = pd.Series([f[key] for f in facts], dtype=object)
    frame["class_name_matches_label"] = label_matches_class_name(
        frame["label"], frame["class_name"], class_names
    )
    frame["path_follows_layout"] = [
        _follows_layout(p, i, lab)
        for p, i, lab in zip(frame["path"], frame["id"], frame["label"], strict=True)
    ]

    label = pd.to_numeric(frame["label"], errors="coerce")
    split = frame["split"].astype(object)
    # null where a rule does not apply, so GX skips the row
    per_class = label.map(label.value_counts()).astype("Int64")
    frame["class_images"] = per_class if disjoint else pd.Series(pd.NA, frame.index, "Int64")
    is_test = split == "test"
    per_test_class = label[is_test].value_counts()
    frame["test_class_images"] = label.map(per_test_class).where(is_test).astype("Int64")
    frame["copies_in_other_splits"] = _copies_in_other_splits(frame)
    return frame


def _follows_layout(path: Any, sample_id: Any, label: Any) -> bool:
    """`path` is images/<label:04d>/<id><ext> with a known lower-case extension."""
    try:
        expected = f"images/{int(label):04d}/{sample_id}"
    except (TypeError, ValueError):  # a null or non-integer label: reported by its own checks
        return False
    if not isinstance(path, str):
        return False
    suffix = PurePosixPath(path).suffix
    return suffix in EXTENSIONS and path == expected + suffix


def _copies_in_other_splits(frame: pd.DataFrame) -> pd.Series:
    """Per row: "" when no file with its bytes (recomputed sha256) lies in another split, else
    those files as "<split>: <path> (<source_path>)"; None when the file could not be hashed.
    Both copies are flagged, each naming the other, so the report names both files."""
    digest = frame["file_sha256"]
    split = frame["split"].astype(object)
    known = digest.notna()
    splits_per_digest = split[known].groupby(digest[known]).nunique()
    leaked = set(splits_per_digest.index[splits_per_digest > 1])
    where: dict[str, list[tuple[Any, str]]] = {}  # digest -> (split, file) of every copy
    for d, s, p, src in zip(digest, split, frame["path"], frame["source_path"], strict=True):
        if d in leaked:
            where.setdefault(d, []).append((s, f"{s}: {p} ({src})"))
    out: list[str | None] = []
    for d, s in zip(digest, split, strict=True):
        if d is None or pd.isna(d):
            out.append(None)
        else:
            out.append("; ".join(text for other, text in where.get(d, []) if other != s))
    return pd.Series(out, index=frame.index, dtype=object)


def _splits_frame(
    samples: pd.DataFrame, expected: Sequence[str], meta: Mapping[str, Any]
) -> pd.DataFrame:
    """split_table with query and gallery counts; `test_*` hold them on the test row only."""
    flags = {
        "queries": samples["is_query"].fillna(False).astype(bool),
        "gallery": samples["is_gallery"].fillna(False).astype(bool),
    }
    table = split_table(samples, expected, meta, flags)
    is_test = table["split"] == "test"
    for name in flags:
        table[f"test_{name}"] = table[name].where(is_test).astype("Int64")
    return table


def _classes_frame(
    samples: pd.DataFrame,
    meta: Mapping[str, Any],
    class_names: list[str],
    num_classes: int,
    *,
    disjoint: bool,
) -> pd.DataFrame:
    """One row per class 0..C-1: images per split and the class-level facts checked on them."""
    label = pd.to_numeric(samples["label"], errors="coerce")
    split = samples["split"].astype(object)
    table = pd.DataFrame(
        {
            "label": range(num_classes),
            "class_name": [
                class_names[k] if k < len(class_names) else "" for k in range(num_classes)
            ],
        }
    )
    counts = label.value_counts()
    table["images"] = [int(counts.get(k, 0)) for k in range(num_classes)]
    for s in ("train", "val", "test"):
        in_split = label[split == s].value_counts()
        table[f"{s}_images"] = [int(in_split.get(k, 0)) for k in range(num_classes)]
    listed = {str(c) for c in meta.get("empty_classes") or []}
    table["empty_listed_in_meta"] = [
        (name in listed) == (n == 0)
        for name, n in zip(table["class_name"], table["images"], strict=True)
    ]
    both = (table["train_images"] + table["val_images"] > 0) & (table["test_images"] > 0)
    table["in_train_and_test"] = pd.Series(
        [bool(v) if disjoint else None for v in both], dtype=object
    )
    table["split_matches_meta"] = _split_matches_meta(table, meta, disjoint=disjoint)
    return table


def _split_matches_meta(
    table: pd.DataFrame, meta: Mapping[str, Any], *, disjoint: bool
) -> pd.Series:
    """Per class: its train/val images imply it is in meta.json train_classes, its test images
    that it is in test_classes. None under split_by image or without those keys."""
    if not disjoint or "train_classes" not in meta or "test_classes" not in meta:
        return pd.Series([None] * len(table), dtype=object)
    train = {int(k) for k in meta["train_classes"]}
    test = {int(k) for k in meta["test_classes"]}
    return pd.Series(
        [
            (lab in train or tr + va == 0) and (lab in test or te == 0)
            for lab, tr, va, te in zip(
                table["label"],
                table["train_images"],
                table["val_images"],
                table["test_images"],
                strict=True,
            )
        ],
        dtype=object,
    )


def _dataset_frame(
    data_dir: Path,
    meta: Mapping[str, Any],
    samples: pd.DataFrame,
    class_names: list[str],
    num_classes: int,
) -> pd.DataFrame:
    """One row: meta.json's own consistency and its counts against the manifest."""
    size, channels = meta["image_size"], meta["channels"]
    unreadable = pd.to_numeric(samples["height"], errors="coerce") == UNREADABLE
    known = set(class_names)
    stray = [str(c) for c in meta.get("empty_classes") or [] if str(c) not in known]
    return pd.DataFrame(
        {
            "name": [str(meta.get("name", data_dir.name))],
            "num_classes": [num_classes],
            "class_name_count": [len(class_names)],
            "split_by": [meta["split_by"]],
            "resize": [meta["resize"]],
            "channels": [channels],
            "image_size": [size],
            "meta_shape": ["x".join(str(d) for d in meta["shape"])],
            "expected_shape": [f"{size}x{size}x{channels}"],
            "meta_unreadable": pd.Series([meta.get("unreadable")], dtype="Int64"),
            "unreadable_rows": [int(unreadable.sum())],
            "unknown_empty_classes": [", ".join(stray)],
        }
    )


# ----------------------------------------------------------------------------- expectations


def _sample_expectations(num_classes: int, split_by: str) -> list[Expectation]:
    last = num_classes - 1
    extensions = " ".join(EXTENSIONS)
    return [
        *id_and_split_expectations(),
        expect_type("label", "int64", "label is int64"),
        expect_between("label", f"label lies in 0..{last}", 0, last),
        expect_true("class_name_matches_label", "class_name equals meta class_names[label]"),
        expect_true(
            "path_follows_layout",
            f"path is images/<label:04d>/<id><ext>, ext one of {extensions}",
        ),
        expect_true("file_exists", "the image file exists at path"),
        expect_between(
            "height",
            "the download read the image header (height -1: the file is unreadable)",
            1,
        ),
        expect_in_set(
            "decode_error",
            [""],
            "the image decodes in full (PIL load() with truncated images refused)",
        ),
        *[expect_type(c, "int64", f"{c} is int64") for c in ("height", "width", "bytes")],
        *[expect_type(c, "bool", f"{c} is a boolean") for c in ("is_query", "is_gallery")],
        expect_equal("file_height", "height", "manifest height equals the file's"),
        expect_equal("file_width", "width", "manifest width equals the file's"),
        expect_equal("file_mode", "mode", "manifest mode equals the file's PIL mode"),
        expect_equal("file_format", "format", "manifest format equals the file's PIL format"),
        expect_equal("file_bytes", "bytes", "manifest bytes equals the file's size"),
        expect_equal("file_sha256", "sha256", "manifest sha256 equals that of the file's bytes"),
        expect_in_set(
            "copies_in_other_splits",
            [""],
            "the same bytes (sha256) lie in one split only (value: the copies in other splits)",
        ),
        expect_between(
            "class_images",
            f"every class has at least {RETRIEVABLE} images under split_by {split_by} "
            "(a class with a single image cannot be retrieved)",
            RETRIEVABLE,
        ),
        expect_between(
            "test_class_images",
            f"every test class has at least {RETRIEVABLE} test images "
            "(a query needs another image of its class)",
            RETRIEVABLE,
        ),
    ]


def _class_expectations() -> list[Expectation]:
    return [
        expect_between(
            "images", "every class of meta.json class_names has images (none: an empty class)", 1
        ),
        expect_true(
            "empty_listed_in_meta",
            "meta.json empty_classes lists exactly the classes without images",
        ),
        expect_false(
            "in_train_and_test",
            "train/val and test classes are disjoint (split_by class or official)",
        ),
        expect_true(
            "split_matches_meta",
            "classes with train/val images are in meta.json train_classes, "
            "those with test images in test_classes",
        ),
    ]


def _dataset_expectations() -> list[Expectation]:
    return [
        expect_equal("num_classes", "class_name_count", "num_classes equals len(class_names)"),
        expect_in_set("split_by", SPLIT_BY, f"meta.json split_by is one of {', '.join(SPLIT_BY)}"),
        expect_in_set("resize", RESIZE, f"meta.json resize is one of {', '.join(RESIZE)}"),
        expect_in_set("channels", CHANNELS, "meta.json channels is 1 or 3"),
        expect_between("image_size", "meta.json image_size is at least 1", 1),
        expect_equal(
            "meta_shape", "expected_shape", "meta.json shape is [image_size, image_size, channels]"
        ),
        expect_equal(
            "meta_unreadable",
            "unreadable_rows",
            "meta.json unreadable equals the rows with height -1",
        ),
        expect_in_set(
            "unknown_empty_classes", [""], "meta.json empty_classes are names of class_names"
        ),
    ]
