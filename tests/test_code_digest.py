"""stages/code_digest.py: the file that stands for a stage kind's shared code in dvc.lock."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml
from stages import code_digest

ROOT = Path(__file__).resolve().parents[1]


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "pkg/sub/__pycache__").mkdir(parents=True)
    (tmp_path / "pkg/a.py").write_text("a = 1\n")
    (tmp_path / "pkg/sub/b.py").write_text("b = 2\n")
    (tmp_path / "pkg/sub/notes.txt").write_text("not code\n")
    (tmp_path / "pkg/sub/__pycache__/b.cpython-311.py").write_text("stale\n")
    (tmp_path / "one.py").write_text("x = 3\n")
    (tmp_path / "other.py").write_text("y = 4\n")
    dvc = {"stages": {"code_k": {"cmd": "c", "deps": ["pkg", "one.py"]}, "bare": {"cmd": "c"}}}
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc))
    return tmp_path


def test_digest_hashes_the_listed_files_and_the_python_files_of_listed_folders(tmp_path):
    root = _tree(tmp_path)
    got = code_digest.digest(["pkg", "one.py"], root)
    want = {
        p: hashlib.md5((root / p).read_bytes()).hexdigest()
        for p in ("one.py", "pkg/a.py", "pkg/sub/b.py")
    }
    assert got == want  # no notes.txt, no __pycache__, nothing unlisted (other.py)
    assert list(got) == sorted(got)


def test_main_writes_the_same_bytes_until_a_listed_file_changes(tmp_path):
    root = _tree(tmp_path)
    out = root / "reports/code/k.json"
    args = ["code_k", str(out), "--dvcfile", str(root / "dvc.yaml")]
    code_digest.main(args)
    first = out.read_bytes()
    assert json.loads(first) == code_digest.digest(["pkg", "one.py"], root)
    (root / "other.py").write_text("y = 5\n")  # not listed
    (root / "pkg/sub/notes.txt").write_text("edited\n")  # not Python
    code_digest.main(args)
    assert out.read_bytes() == first
    (root / "pkg/sub/b.py").write_text("b = 3\n")
    code_digest.main(args)
    assert json.loads(out.read_bytes())["pkg/sub/b.py"] != json.loads(first)["pkg/sub/b.py"]


def test_a_missing_dependency_or_stage_is_an_error(tmp_path):
    root = _tree(tmp_path)
    with pytest.raises(FileNotFoundError, match="gone.py"):
        code_digest.digest(["one.py", "gone.py"], root)
    with pytest.raises(SystemExit, match="no stage 'nope'"):
        code_digest.main(["nope", str(root / "x.json"), "--dvcfile", str(root / "dvc.yaml")])


def test_the_project_s_digests_list_no_task_module_and_not_the_digest_script():
    # a task module in a digest would make every experiment of the kind depend on it
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    kinds = [k for k in stages if k.startswith("code_")]
    assert sorted(kinds) == ["code_embed", "code_evaluate", "code_train"]
    for kind in kinds:
        files = code_digest.code_files(stages[kind]["deps"], ROOT)
        names = [f.relative_to(ROOT).as_posix() for f in files]
        assert f"stages/{kind[5:]}.py" in names
        assert not [n for n in names if n.startswith("src/simlearn/tasks/") and
                    not n.endswith("__init__.py")], kind  # fmt: skip
        assert "stages/code_digest.py" not in names


def _imported_library_files(script: Path) -> set[str]:
    """Every file of ``src/simlearn`` that ``script`` or any task module can import, directly or
    through others (imports inside functions included), with the packages that hold them."""
    import ast

    import grimp

    graph = grimp.build_graph("simlearn")
    roots = {m for m in graph.modules if m.startswith("simlearn.tasks.")}
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("simlearn"):
            roots.add(node.module)
            roots.update(f"{node.module}.{a.name}" for a in node.names
                         if f"{node.module}.{a.name}" in graph.modules)  # fmt: skip
        elif isinstance(node, ast.Import):
            roots.update(a.name for a in node.names if a.name.startswith("simlearn"))
    modules = set(roots)
    for root in roots:
        modules |= graph.find_upstream_modules(root)
    for m in list(modules):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
        parts = m.split(".")
        modules.update(".".join(parts[:i]) for i in range(1, len(parts)))
    files = set()
    for m in modules:
        path = ROOT / "src" / Path(*m.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        files.add(path.relative_to(ROOT).as_posix())
    return files


#: Modules that decide in which process a stage runs, not what it computes: simlearn.warm hands
#: the stage's command to a warm child (tests/test_warm.py checks the outputs are the same
#: bytes), so editing it must not rerun every experiment.
LAUNCHERS = {"src/simlearn/warm.py"}


@pytest.mark.parametrize("kind", ["train", "embed", "evaluate"])
def test_each_digest_covers_every_library_module_its_stage_can_import(kind):
    # a module the stage imports but its digest misses would leave experiments stale after an
    # edit of that module (the task modules are each experiment's own dependency instead)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    listed = {
        f.relative_to(ROOT).as_posix()
        for f in code_digest.code_files(stages[f"code_{kind}"]["deps"], ROOT)
    }
    needed = {
        f
        for f in _imported_library_files(ROOT / "stages" / f"{kind}.py")
        if not f.startswith("src/simlearn/tasks/") or f.endswith("__init__.py")
    } - LAUNCHERS
    assert "src/simlearn/distances.py" in needed  # the import graph is seen
    assert not sorted(needed - listed), f"code_{kind} misses {sorted(needed - listed)}"
