"""ValidationReport rendering: JSON, HTML page and failure text, on hand-made outcomes."""

from __future__ import annotations

import json
import math

from simlearn.validation import ExpectationResult, ValidationReport


def make_report() -> ValidationReport:
    passed = ExpectationResult(
        table="samples",
        expectation_type="expect_column_values_to_be_unique",
        column="id",
        success=True,
        description="ids are unique (no duplicate id)",
        observed="0 of 3 rows unexpected (0.0%)",
        unexpected_count=0,
    )
    failed = ExpectationResult(
        table="pairs",
        expectation_type="expect_column_pair_values_a_to_be_greater_than_b",
        column="max_disp,file_disp_max",
        success=False,
        description="valid disparities are <= max_disp",
        observed="1 of 2 rows unexpected (50.0%)",
        unexpected_count=1,
        examples=[{"id": "<pair&0>", "max_disp": 16.0, "file_disp_max": math.nan}],
    )
    table_level = ExpectationResult(
        table="manifest",
        expectation_type="expect_table_row_count_to_be_between",
        column=None,
        success=True,
        description="manifest has at least 1 row(s)",
        observed=2,
    )
    return ValidationReport(
        dataset="tiny",
        kind="stereo",
        success=False,
        results=[passed, failed, table_level],
        raw={"pairs": {"success": False, "results": []}},
    )


def test_target_names_table_and_column():
    report = make_report()
    assert [r.target for r in report.results] == [
        "samples.id",
        "pairs.max_disp,file_disp_max",
        "manifest",
    ]
    assert report.failures == [report.results[1]]


def test_json_dict_is_strict_json_with_nan_as_null():
    data = json.loads(json.dumps(make_report().to_json_dict(), allow_nan=False))
    assert data["statistics"] == {
        "evaluated_expectations": 3,
        "successful_expectations": 2,
        "unsuccessful_expectations": 1,
    }
    assert data["results"][1]["examples"][0]["file_disp_max"] is None
    assert data["results"][1]["target"] == "pairs.max_disp,file_disp_max"
    assert data["great_expectations"] == {"pairs": {"success": False, "results": []}}


def test_failures_text_names_expectation_target_observed_and_examples():
    text = make_report().failures_text()
    lines = text.splitlines()
    assert lines[0] == "FAILED: dataset 'tiny' (stereo): 1 of 3 expectations failed:"
    assert lines[1] == (
        "- expect_column_pair_values_a_to_be_greater_than_b on pairs.max_disp,file_disp_max: "
        "valid disparities are <= max_disp"
    )
    assert lines[2] == "    observed: 1 of 2 rows unexpected (50.0%)"
    assert lines[3].startswith("    examples: ") and "<pair&0>" in lines[3]
    assert "expect_column_values_to_be_unique" not in text  # passed checks are not listed


def test_failures_text_when_all_pass():
    report = make_report()
    report.results = [r for r in report.results if r.success]
    report.success = True
    assert report.failures_text() == "All 2 expectations passed for dataset 'tiny'."


def test_html_lists_failures_first_highlighted_and_escaped():
    page = make_report().to_html()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<link" not in page and "<script" not in page  # self-contained
    rows = page.split("<tbody>")[1].split("</tbody>")[0].strip().splitlines()
    assert [row.split('"')[1] for row in rows] == ["fail", "pass", "pass"]
    assert "pairs.max_disp,file_disp_max" in rows[0]
    assert "&lt;pair&amp;0&gt;" in rows[0] and "<pair&0>" not in page
    assert "FAILED: dataset &#x27;tiny&#x27; (stereo): 1 of 3 expectations failed" in page
