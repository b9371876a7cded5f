"""The validation report: per-expectation outcomes, JSON, a self-contained HTML page and text.

GX's data docs need a file-backed context; the validation stage runs an ephemeral one, so the
HTML page is rendered here from the GX result dicts.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_EXAMPLES = 5  # offending rows or values kept per expectation
OBSERVED_CHARS = 300  # an observed value is cut to this many characters in text and HTML
# an example row is cut later: it names files (a dataset path and the user's original path, or
# both copies of a leaked image), which must survive whole
EXAMPLE_CHARS = 1000
#: keys of GX's result dicts that change on every run of the same suite on the same data (when
#: GX loaded the batch); left out of the JSON, so that a rerun of validate@ on unchanged data
#: writes the same bytes and every train@ that depends on the report stays up to date
VOLATILE_KEYS = frozenset({"ge_load_time"})


@dataclass(frozen=True)
class ExpectationResult:
    """The outcome of one expectation on one table.

    `column` is the column it checks ("a,b" for a column pair, None for a table-level check);
    `observed` is GX's observed value, or "k of n rows unexpected" for a per-row check;
    `examples` holds up to MAX_EXAMPLES offending rows (key columns and value) or values;
    `error` is GX's message when the expectation could not be evaluated at all.
    """

    table: str
    expectation_type: str
    column: str | None
    success: bool
    description: str
    observed: Any
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def target(self) -> str:
        """`table.column`, or the table alone for a table-level expectation."""
        return f"{self.table}.{self.column}" if self.column else self.table


@dataclass
class ValidationReport:
    """All expectation outcomes for one dataset; `raw` is the GX result dict per table."""

    dataset: str
    kind: str
    success: bool
    results: list[ExpectationResult]
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failures(self) -> list[ExpectationResult]:
        return [r for r in self.results if not r.success]

    def to_json_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: summary, outcomes, and GX's own result dict per table.

        Non-finite floats become None, so the dict also passes `json.dumps(allow_nan=False)`.
        """
        return _json_safe(
            {
                "dataset": self.dataset,
                "kind": self.kind,
                "success": self.success,
                "statistics": {
                    "evaluated_expectations": len(self.results),
                    "successful_expectations": len(self.results) - len(self.failures),
                    "unsuccessful_expectations": len(self.failures),
                },
                "results": [{**asdict(r), "target": r.target} for r in self.results],
                "great_expectations": _without(self.raw, VOLATILE_KEYS),
            }
        )

    def summary_line(self) -> str:
        status = "PASSED" if self.success else "FAILED"
        return (
            f"{status}: dataset '{self.dataset}' ({self.kind}): "
            f"{len(self.failures)} of {len(self.results)} expectations failed"
        )

    def failures_text(self) -> str:
        """A readable list of the failed expectations: type, target, observed, examples."""
        if not self.failures:
            return f"All {len(self.results)} expectations passed for dataset '{self.dataset}'."
        lines = [self.summary_line() + ":"]
        for r in self.failures:
            lines.append(f"- {r.expectation_type} on {r.target}: {r.description}")
            lines.append(f"    observed: {_short(r.observed)}")
            if r.examples:
                lines.append(
                    "    examples: " + "; ".join(_short(e, EXAMPLE_CHARS) for e in r.examples)
                )
            if r.error:
                lines.append(f"    error: {r.error}")
        return "\n".join(lines)

    def to_html(self) -> str:
        """A self-contained HTML page: summary line, then one table row per expectation,
        failures first and highlighted."""
        ordered = self.failures + [r for r in self.results if r.success]
        rows = "\n".join(_html_row(r) for r in ordered)
        title = html.escape(f"Validation of {self.dataset} ({self.kind})")
        summary_class = "pass" if self.success else "fail"
        return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; width: 100%; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f0f0f0; }}
tr.fail td {{ background: #fde2e1; }}
tr.fail td.status {{ color: #b00020; font-weight: bold; }}
tr.pass td.status {{ color: #1b7f3b; }}
p.fail {{ color: #b00020; font-weight: bold; }}
p.pass {{ color: #1b7f3b; font-weight: bold; }}
code {{ font-size: 0.85em; white-space: pre-wrap; word-break: break-all; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p class="{summary_class}">{html.escape(self.summary_line())}</p>
<table>
<thead><tr><th>status</th><th>expectation</th><th>target</th><th>description</th>
<th>observed</th><th>examples</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</body>
</html>
"""


def _without(value: Any, keys: frozenset[str]) -> Any:
    """``value`` with every mapping entry whose key is in ``keys`` left out, recursively."""
    if isinstance(value, Mapping):
        return {k: _without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list | tuple):
        return [_without(v, keys) for v in value]
    return value


def _json_safe(value: Any) -> Any:
    """`value` with NaN/inf replaced by None and tuples by lists, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _short(value: Any, limit: int = OBSERVED_CHARS) -> str:
    """One-line JSON text of a value, cut to `limit` characters."""
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _html_row(r: ExpectationResult) -> str:
    status = "pass" if r.success else "fail"
    examples = "<br>".join(
        f"<code>{html.escape(_short(e, EXAMPLE_CHARS))}</code>" for e in r.examples
    )
    if r.error:
        examples += f"<br><code>{html.escape(r.error)}</code>"
    cells = [
        f'<td class="status">{status.upper()}</td>',
        f"<td>{html.escape(r.expectation_type)}</td>",
        f"<td>{html.escape(r.target)}</td>",
        f"<td>{html.escape(r.description)}</td>",
        f"<td><code>{html.escape(_short(r.observed))}</code></td>",
        f"<td>{examples}</td>",
    ]
    return f'<tr class="{status}">' + "".join(cells) + "</tr>"
