"""Pieces shared by the per-kind suites: the table type, expectation builders, derived columns.

A suite turns one canonical dataset folder into a few pandas tables (the manifest enriched with
columns recomputed from the files, one row per split, one row per class, ...) and the Great
Expectations (GX) expectations to run on each. Anything that needs more than one row (leakage
between splits, a sketch's photo) is first derived into a per-row column, so GX reports the
offending rows by id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import numpy as np
import pandas as pd
from great_expectations.expectations import Expectation
from PIL import Image

SPLITS: tuple[str, ...] = ("train", "val", "test")  # the only split names the manifests may use
PIXEL_MAX = 255.0  # 8-bit images: every pixel statistic lies in [0, PIXEL_MAX]
STAT_RTOL = 1e-5  # manifest statistics vs. values recomputed from the files
STAT_ATOL = 1e-4


@dataclass(frozen=True)
class TableCheck:
    """One dataframe and the expectations GX runs on it.

    `row_key` names the columns that identify a row in failure examples (e.g. `id`, `split`).
    """

    name: str
    frame: pd.DataFrame
    expectations: list[Expectation]
    row_key: list[str]


# ----------------------------------------------------------------------------- expectations


def expect_columns(columns: Iterable[str], what: str) -> Expectation:
    """The table has at least these columns."""
    return gx.expectations.ExpectTableColumnsToMatchSet(
        column_set=list(columns), exact_match=False, description=f"{what} has the required columns"
    )


def expect_rows(min_rows: int, what: str) -> Expectation:
    """The table has at least `min_rows` rows."""
    return gx.expectations.ExpectTableRowCountToBeBetween(
        min_value=min_rows, description=f"{what} has at least {min_rows} row(s)"
    )


def expect_unique(column: str, description: str) -> Expectation:
    """Non-null values of `column` are unique (GX ignores nulls)."""
    return gx.expectations.ExpectColumnValuesToBeUnique(column=column, description=description)


def expect_in_set(column: str, values: Iterable[Any], description: str) -> Expectation:
    return gx.expectations.ExpectColumnValuesToBeInSet(
        column=column, value_set=list(values), description=description
    )


def expect_true(column: str, description: str) -> Expectation:
    """A derived boolean column is True on every row where it applies (None = not applicable)."""
    return expect_in_set(column, [True], description)


def expect_false(column: str, description: str) -> Expectation:
    """A derived boolean flag is False on every row where it applies (None = not applicable)."""
    return expect_in_set(column, [False], description)


def expect_between(
    column: str,
    description: str,
    min_value: float | None = None,
    max_value: float | None = None,
    *,
    strict_min: bool = False,
) -> Expectation:
    """min_value <= value <= max_value on every non-null row (strict_min: min_value < value)."""
    return gx.expectations.ExpectColumnValuesToBeBetween(
        column=column,
        min_value=min_value,
        max_value=max_value,
        strict_min=strict_min,
        description=description,
    )


def expect_equal(column_a: str, column_b: str, description: str) -> Expectation:
    """column_a == column_b row by row; rows missing either value are skipped (a missing file
    or manifest field is reported by its own expectation)."""
    return gx.expectations.ExpectColumnPairValuesToBeEqual(
        column_A=column_a,
        column_B=column_b,
        ignore_row_if="either_value_is_missing",
        description=description,
    )


def expect_at_least(column_a: str, column_b: str, description: str) -> Expectation:
    """column_a >= column_b row by row; rows missing either value are skipped."""
    return gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A=column_a,
        column_B=column_b,
        or_equal=True,
        ignore_row_if="either_value_is_missing",
        description=description,
    )


def expect_type(column: str, type_name: str, description: str) -> Expectation:
    return gx.expectations.ExpectColumnValuesToBeOfType(
        column=column, type_=type_name, description=description
    )


def id_and_split_expectations() -> list[Expectation]:
    """No required field is null; every manifest row has a unique id and a known split."""
    return [
        expect_in_set("null_fields", [""], "no required manifest field is null"),
        expect_unique("id", "ids are unique (no duplicate id)"),
        expect_in_set("split", SPLITS, f"split is one of {', '.join(SPLITS)}"),
    ]


def pixel_stat_expectations(columns: Sequence[str]) -> list[Expectation]:
    """Manifest pixel statistics lie in [0, 255]."""
    return [
        expect_between(c, f"manifest {c} lies in [0, {PIXEL_MAX:.0f}]", 0.0, PIXEL_MAX)
        for c in columns
    ]


def leakage_expectations() -> list[Expectation]:
    """No image shared between any two splits: identical images always share one split."""
    return [
        expect_false("in_train_and_test", "no identical image in both train and test"),
        expect_false("in_train_and_val", "no identical image in both train and val"),
        expect_false("in_val_and_test", "no identical image in both val and test"),
    ]


# ----------------------------------------------------------------------------- frames


def with_columns(manifest: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy of `manifest` with every missing required column added as all-null, and a
    `null_fields` column naming the required fields that are null in each row ("" if none).

    The raw manifest is checked for its columns separately; filling them here lets every other
    expectation run instead of the whole suite stopping on a KeyError. Comparisons with values
    recomputed from the files skip null values, so nulls are reported once, by `null_fields`.
    """
    frame = manifest.reset_index(drop=True).copy()
    for column in columns:
        if column not in frame.columns:
            frame[column] = pd.Series([None] * len(frame), dtype=object)
    nulls = frame[list(columns)].isna().to_numpy()  # (rows, columns)
    frame["null_fields"] = [
        ", ".join(c for c, null in zip(columns, row, strict=True) if null) for row in nulls
    ]
    return frame


def expected_splits(
    meta: Mapping[str, Any], manifest: pd.DataFrame, splits: Sequence[str] | None
) -> list[str]:
    """Splits that must be present: `splits` if given, else the keys of meta.json
    `split_counts`, else "train" plus any known split the manifest uses."""
    if splits is not None:
        return list(splits)
    counts = meta.get("split_counts")
    if isinstance(counts, Mapping) and counts:
        return [str(s) for s in counts]
    seen = set(manifest["split"].dropna().astype(str)) if "split" in manifest else set()
    return [s for s in SPLITS if s == "train" or s in seen]


def meta_split_count(value: Any) -> int | None:
    """A meta.json split count: an int, or a mapping of ints (e.g. per domain) summed."""
    if isinstance(value, Mapping):
        return int(sum(int(v) for v in value.values()))
    if value is None:
        return None
    return int(value)


def split_table(
    samples: pd.DataFrame,
    expected: Sequence[str],
    meta: Mapping[str, Any],
    count_columns: Mapping[str, pd.Series] | None = None,
) -> pd.DataFrame:
    """One row per expected split: `rows` (0 when absent), `meta_rows` from meta.json
    `split_counts` when given, plus one column per boolean mask in `count_columns`."""
    split = samples["split"].astype(object)
    table = pd.DataFrame({"split": list(expected)})
    table["rows"] = [int((split == s).sum()) for s in expected]
    for name, mask in (count_columns or {}).items():
        table[name] = [int(((split == s) & mask).sum()) for s in expected]
    counts = meta.get("split_counts")
    if isinstance(counts, Mapping):
        table["meta_rows"] = pd.Series(
            [meta_split_count(counts.get(s)) for s in expected], dtype="Int64"
        )
    return table


def split_expectations(
    table: pd.DataFrame, min_rows: int, count_columns: Sequence[str] = ("rows",)
) -> list[Expectation]:
    """Each expected split holds at least `min_rows` rows (per count column) and, when meta.json
    has `split_counts`, exactly the number it states."""
    out = [
        expect_between(c, f"each expected split has at least {min_rows} {c}", min_rows)
        for c in count_columns
    ]
    if "meta_rows" in table.columns:
        out.append(expect_equal("rows", "meta_rows", "rows per split equal meta.json split_counts"))
    return out


def shared_between(split: pd.Series, digest: pd.Series, a: str, b: str) -> pd.Series:
    """Per row: True when the row is in split `a` or `b` and its digest occurs in both splits.

    Both copies of a leaked image are flagged, so the report names the train row and the test row.
    """
    known = digest.notna()
    in_a = set(digest[known & (split == a)])
    in_b = set(digest[known & (split == b)])
    both = in_a & in_b
    return (((split == a) | (split == b)) & known & digest.isin(both)).astype(bool)


def add_leakage_flags(frame: pd.DataFrame, digest_column: str) -> None:
    """Adds `in_train_and_test`, `in_train_and_val` and `in_val_and_test` (bool) computed from
    `digest_column`: one flag per pair of splits."""
    digest = frame[digest_column]
    split = frame["split"].astype(object)
    frame["in_train_and_test"] = shared_between(split, digest, "train", "test")
    frame["in_train_and_val"] = shared_between(split, digest, "train", "val")
    frame["in_val_and_test"] = shared_between(split, digest, "val", "test")


def label_matches_class_name(
    labels: pd.Series, names: pd.Series, class_names: Sequence[str] | None
) -> pd.Series:
    """Per row: the class name agrees with the label.

    With meta.json `class_names`: class_name == class_names[label]. Without: labels and names
    pair one to one across the manifest (each name has one label, each label one name).
    """
    numeric = pd.to_numeric(labels, errors="coerce")
    if class_names is not None:
        lookup = dict(enumerate(class_names))
        return pd.Series(
            [
                bool(pd.notna(lab) and float(lab).is_integer() and lookup.get(int(lab)) == name)
                for lab, name in zip(numeric, names, strict=True)
            ],
            index=labels.index,
            dtype=bool,
        )
    pairs = pd.DataFrame({"label": numeric, "name": names})
    labels_per_name = pairs.groupby("name", dropna=False)["label"].transform("nunique")
    names_per_label = pairs.groupby("label", dropna=False)["name"].transform("nunique")
    return ((labels_per_name == 1) & (names_per_label == 1) & numeric.notna()).astype(bool)


def class_table(
    samples: pd.DataFrame,
    class_names: Sequence[str],
    masks: Mapping[str, pd.Series],
) -> pd.DataFrame:
    """One row per class 0..C-1: `label`, `class_name` and, per mask, how many train rows of
    that label fall in the mask (e.g. `train_rows`, `train_photos`)."""
    labels = pd.to_numeric(samples["label"], errors="coerce")
    train = samples["split"].astype(object) == "train"
    table = pd.DataFrame({"label": range(len(class_names)), "class_name": list(class_names)})
    for name, mask in masks.items():
        counts = labels[train & mask].value_counts()
        table[name] = [int(counts.get(k, 0)) for k in range(len(class_names))]
    return table


def stats_match(manifest: pd.Series, recomputed: pd.Series) -> pd.Series:
    """Per row: manifest value equals the recomputed one within tolerance (NaN == NaN).

    A null manifest value counts as a match here: `null_fields` reports it.
    """
    a = pd.to_numeric(manifest, errors="coerce").to_numpy(dtype=np.float64)
    b = pd.to_numeric(recomputed, errors="coerce").to_numpy(dtype=np.float64)
    close = np.isclose(a, b, rtol=STAT_RTOL, atol=STAT_ATOL, equal_nan=True) | manifest.isna()
    return pd.Series(close, index=manifest.index, dtype=bool)


# ----------------------------------------------------------------------------- files


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def image_header(path: Path) -> tuple[int, int, int] | None:
    """(height, width, channels) from the image file's header; None if missing or unreadable."""
    try:
        with Image.open(path) as img:
            return img.height, img.width, len(img.getbands())
    except (OSError, ValueError):  # missing file, not an image (PIL raises OSError subclasses)
        return None


def read_image(path: Path) -> np.ndarray | None:
    """The decoded pixels, (H, W) or (H, W, C); None if missing or undecodable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img)
    except (OSError, ValueError):
        return None


def resolve(data_dir: Path, relative: Any) -> Path | None:
    """A manifest path (relative to the dataset folder) as a Path; None when null."""
    if relative is None or (isinstance(relative, float) and np.isnan(relative)):
        return None
    return data_dir / str(relative)
