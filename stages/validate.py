"""validate@<dataset>: run the Great Expectations suite of the dataset's kind.

    python stages/validate.py <dataset> <data_dir> <report_dir>

Writes <report_dir>/<dataset>.json (the result) and <dataset>.html (a readable report). Exits
non-zero, printing what failed, when any expectation fails: training never starts on bad data.
Refuses, before the suite, a folder whose files no longer match the ``digest.json`` its download
wrote (the stages that read the dataset depend on that file, not on the folder: dvc.yaml); a
folder without one (made by hand, not by download@) is validated as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("data_dir", type=Path)
    p.add_argument("report_dir", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from simlearn.config import dataset_config, load_params
    from simlearn.data.canonical import DIGEST_FILE, digest_mismatch
    from simlearn.validation import validate_dataset

    _, vcfg = dataset_config(load_params(args.params), args.dataset)
    digest = args.data_dir / DIGEST_FILE  # absent from a folder made by hand: nothing to check
    if digest.is_file() and (why := digest_mismatch(args.data_dir)):
        print(
            f"validate@{args.dataset}: FAILED\n{why}\n"
            f"Rebuild it from its source: dvc repro -f -s download@{args.dataset}",
            file=sys.stderr,
        )
        return 1
    try:
        report = validate_dataset(
            args.data_dir,
            min_rows_per_split=vcfg.min_rows_per_split,
            min_valid_fraction=vcfg.min_valid_fraction,
            splits=vcfg.splits or None,
        )
    except (FileNotFoundError, ValueError) as e:  # no dataset folder, meta.json or manifest
        print(f"validate@{args.dataset}: FAILED\n{e}", file=sys.stderr)
        return 1
    args.report_dir.mkdir(parents=True, exist_ok=True)
    (args.report_dir / f"{args.dataset}.json").write_text(
        json.dumps(report.to_json_dict(), indent=2, default=str) + "\n"
    )
    (args.report_dir / f"{args.dataset}.html").write_text(report.to_html())
    n = len(report.results)
    if not report.success:
        print(f"validate@{args.dataset}: FAILED\n{report.failures_text()}", file=sys.stderr)
        return 1
    print(f"[{args.dataset}] all {n} expectations passed")
    return 0


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    sys.exit(main())
