"""Warm stage processes (simlearn.warm): a script handed to the warm server behaves as the same
script run cold: same argv, folder, environment, umask, limits, output, exit status, signals and
files, and a fresh random state; a killed stage takes its child (and the child's children) with
it; the server leaves when idle. Each test's server has its own socket folder and imports only
numpy (``SIMLEARN_WARM_PRELOAD``), so it starts in about a second."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from simlearn import warm

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="warm processes are Linux-only")

PROBE = textwrap.dedent(
    """
    import sys
    if __name__ == "__main__":
        from simlearn.warm import run_warm
        run_warm(__file__)
    import json, os, random, resource, signal, subprocess, time
    import numpy as np
    mode = sys.argv[1]
    if mode == "report":
        umask = os.umask(0); os.umask(umask)
        print(json.dumps({
            "argv": sys.argv, "cwd": os.getcwd(), "probe": os.environ.get("PROBE_VALUE"),
            "umask": umask, "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
            "path0": sys.path[0], "pid": os.getpid(), "ppid": os.getppid(),
            "random": random.random(), "np_random": float(np.random.rand()),
            "stdin": sys.stdin.read(), "warm": getattr(sys, "_simlearn_warm_child", False),
        }))
        print("to stderr", file=sys.stderr)
    elif mode == "unflushed":
        f = open("unflushed.txt", "w")
        f.write("written at exit")  # never closed: the interpreter flushes it at exit
    elif mode == "exit":
        sys.exit(int(sys.argv[2]))
    elif mode == "message":
        sys.exit("one clear message")
    elif mode == "error":
        raise ValueError("an uncaught error")
    elif mode == "sleep":
        grandchild = subprocess.Popen(["sleep", "60"])
        with open("pids.json", "w") as f:
            json.dump({"child": os.getpid(), "grandchild": grandchild.pid}, f)
        time.sleep(60)
    """
)


@pytest.fixture(scope="module")
def env():
    import tempfile

    runtime = tempfile.mkdtemp(prefix="warm-", dir="/tmp")  # a socket's path holds 107 bytes
    e = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "XDG_RUNTIME_DIR": runtime,
        "SIMLEARN_WARM_PRELOAD": "numpy",
        "SIMLEARN_WARM_IDLE": "60",
    }
    e.pop("SIMLEARN_WARM", None)
    yield e
    import shutil

    shutil.rmtree(runtime, ignore_errors=True)  # its server sees its socket gone and leaves


@pytest.fixture(scope="module")
def probe(tmp_path_factory, env) -> Path:
    folder = tmp_path_factory.mktemp("warm-probe")
    script = folder / "probe.py"
    script.write_text(PROBE)
    _run(script, ["exit", "0"], folder, env)  # starts the server
    sock = _socket(env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not os.path.exists(sock):
        time.sleep(0.05)
    assert os.path.exists(sock), "the warm server did not start within 60 s"
    return script


def _socket(env: dict) -> str:
    code = "from simlearn import warm; print(warm.socket_path())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    return out.stdout.strip()


def _run(script: Path, args: list[str], cwd: Path, env: dict, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, script.name, *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, **kw,
    )  # fmt: skip


def _report(probe: Path, env: dict, **kw) -> dict:
    res = _run(probe, ["report", "x y"], probe.parent, {**env, "PROBE_VALUE": "v1"}, **kw)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "to stderr\n"
    return json.loads(res.stdout)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"


def test_a_warm_child_sees_what_a_cold_run_sees(probe: Path, env: dict) -> None:
    def limited():
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (10**9, resource.RLIM_INFINITY))
        os.umask(0o027)

    hot = _report(probe, env, input="from stdin", preexec_fn=limited)
    cold = _report(probe, {**env, "SIMLEARN_WARM": "0"}, input="from stdin", preexec_fn=limited)
    assert hot["warm"] and not cold["warm"]
    assert hot["ppid"] != cold["ppid"]  # the warm child's parent is the server, not the caller
    for k in ("argv", "cwd", "probe", "umask", "fsize", "path0", "stdin"):
        assert hot[k] == cold[k], k
    assert hot["argv"] == ["probe.py", "report", "x y"]
    assert hot["umask"] == 0o027 and hot["fsize"] == 10**9 and hot["stdin"] == "from stdin"


def test_each_warm_child_draws_fresh_random_numbers(probe: Path, env: dict) -> None:
    a, b = _report(probe, env), _report(probe, env)
    assert a["warm"] and b["warm"]
    assert a["random"] != b["random"] and a["np_random"] != b["np_random"]


def test_exit_status_messages_and_tracebacks_are_the_scripts(probe: Path, env: dict) -> None:
    folder = probe.parent
    for e in (env, {**env, "SIMLEARN_WARM": "0"}):
        assert _run(probe, ["exit", "3"], folder, e).returncode == 3
        res = _run(probe, ["message"], folder, e)
        assert (res.returncode, res.stderr) == (1, "one clear message\n")
        res = _run(probe, ["error"], folder, e)
        assert res.returncode == 1
        assert res.stderr.startswith("Traceback (most recent call last):\n")
        assert res.stderr.endswith("ValueError: an uncaught error\n")


def test_files_left_open_are_flushed_at_exit(probe: Path, env: dict) -> None:
    out = probe.parent / "unflushed.txt"
    out.unlink(missing_ok=True)
    assert _run(probe, ["unflushed"], probe.parent, env).returncode == 0
    assert out.read_text() == "written at exit"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signalled_stage_takes_its_child_and_grandchildren_with_it(
    probe: Path, env: dict, sig: signal.Signals
) -> None:
    pids = probe.parent / "pids.json"
    pids.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, probe.name, "sleep"], cwd=probe.parent, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not pids.exists():
        time.sleep(0.05)
    time.sleep(0.2)
    started = json.loads(pids.read_text())
    assert started["child"] != proc.pid  # it runs in the warm child
    proc.send_signal(sig)
    proc.wait(timeout=10)
    assert proc.returncode == -sig  # SIGINT: a KeyboardInterrupt, then SIGINT, as a cold script
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_alive(p) for p in started.values()):
        time.sleep(0.05)
    assert not _alive(started["child"])
    assert not _alive(started["grandchild"])  # the signal goes to the child's whole group


def test_switched_off_the_script_runs_in_the_callers_process(probe: Path, env: dict) -> None:
    res = subprocess.run(
        [sys.executable, "-c", "import runpy, sys, os; sys.argv = ['probe.py', 'report']; "
         "print(os.getpid()); runpy.run_path('probe.py', run_name='__main__')"],
        cwd=probe.parent, env={**env, "SIMLEARN_WARM": "0"}, capture_output=True, text=True,
    )  # fmt: skip
    caller, report = res.stdout.splitlines()
    assert json.loads(report)["pid"] == int(caller)


def test_an_idle_server_leaves_and_removes_its_socket(tmp_path: Path, env: dict) -> None:
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))  # a socket path is short
    e = {**env, "XDG_RUNTIME_DIR": str(runtime), "SIMLEARN_WARM_IDLE": "1"}
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    assert _run(script, ["exit", "0"], tmp_path, e).returncode == 0  # cold; starts the server
    sock = _socket(e)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not os.path.exists(sock):
        time.sleep(0.05)
    assert os.path.exists(sock)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(sock):
        time.sleep(0.1)
    assert not os.path.exists(sock)
    import shutil

    shutil.rmtree(runtime, ignore_errors=True)


def test_another_import_time_environment_gets_another_server(env: dict) -> None:
    def key_with(extra: dict) -> str:
        code = "from simlearn import warm; print(warm.key())"
        out = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True
        )
        return out.stdout.strip()

    base = key_with({})
    assert key_with({"MLFLOW_TRACKING_URI": "sqlite:///x.db"}) == base  # read at call time
    assert key_with({"OMP_NUM_THREADS": "1"}) != base  # read when torch is imported
    assert key_with({"SIMLEARN_WARM_PRELOAD": "numpy,pandas"}) != base


@pytest.mark.slow  # a real stage process, cold and warm
def test_a_real_stage_writes_the_same_bytes_warm_and_cold(tmp_path: Path, env: dict) -> None:
    import yaml

    from simlearn.data.sources import DatasetConfig, build_dataset

    params = {
        "datasets": {"digits": {"source": "digits"}},
        "experiments": {"raw": {"task": "metric", "dataset": "digits", "model": {"name": "raw"}}},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    build_dataset("digits", DatasetConfig(source="digits"), tmp_path / "data" / "digits")
    e = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    e.pop("SIMLEARN_WARM_PRELOAD")  # the real list: torch, MLflow, scikit-learn, ...

    def stage(script: str, *args: str, warm_on: bool = True) -> subprocess.CompletedProcess:
        res = subprocess.run(
            [sys.executable, str(ROOT / "stages" / script), *args], cwd=tmp_path,
            env=e if warm_on else {**e, "SIMLEARN_WARM": "0"},
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-3000:]
        return res

    stage("train.py", "raw", "data/digits", "models/raw", "reports/train/raw")  # starts the server
    sock = e["XDG_RUNTIME_DIR"] and _socket(e)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not os.path.exists(sock):
        time.sleep(0.1)
    assert os.path.exists(sock)
    stage("embed.py", "raw", "models/raw", "data/digits", "cold.npz", warm_on=False)
    stage("embed.py", "raw", "models/raw", "data/digits", "warm.npz")
    assert (tmp_path / "cold.npz").read_bytes() == (tmp_path / "warm.npz").read_bytes()
    for name, on in (("cold", False), ("warm", True)):
        stage("evaluate.py", "raw", "cold.npz", "data/digits", f"eval_{name}",
              "--curves", f"curves_{name}", warm_on=on)  # fmt: skip
    cold = json.loads((tmp_path / "eval_cold" / "metrics.json").read_text())
    hot = json.loads((tmp_path / "eval_warm" / "metrics.json").read_text())
    assert cold == hot and cold["map"] > 0.3
    a = np.loadtxt(tmp_path / "curves_cold" / "raw" / "pr.csv", delimiter=",", skiprows=1)
    b = np.loadtxt(tmp_path / "curves_warm" / "raw" / "pr.csv", delimiter=",", skiprows=1)
    assert np.array_equal(a, b)


def test_the_stage_scripts_hand_over_before_importing_anything_heavy() -> None:
    # a stage imports torch, pandas or MLflow only after run_warm: otherwise warm saves nothing
    for script in sorted((ROOT / "stages").glob("*.py")):
        if script.name == "cmd_guard.py":  # stdlib only, 0.1 s: not worth a hand-over
            continue
        code = (
            "import sys, runpy; sys.argv = ['x']\n"
            "import simlearn.warm as w\n"
            "def stop(_):\n"
            "    heavy = sorted(m for m in ('torch', 'pandas', 'mlflow', 'sklearn', "
            "'great_expectations', 'numpy') if m in sys.modules)\n"
            "    print(' '.join(heavy) or 'none'); raise SystemExit(0)\n"
            "w.run_warm = stop\n"
            f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.stdout.strip() in ("none", "numpy pandas", "numpy"), (script.name, out)
        if script.name in ("train.py", "embed.py", "evaluate.py", "download.py", "validate.py"):
            assert out.stdout.strip() == "none", script.name


def test_warm_is_off_outside_linux_and_when_switched_off(monkeypatch) -> None:
    monkeypatch.setenv("SIMLEARN_WARM", "0")
    assert not warm.enabled()
    monkeypatch.setenv("SIMLEARN_WARM", "1")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert not warm.enabled()


def test_interpreter_options_the_server_lacks_run_cold(probe: Path, env: dict) -> None:
    # `python -X importtime stages/train.py ...` must measure that process, not a warm child
    for flags in (["-X", "importtime"], ["-O"], ["-X", "dev"]):
        res = subprocess.run(
            [sys.executable, *flags, probe.name, "report"], cwd=probe.parent, env=env,
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert res.returncode == 0, res.stderr[-2000:]
        assert json.loads(res.stdout.splitlines()[-1])["warm"] is False, flags


def test_a_pythonpath_of_project_code_shares_the_server_one_of_libraries_does_not(
    tmp_path: Path, env: dict
) -> None:
    def key_with(pythonpath: str) -> str:
        code = "from simlearn import warm; print(warm.key())"
        e = {**env, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{pythonpath}"}
        out = subprocess.run([sys.executable, "-c", code], env=e, capture_output=True, text=True)
        return out.stdout.strip()

    (tmp_path / "copy" / "simlearn").mkdir(parents=True)  # a copy of the project's code
    (tmp_path / "libs" / "numpy").mkdir(parents=True)  # another numpy
    base = key_with("")
    assert key_with(str(tmp_path / "copy")) == base
    assert key_with(str(tmp_path / "libs")) != base


def test_warm_up_leaves_the_torch_generator_and_fills_mlflows_package_map() -> None:
    import importlib.metadata

    import torch
    import torch.export  # noqa: F401 (warm_up works on the libraries already imported)
    from mlflow.utils import requirements_utils

    requirements_utils._MODULES_TO_PACKAGES = None  # as in a server that has not warmed up
    before = torch.random.get_rng_state().clone()
    assert warm.warm_up() == ["torch.export", "mlflow.requirements"]
    assert torch.equal(torch.random.get_rng_state(), before)  # no random number drawn
    found = requirements_utils._MODULES_TO_PACKAGES
    for module, dists in importlib.metadata.packages_distributions().items():
        assert set(dists) <= set(found[module]), module  # the map MLflow computes itself
    assert "torch" in found["torch"] and "mlflow" in found["mlflow"]


TORCH_PROBE = textwrap.dedent(
    """
    import sys
    if __name__ == "__main__":
        from simlearn.warm import run_warm
        run_warm(__file__)
    import hashlib, json
    import torch
    print(json.dumps({
        "warm": getattr(sys, "_simlearn_warm_child", False),
        "rng": hashlib.sha256(torch.random.get_rng_state().numpy().tobytes()).hexdigest(),
        "first": torch.rand(3).tolist(),
        "dynamo": "torch._dynamo" in sys.modules,
    }))
    """
)


@pytest.mark.slow  # a server that imports torch and warms up torch.export (about 5 s)
def test_each_warm_child_draws_fresh_torch_random_numbers_and_inherits_the_warm_up(
    tmp_path: Path, env: dict
) -> None:
    import tempfile

    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))
    e = {**env, "XDG_RUNTIME_DIR": str(runtime), "SIMLEARN_WARM_PRELOAD": "torch,torch.export"}
    script = tmp_path / "probe.py"
    script.write_text(TORCH_PROBE)
    assert _run(script, [], tmp_path, e).returncode == 0  # cold; starts the server
    sock = _socket(e)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not os.path.exists(sock):
        time.sleep(0.1)
    assert os.path.exists(sock), "the warm server did not start within 120 s"
    a, b = (json.loads(_run(script, [], tmp_path, e).stdout) for _ in range(2))
    cold = json.loads(_run(script, [], tmp_path, {**e, "SIMLEARN_WARM": "0"}).stdout)
    assert a["warm"] and b["warm"] and not cold["warm"]
    assert a["dynamo"] and b["dynamo"]  # the server's torch.export warm-up, inherited
    assert not cold["dynamo"]  # a cold interpreter that imports torch alone lacks it
    # seeded from entropy each time, as fresh interpreters are (not the server's one state)
    assert a["rng"] != b["rng"] and a["first"] != b["first"]
    import shutil

    shutil.rmtree(runtime, ignore_errors=True)
