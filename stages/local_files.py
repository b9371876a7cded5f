"""local_files: a fingerprint of the files each dataset reads from the user's disk.

    python stages/local_files.py <out_dir>

Writes ``<out_dir>/<dataset>.json`` for every dataset of params.yaml
(:func:`simlearn.data.sources.local_files_fingerprint`: the paths, sizes and modification times
of an ``image_folder``'s files or of a ``manifest`` and the files it lists; a constant record for
the other sources). DVC runs this stage on every ``dvc repro`` (``always_changed``), and
``download@<dataset>`` depends on its own file: a user who adds, removes or edits a photo gets a
new download, and nothing reruns otherwise (the files are the same bytes as before).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from simlearn.config import ConfigError, dataset_config, load_params
    from simlearn.data.sources import local_files_fingerprint

    params = load_params(args.params)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    names = list(params.get("datasets") or {})
    for name in names:
        try:
            cfg, _ = dataset_config(params, name)
            record = local_files_fingerprint(cfg)
        except ConfigError as e:  # check_params reports it; the fingerprint just marks it
            record = {"error": str(e)}
        out = args.out_dir / f"{name}.json"
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        if not out.exists() or out.read_text() != text:
            out.write_text(text)
    for stale in args.out_dir.glob("*.json"):
        if stale.stem not in names:
            stale.unlink()
    return 0


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    sys.exit(main())
