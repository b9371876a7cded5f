"""The figures of ``benchmarks/gpu_suite.sh``: every benchmark appends one JSON line per figure to
the file its ``--json`` names, and the suite renders them, with the status of each step, as one
markdown table.

A line: ``{"step": "simclr", "figure": "...", "value": 1234.5, "unit": "images/s", "note": "..."}``.
The suite's own line per step: ``{"step": ..., "status": "ok" | "failed (rc 1)" | "timed out
after 120 s" | "skipped: ...", "seconds": ...}``.

Run: ``python benchmarks/suite_results.py render RESULTS.jsonl [OUT.md]`` prints the table (and
writes it to OUT.md); ``python benchmarks/suite_results.py status RESULTS.jsonl STEP STATUS
SECONDS`` appends a step's status; ``note RESULTS.jsonl STEP LOG`` makes the last line of a
step's log its figure when the step wrote none (the suite calls all three). Standard library
only.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path


def append(
    path: str | Path | None,
    step: str,
    figure: str,
    value: float | str,
    unit: str = "",
    note: str = "",
) -> None:
    """Append one figure to ``path`` (nothing when ``path`` is None)."""
    if path is None:
        return
    rec = {"step": step, "figure": figure, "value": value, "unit": unit, "note": note}
    with Path(path).open("a") as f:
        f.write(json.dumps(rec) + "\n")


def _fmt(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.4g}"


def render(path: str | Path) -> str:
    """The markdown table of every figure and step status in ``path``, in the order written."""
    figures: list[dict] = []
    status: dict[str, dict] = {}
    order: list[str] = []
    p = Path(path)
    lines = p.read_text().splitlines() if p.exists() else []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = str(rec.get("step", "?"))
        if step not in order:
            order.append(step)
        if "status" in rec:
            status[step] = rec
        else:
            figures.append(rec)
    out = [
        "| step | figure | value | unit | note | step status | step s |",
        "|---|---|---:|---|---|---|---:|",
    ]
    for step in order:
        st = status.get(step, {"status": "no status (suite interrupted?)", "seconds": ""})
        rows = [f for f in figures if f.get("step") == step]
        secs = st.get("seconds", "")
        secs = f"{secs:.0f}" if isinstance(secs, int | float) else str(secs)
        if not rows:
            out.append(f"| {step} | - | - | | | {st['status']} | {secs} |")
        for i, r in enumerate(rows):
            tail = f"{st['status']} | {secs}" if i == 0 else " | "
            out.append(
                f"| {step} | {r.get('figure', '')} | {_fmt(r.get('value', ''))} | "
                f"{r.get('unit', '')} | {r.get('note', '')} | {tail} |"
            )
    return "\n".join(out) + "\n"


def note_from_log(path: str | Path, step: str, log: str | Path) -> None:
    """When ``step`` wrote no figure, its log's last line becomes its figure (env, pytest)."""
    p = Path(path)
    lines = p.read_text().splitlines() if p.exists() else []
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if rec.get("step") == step and "figure" in rec:
            return
    text = [x.strip() for x in Path(log).read_text(errors="replace").splitlines() if x.strip()]
    if text:
        append(path, step, "output", "-", "", text[-1].replace("|", "/")[:200])


def main(argv: list[str]) -> None:
    if len(argv) >= 2 and argv[0] == "render":
        table = render(argv[1])
        print(table, end="")
        if len(argv) >= 3:
            Path(argv[2]).write_text(table)
    elif len(argv) == 5 and argv[0] == "status":
        with Path(argv[1]).open("a") as f:
            rec = {"step": argv[2], "status": argv[3], "seconds": float(argv[4])}
            f.write(json.dumps(rec) + "\n")
    elif len(argv) == 4 and argv[0] == "note":
        note_from_log(argv[1], argv[2], argv[3])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
