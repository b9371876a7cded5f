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
