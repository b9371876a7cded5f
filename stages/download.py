"""download@<dataset>: fetch (or generate) a dataset and write its canonical form.

    python stages/download.py <dataset> <out_dir>

Writes <out_dir>/ with the canonical files, manifest.parquet and meta.json. Remote archives are
fetched into downloads/<source>/ (or placed there by hand; the error says exactly where).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("dataset")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--downloads", type=Path, default=Path("downloads"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from simlearn.config import ConfigError, dataset_config, load_params
    from simlearn.data.errors import DataError
    from simlearn.data.sources import build_dataset

    cfg, _ = dataset_config(load_params(args.params), args.dataset)
    t0 = time.perf_counter()
    try:
        manifest = build_dataset(
            args.dataset,
            cfg,
            args.out_dir,
            args.downloads.resolve() / cfg.source,
            check_raw=check_raw_tree,
        )
    except (DataError, ConfigError) as e:
        # errors about the user's data or params: one message, no traceback (DataError: a file
        # that cannot be read, a wrong layout, a failed download, a missing manual download)
        print(f"download@{args.dataset} failed:\n{e}", file=sys.stderr)
        return 1
    counts = manifest["split"].value_counts().to_dict()
    print(
        f"[{args.dataset}] {len(manifest)} rows {counts} -> {args.out_dir} "
        f"in {time.perf_counter() - t0:.1f}s"
    )
    return 0


def check_raw_tree(layout: str, root: Path) -> None:
    """A raw tree (Sketchy) passes its Great Expectations suite before it is canonicalised.
    Imported here, when a raw tree needs it: Great Expectations takes about 4 s to import, which
    the embedded sources should not pay."""
    from simlearn.validation.runner import check_raw_tree as check

    check(layout, root)


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    sys.exit(main())
