"""The architecture holds: the import-linter layers of pyproject.toml, and no import circle.

grimp (import-linter's graph library) reads every import, those inside functions included, so a
lazy import cannot dodge either check.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")

ROOT = Path(__file__).resolve().parents[1]


def import_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (or a module importing itself):
    each is a set of modules that import each other round a circle. Tarjan's algorithm,
    iterative so that a deep package does not hit the recursion limit."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1 or v in graph.get(v, ()):
                        found.append(sorted(comp))
    return sorted(found)


def test_cycle_finder_finds_planted_circles_and_nothing_else():
    graph = {
        "a": ["b"],
        "b": ["c", "d"],
        "c": ["a"],  # a -> b -> c -> a
        "d": ["e"],
        "e": [],
        "f": ["f"],  # imports itself
        "g": ["d", "e"],  # a diamond is no circle
    }
    assert import_cycles(graph) == [["a", "b", "c"], ["f"]]
    assert import_cycles({"x": ["y"], "y": []}) == []


def test_no_module_of_simlearn_imports_itself_round_a_circle():
    g = grimp.build_graph("simlearn", cache_dir=None)
    graph = {m: g.find_modules_directly_imported_by(m) for m in g.modules}
    assert import_cycles(graph) == []


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_import_linter_contracts_are_kept():
    """The layers of pyproject.toml ([tool.importlinter]): no room imports a room above it."""
    r = subprocess.run(
        ["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout
