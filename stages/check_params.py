"""check_params: validate the whole params.yaml before any stage that reads it runs.

    python stages/check_params.py <out.json> [--local-files <dir>] [--experiments <file>]

Checks every ``datasets.<name>`` section (:func:`simlearn.config.dataset_config`) and every
``experiments.<key>`` section (:func:`simlearn.tasks.experiment_config`: types, ranges, the
task's rules across keys, and that its dataset is declared), and that every dataset and
experiment key matches ``^[A-Za-z0-9_-]+$``: keys become folder names and command arguments in
dvc.yaml, so a space or a ``;`` must never reach a shell (``stages/cmd_guard.py`` refuses them
too, first in each such stage's cmd, for the runs that skip this stage). The file is read with
:func:`simlearn.config.load_params`, which refuses alias bombs, huge or deeply nested documents
and keys written twice, naming the line. Prints every error with its full key and exits 1;
otherwise writes ``{"ok": true}`` to <out.json>, and with ``--experiments <file>`` the
experiment names, in order, to <file> (:func:`write_experiment_names`: the report's list).

``--local-files <dir>``: also writes ``<dir>/<dataset>.json`` for every dataset of params.yaml
(:func:`simlearn.data.sources.local_files_fingerprint`: the paths, sizes and modification times
of an ``image_folder``'s files or of a ``manifest`` and the files it lists; a constant record
for the other sources), before the checks, so a refused edit leaves them current. dvc.yaml runs
this stage on every ``dvc repro`` (``always_changed``) and ``download@<dataset>`` depends on its
own file: a user who adds, removes or edits a photo gets a new download, and nothing reruns
otherwise. Why one stage, not two: each stage DVC runs costs a rewrite of dvc.lock, about 1 s
for the default project (``benchmarks/bench_pipeline.py`` prints it), on every repro.

The output is the same whatever the params are. DVC runs this stage on every repro, but the
stages that depend on its output see the same file and stay up to date: editing one experiment
still reruns only that experiment's stages.

A failed check leaves <out.json> and the names as they were (dvc.yaml marks them ``persist``,
so DVC does not delete them before the run either): the exit status stops ``dvc repro``, and
<out.json> is a dependency of every download@ and train@. Were it gone, a later
``dvc repro -s train@x`` (which skips this stage) would delete models/x, as DVC does with a
stage's outputs before running it, and then fail on the missing file.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: what a dataset or experiment key may look like
KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
GROUPS = ("datasets", "experiments")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("out", type=Path, help="written with {'ok': true} when every check passes")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--local-files", type=Path, help="where to write each dataset's fingerprint")
    p.add_argument(
        "--experiments",
        type=Path,
        help="where to write the experiment names, in params.yaml's order (the report's list)",
    )
    return p.parse_args(argv)


def write_local_files(params: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Write ``out_dir/<dataset>.json``, the fingerprint of the files each dataset of ``params``
    reads from the user's disk (a dataset whose section fails to load gets its error instead:
    the checks report it), rewriting only those that changed, and remove the files of datasets
    no longer declared. A name that is not a plain name gets none (the checks refuse it).
    Returns the names written."""
    from simlearn.config import dataset_config
    from simlearn.data.sources import local_files_fingerprint

    out_dir.mkdir(parents=True, exist_ok=True)
    entries = params.get("datasets")
    names = [
        n
        for n in (entries if isinstance(entries, Mapping) else {})
        if isinstance(n, str) and KEY_PATTERN.fullmatch(n)
    ]
    for name in names:
        try:
            cfg, _ = dataset_config(params, name)
            record = local_files_fingerprint(cfg)
        except ValueError as e:  # ConfigError, and a source's own range check
            record = {"error": str(e)}
        out = out_dir / f"{name}.json"
        text = json.dumps(record, indent=1, sort_keys=True) + "\n"
        if not out.exists() or out.read_text() != text:
            out.write_text(text)
    for stale in out_dir.glob("*.json"):
        if stale.stem not in names:
            stale.unlink()
    return names


def key_errors(params: Mapping[str, Any]) -> list[str]:
    """A message for every group that is not a mapping and every key that is not a plain name."""
    errors = []
    for group in GROUPS:
        entries = params.get(group)
        if entries is None:
            continue
        if not isinstance(entries, Mapping):
            errors.append(
                f"{group}={entries!r}: expected a mapping of names to sections, "
                f"got {type(entries).__name__}"
            )
            continue
        for key in entries:
            if not (isinstance(key, str) and KEY_PATTERN.fullmatch(key)):
                errors.append(
                    f"{group}.{key!r}: not allowed as a name; use only letters, digits, '_' and "
                    f"'-' (^{KEY_PATTERN.pattern}$): names become folder names and command "
                    "arguments in dvc.yaml"
                )
    return errors


def write_experiment_names(params: Mapping[str, Any], path: Path) -> list[str]:
    """Write ``{"experiments": [...]}``, the experiment keys of ``params`` in their order, to
    ``path``; the same names give the same bytes. The report lists these experiments and
    depends on this file, not on the ``experiments`` section: that section is in dvc.lock once
    per ``train@`` already, and a second copy (10 KB) made every rewrite of the lock, one after
    each stage DVC runs, that much slower (``benchmarks/bench_pipeline.py`` prints the lock's
    size and one rewrite's seconds)."""
    names = list(params.get("experiments") or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"experiments": names}, indent=1) + "\n")
    return names


def section_errors(params: Mapping[str, Any]) -> list[str]:
    """The ConfigError message of every dataset and experiment section that fails to load."""
    from simlearn.config import dataset_config
    from simlearn.tasks import experiment_config

    loaders = {"datasets": dataset_config, "experiments": experiment_config}
    errors = []
    for group, load in loaders.items():
        entries = params.get(group)
        if not isinstance(entries, Mapping):
            continue  # reported by key_errors
        for name in entries:
            try:
                load(params, name)
            except ValueError as e:  # ConfigError, and the sources' own range checks
                errors.append(str(e))
    return errors


def check(params: Mapping[str, Any]) -> list[str]:
    """Every error in ``params``, keys first; empty when all of it is valid."""
    return key_errors(params) + section_errors(params)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import yaml

    from simlearn.config import ConfigError, load_params

    try:
        params = load_params(args.params)
    except ConfigError as e:  # the message names the file and the line
        print(f"check_params: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"check_params: cannot read {args.params}: {e}", file=sys.stderr)
        return 1
    except yaml.YAMLError as e:  # its message gives the line and column
        print(f"check_params: {args.params} is not valid YAML:\n{e}", file=sys.stderr)
        return 1
    if args.local_files is not None:
        write_local_files(params, args.local_files)
    errors = check(params)
    if errors:
        lines = "\n".join(f"  - {e}" for e in errors)
        print(f"check_params: {len(errors)} error(s) in {args.params}:\n{lines}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"ok": True}) + "\n")
    if args.experiments is not None:
        write_experiment_names(params, args.experiments)
    counts = {g: len(params.get(g) or {}) for g in GROUPS}
    print(
        f"[check_params] {counts['datasets']} datasets and {counts['experiments']} experiments "
        f"in {args.params} are valid"
    )
    return 0


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    sys.exit(main())
