"""code_<kind>: one small file that changes exactly when the code a stage kind runs changes.

    python stages/code_digest.py <stage> <out.json>

Reads the deps of <stage> in dvc.yaml, hashes every file they name (a folder: its ``*.py``
files), and writes ``{path: md5}``, sorted, nothing else: the same code gives the same bytes. The
per-experiment stages (``train@``, ``embed@``, ``evaluate@``) depend on this file, on their own
task's module and on their data, instead of each listing the same 10 to 15 shared files.

Why: DVC rereads and rewrites the whole ``dvc.lock`` after every stage it runs. With 95 stages of
about 20 dependencies each the lock had 9,300 lines, and reading and writing it cost about 2 s a
stage (``dvc repro --cprofile``: ruamel.yaml's round-trip parser), a fifth of the default run.
Listing the shared code once per stage kind instead of once per experiment halves the lock.
This script's own file is not hashed: editing it reruns the digests, not the experiments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("stage", help="a stage of dvc.yaml whose deps are the code to hash")
    p.add_argument("out", type=Path)
    p.add_argument("--dvcfile", type=Path, default=Path("dvc.yaml"))
    return p.parse_args(argv)


def code_files(deps: list[str], root: Path) -> list[Path]:
    """The files the deps name, folders expanded to their ``*.py`` files; sorted, no duplicates."""
    files: set[Path] = set()
    for dep in deps:
        path = root / dep
        if path.is_dir():
            files.update(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
        elif path.is_file():
            files.add(path)
        else:
            raise FileNotFoundError(f"{dep}: listed as code in dvc.yaml but missing")
    me = Path(__file__).resolve()
    return sorted(f for f in files if f.resolve() != me)


def digest(deps: list[str], root: Path) -> dict[str, str]:
    return {
        f.relative_to(root).as_posix(): hashlib.md5(f.read_bytes()).hexdigest()
        for f in code_files(deps, root)
    }


def main(argv: list[str] | None = None) -> dict[str, str]:
    args = parse_args(argv)
    import yaml

    stages = yaml.safe_load(args.dvcfile.read_text())["stages"]
    if args.stage not in stages:
        raise SystemExit(f"{args.dvcfile} has no stage {args.stage!r}")
    root = args.dvcfile.resolve().parent
    hashes = digest(stages[args.stage].get("deps") or [], root)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    print(f"{args.stage}: {len(hashes)} files -> {args.out}")
    return hashes


if __name__ == "__main__":
    from simlearn.warm import run_warm

    run_warm(__file__)  # runs in a warm process (libraries imported) when one is up
    main()
