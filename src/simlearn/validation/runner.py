"""Runs a kind's suite on a canonical dataset folder with an ephemeral Great Expectations context.

`validate_dataset(data_dir)` reads `meta.json` and `manifest.parquet`, lets the suite of
`meta["kind"]` build its tables (manifest rows enriched with values recomputed from the files),
validates each table as a pandas dataframe asset, and gathers the results into a
`ValidationReport`. No GX project folder is written.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.core.batch_definition import BatchDefinition
from great_expectations.data_context.types.base import ProgressBarsConfig

from simlearn.data.errors import LayoutError
from simlearn.validation import files, images, sketch, stereo
from simlearn.validation.common import TableCheck
from simlearn.validation.report import MAX_EXAMPLES, ExpectationResult, ValidationReport

KINDS: tuple[str, ...] = ("images", "stereo", "sketch", "files")
META_FILE = "meta.json"
MANIFEST_FILE = "manifest.parquet"


def validate_dataset(
    data_dir: Path,
    *,
    min_rows_per_split: int = 1,
    min_valid_fraction: float = 0.3,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
) -> ValidationReport:
    """Validates the canonical dataset in `data_dir` with the suite of its kind.

    min_rows_per_split: each expected split must hold at least this many rows (per domain for
        sketch datasets).
    min_valid_fraction: stereo only; floor on the fraction of pixels with ground-truth disparity.
    splits: the splits that must be present; default: the keys of meta.json `split_counts`,
        else "train" plus whichever known splits the manifest uses.
    workers: files only; threads decoding the image files (default: meta.json `workers`, else
        one per CPU, at most 8).
    Raises FileNotFoundError for a missing folder, meta.json, manifest or data file, and
    ValueError for bad arguments, an unknown kind or meta.json keys the kind needs.
    """
    if isinstance(min_rows_per_split, bool) or not isinstance(min_rows_per_split, int):
        raise ValueError(f"min_rows_per_split must be an int >= 0, got {min_rows_per_split!r}")
    if min_rows_per_split < 0:
        raise ValueError(f"min_rows_per_split must be an int >= 0, got {min_rows_per_split!r}")
    if not 0.0 <= float(min_valid_fraction) <= 1.0:
        raise ValueError(f"min_valid_fraction must lie in [0, 1], got {min_valid_fraction!r}")
    if splits is not None and (
        isinstance(splits, str) or not all(isinstance(s, str) for s in splits)
    ):
        raise ValueError(f"splits must be a sequence of split names or None, got {splits!r}")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise ValueError(f"workers must be an int >= 1 or None, got {workers!r}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"dataset folder {data_dir} does not exist")
    meta = read_meta(data_dir)
    manifest = read_manifest(data_dir)
    kind = meta["kind"]
    if kind == "images":
        tables = images.build_tables(
            data_dir, meta, manifest, min_rows_per_split=min_rows_per_split, splits=splits
        )
    elif kind == "stereo":
        tables = stereo.build_tables(
            data_dir,
            meta,
            manifest,
            min_rows_per_split=min_rows_per_split,
            min_valid_fraction=float(min_valid_fraction),
            splits=splits,
        )
    elif kind == "sketch":
        tables = sketch.build_tables(
            data_dir, meta, manifest, min_rows_per_split=min_rows_per_split, splits=splits
        )
    else:
        tables = files.build_tables(
            data_dir,
            meta,
            manifest,
            min_rows_per_split=min_rows_per_split,
            splits=splits,
            workers=workers,
        )
    return run_tables(tables, dataset=str(meta.get("name") or data_dir.name), kind=kind)


def validate_sketchy_tree(root: Path) -> ValidationReport:
    """Great Expectations on a raw Sketchy tree (:func:`simlearn.validation.sketch.tree_checks`),
    before it is canonicalised; the report's dataset is the tree's folder name."""
    return run_tables(sketch.tree_checks(Path(root)), dataset=Path(root).name, kind="sketchy_tree")


#: raw layouts with a suite: layout name -> the function that validates a tree in it
RAW_LAYOUTS = {"sketchy_tree": validate_sketchy_tree}


def check_raw_tree(layout: str, root: Path) -> None:
    """Validate the raw tree ``root`` in ``layout`` (a key of :data:`RAW_LAYOUTS`); raise
    `LayoutError` (a ``ValueError``) listing every failed expectation and the offending files.
    The download stage passes this to :func:`simlearn.data.sources.build_dataset` as its
    ``check_raw``."""
    if layout not in RAW_LAYOUTS:
        raise ValueError(f"no suite for raw layout {layout!r}; known: {', '.join(RAW_LAYOUTS)}")
    report = RAW_LAYOUTS[layout](root)
    if not report.success:
        what = "Sketchy tree" if layout == "sketchy_tree" else f"{layout} tree"
        raise LayoutError(f"the {what} under {root} is invalid:\n{report.failures_text()}")


def read_meta(data_dir: Path) -> dict[str, Any]:
    """meta.json of a canonical dataset; its `kind` must be one of KINDS."""
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run the download stage for this dataset first "
            "(a canonical dataset folder holds meta.json and manifest.parquet)"
        )
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err
    if not isinstance(meta, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(meta).__name__}")
    kind = meta.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{path}: kind {kind!r} is not supported; allowed: {', '.join(KINDS)}")
    return meta


def read_manifest(data_dir: Path) -> pd.DataFrame:
    """manifest.parquet of a canonical dataset."""
    path = Path(data_dir) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run the download stage for this dataset first "
            "(a canonical dataset folder holds meta.json and manifest.parquet)"
        )
    return pd.read_parquet(path)


def run_tables(tables: Sequence[TableCheck], *, dataset: str, kind: str) -> ValidationReport:
    """Validates each table with its expectations and gathers one report."""
    results: list[ExpectationResult] = []
    raw: dict[str, dict[str, Any]] = {}
    for table in tables:
        table_results, raw[table.name] = _validate_table(table, suite_name=f"{kind}.{table.name}")
        results.extend(table_results)
    success = all(r.success for r in results)
    return ValidationReport(dataset=dataset, kind=kind, success=success, results=results, raw=raw)


@functools.cache
def _batch_definition() -> BatchDefinition:
    """One ephemeral context, pandas source and whole-dataframe batch, reused by every run."""
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("simlearn")
    asset = source.add_dataframe_asset("table")
    return asset.add_batch_definition_whole_dataframe("whole")


def _validate_table(
    table: TableCheck, *, suite_name: str
) -> tuple[list[ExpectationResult], dict[str, Any]]:
    for order, expectation in enumerate(table.expectations):
        # GX reorders results; `order` maps them back to the suite's order.
        expectation.meta = {**(expectation.meta or {}), "order": order}
    suite = gx.ExpectationSuite(name=suite_name, expectations=table.expectations)
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": table.frame})
    key = [c for c in table.row_key if c in table.frame.columns]
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": MAX_EXAMPLES,
    }
    if key:
        result_format["unexpected_index_column_names"] = key
    validation = batch.validate(suite, result_format=result_format)
    raw = validation.to_json_dict()
    parsed = sorted(
        (_parse_result(table.name, r) for r in raw["results"]),
        key=lambda pair: pair[0],
    )
    return [r for _, r in parsed], raw


def _parse_result(table: str, raw: Mapping[str, Any]) -> tuple[int, ExpectationResult]:
    config = raw.get("expectation_config") or {}
    kwargs = config.get("kwargs") or {}
    result = raw.get("result") or {}
    if "column" in kwargs:
        column: str | None = kwargs["column"]
    elif "column_A" in kwargs:
        column = f"{kwargs['column_A']},{kwargs['column_B']}"
    else:
        column = None
    unexpected = result.get("unexpected_count")
    if "observed_value" in result:
        observed: Any = result["observed_value"]
    elif unexpected is not None:
        observed = (
            f"{unexpected} of {result.get('element_count')} rows unexpected"
            f" ({result.get('unexpected_percent') or 0.0:.1f}%)"
        )
    else:
        observed = None
    if result.get("partial_unexpected_index_list"):
        examples = list(result["partial_unexpected_index_list"])
    elif result.get("partial_unexpected_list"):
        examples = list(result["partial_unexpected_list"])
    elif (result.get("details") or {}).get("mismatched"):
        examples = [result["details"]["mismatched"]]
    else:
        examples = []
    order = int((config.get("meta") or {}).get("order", 0))
    return order, ExpectationResult(
        table=table,
        expectation_type=str(config.get("type")),
        column=column,
        success=bool(raw.get("success")),
        description=str(config.get("description") or config.get("type")),
        observed=observed,
        unexpected_count=None if unexpected is None else int(unexpected),
        examples=examples[:MAX_EXAMPLES],
        error=_exception_message(raw.get("exception_info")),
    )


def _exception_message(info: Any) -> str | None:
    """GX's exception message, whether `info` is one record or a dict of records per metric."""
    if not isinstance(info, Mapping):
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    messages = {
        str(v.get("exception_message"))
        for v in info.values()
        if isinstance(v, Mapping) and v.get("raised_exception")
    }
    return "; ".join(sorted(messages)) or None
