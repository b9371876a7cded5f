"""Run a Python script with only the packages of the GPU machine's image importable.

The GPU machine runs Python with torch, torchvision, numpy, pandas and scikit-learn and what
they require, nothing else (no dvc, mlflow, great-expectations, pyyaml, kornia, tqdm, pytest).
To know here that a benchmark runs there, this runs it in a fresh interpreter started with
``-S`` (no site-packages) whose path holds ``src/`` and a temporary folder of links to exactly
those distributions: the closure of their ``Requires-Dist`` (extras left out) as installed in
this environment. Anything else fails to import as it would there: ``import yaml`` raises
``ModuleNotFoundError`` and ``importlib.util.find_spec("faiss")`` is None.

Run: ``python benchmarks/gpu_image.py SCRIPT [ARGS...]``. A subprocess that the script starts
with ``sys.executable`` inherits ``PYTHONPATH`` but not ``-S``: it sees the whole environment.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what the GPU machine's image holds, besides Python itself
IMAGE = ("torch", "torchvision", "numpy", "pandas", "scikit-learn")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: tuple[str, ...] = IMAGE) -> list[md.Distribution]:
    """The installed distributions ``roots`` need: their requirements, recursively, without
    extras. A requirement that is not installed here is left out (it is not needed here)."""
    seen: dict[str, md.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        seen[name] = dist
        for req in dist.requires or []:
            if "extra ==" in req.replace("extra==", "extra =="):
                continue
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req)
            if m:
                todo.append(m.group(1))
    return list(seen.values())


def link_folder(dists: list[md.Distribution], into: Path) -> None:
    """Link, in ``into``, every top-level entry of site-packages that ``dists`` installed
    (packages, modules, ``*.libs`` folders of vendored libraries, ``*.dist-info``)."""
    for dist in dists:
        site = Path(str(dist.locate_file("")))
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            src, dst = site / top, into / top
            if src.exists() and not dst.exists():
                dst.symlink_to(src)


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    with tempfile.TemporaryDirectory(prefix="gpu_image_") as tmp:
        link_folder(closure(), Path(tmp))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), tmp])
        env["SIMLEARN_GPU_IMAGE"] = "1"  # for a script that wants to say where it ran
        return subprocess.call([sys.executable, "-S", *argv], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
