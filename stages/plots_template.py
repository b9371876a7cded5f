"""plots_template: the page ``dvc plots show`` / ``dvc plots diff`` fill, with vega inlined.

    python stages/plots_template.py <out.html>

Writes <out.html>: DVC's plots page with vega, vega-lite and vega-embed inlined from the installed
vl-convert-python (:mod:`simlearn.plots.dvc_template`), so every plot renders with no network.
``.dvc/config`` names it (``plots.html_template``); git ignores it, so a fresh clone writes it in
its first ``dvc repro`` (or alone, right after install: ``dvc repro plots_template``, 3 s).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="the page .dvc/config names as plots.html_template")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> Path:
    args = parse_args(argv)
    from simlearn.plots.dvc_template import write_template

    versions = write_template(args.out)
    print(f"plots_template: {versions} -> {args.out}")
    return args.out


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    main()
