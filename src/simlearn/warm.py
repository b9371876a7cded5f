"""Warm stage processes: pay the libraries' imports once per ``dvc repro``, not once per stage.

A stage is a process (DVC runs one command per stage, and that is what keeps its dependencies
exact); each one used to import torch, MLflow and its SQL store, pandas, scikit-learn and Great
Expectations afresh: about 4 s of a 6-7 s baseline stage on 2 cores, paid by ~100 stages of the
default pipeline (``benchmarks/bench_pipeline.py`` prints the split). Here, the first stage
starts a server in the background that imports those libraries once (:data:`PRELOAD`) and waits
on a Unix socket; each later stage script, started by DVC as before, hands its command line,
working folder, environment, umask, resource limits and its stdin/stdout/stderr (the file
descriptors themselves) to the server, which forks a child that runs the script exactly as
``python <script> <args>`` would, in a fresh process, and reports its exit status back. The
stage's process waits, forwards the signals it gets (Ctrl-C, ``timeout``'s SIGTERM) and exits
with the child's status; if it is killed, the server kills the child's process group.

What stays as it was: each stage is still its own process with its own MLflow run, its own
progress bar on the user's terminal, its own exit status, and project code read afresh from disk
(the server imports third-party libraries only, never ``simlearn``). Why not a library (Python's
``multiprocessing`` forkserver, nailgun-style launchers): multiprocessing's forkserver serves
only its own parent and cannot hand a child another process's terminal, environment or signals.

- Never waits: a stage that finds no server runs at once in its own process (cold, as before)
  and starts the server for the stages after it; a server still importing is not used.
- One server per interpreter, installed packages and import-time environment (:func:`key`); it
  exits when idle for ``SIMLEARN_WARM_IDLE`` seconds (default 300, so the next ``dvc repro``
  after an edit finds it warm). ``SIMLEARN_WARM=0`` turns it off; on other systems than Linux it
  is always off (it relies on ``fork`` and file-descriptor passing). ``SIMLEARN_WARM_PRELOAD``
  (comma-separated module names) replaces the list of libraries the server imports.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

#: Libraries imported once by the server: what the stages import, heaviest first (torch 1.9 s,
#: Great Expectations 4.3 s, MLflow's SQL store 3.0 s, scikit-learn 1.6 s on 2 cores). Missing
#: ones are skipped. Never project code: that is read from disk by each stage.
PRELOAD = (
    "numpy",
    "pandas",
    "torch",
    "torch.nn",
    "torch.optim",
    "torch.utils.data",
    "torch.export",
    "torchvision",
    "torchvision.transforms.v2",
    "scipy.stats",
    "sklearn.metrics",
    "sklearn.neighbors",
    "sklearn.linear_model",
    "sklearn.discriminant_analysis",
    "sklearn.decomposition",
    "sklearn.manifold",
    "matplotlib",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
    "mlflow",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "mlflow.pytorch",
    "great_expectations",
    "PIL.Image",
    "yaml",
    "pyarrow.parquet",
    "cv2",
    "faiss",
    "tqdm",
)

#: Environment variables read when those libraries are imported (thread pools, hash seed,
#: warnings, matplotlib's backend): a stage with other values gets a server of its own.
IMPORT_TIME_ENV_PREFIXES = (
    "PYTHON",
    "OMP_",
    "MKL_",
    "OPENBLAS_",
    "KMP_",
    "GOMP_",
    "TORCH",
    "PYTORCH",
    "MPL",
    "LD_",
    "VIRTUAL_ENV",
)

IDLE_S_DEFAULT = 300.0


def preload() -> tuple[str, ...]:
    """:data:`PRELOAD`, or the comma-separated modules of ``SIMLEARN_WARM_PRELOAD`` when set."""
    given = os.environ.get("SIMLEARN_WARM_PRELOAD")
    if given is None:
        return PRELOAD
    return tuple(m.strip() for m in given.split(",") if m.strip())


_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
_LIMITS = ("RLIMIT_AS", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CPU")


def enabled() -> bool:
    """Warm processes are on (Linux, not switched off, not already inside a warm child)."""
    if getattr(sys, "_simlearn_warm_child", False):
        return False
    f = sys.flags  # `python -X importtime`, `-O`, `-I`, ...: the server has none; run as asked
    if sys._xoptions or f.optimize or f.dev_mode or f.isolated or f.ignore_environment:
        return False
    if f.no_site or f.verbose or f.inspect or f.bytes_warning or f.no_user_site:
        return False
    return sys.platform == "linux" and os.environ.get("SIMLEARN_WARM", "1") != "0"


def _packages_stamp() -> tuple[str, int]:
    """The site-packages folder and its mtime, which changes when a package is (un)installed."""
    import sysconfig

    purelib = sysconfig.get_paths()["purelib"]
    try:
        return purelib, os.stat(purelib).st_mtime_ns
    except OSError:
        return purelib, 0


def key() -> str:
    """What a server's imports depend on: interpreter, packages installed, import-time env."""
    import hashlib

    purelib, stamp = _packages_stamp()
    env = sorted(
        (k, v)
        for k, v in os.environ.items()
        if k.startswith(IMPORT_TIME_ENV_PREFIXES) and k != "PYTHONPATH"
    )
    shadowing = _shadowing_path_entries()
    text = json.dumps(
        [sys.executable, sys.version, purelib, stamp, env, shadowing, list(preload())]
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _shadowing_path_entries() -> list[str]:
    """The ``PYTHONPATH`` entries that hold a library the server imports (they would give this
    process another one): they are part of the key. Entries that hold only project code (the
    usual ``PYTHONPATH=src``) are not, so every copy of a project shares one server."""
    tops = {name.split(".")[0] for name in preload()}
    found = []
    for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep):
        folder = os.path.abspath(entry or ".")
        for top in tops:
            if os.path.exists(os.path.join(folder, top)) or os.path.exists(
                os.path.join(folder, top + ".py")
            ):
                found.append(folder)
                break
    return found


def socket_path(k: str | None = None) -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"  # noqa: S108 (a private 0700 folder)
    folder = os.path.join(base, f"simlearn-warm-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.stat(folder)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise PermissionError(f"{folder} must be owned by uid {os.getuid()} with mode 0700")
    path = os.path.join(folder, f"{k or key()}.sock")
    if len(path.encode()) > 100:  # a Unix socket's path holds at most 107 bytes
        raise OSError(f"{path}: too long for a Unix socket; set XDG_RUNTIME_DIR to a short folder")
    return path


# ----------------------------------------------------------------------------- the stage's side


def run_warm(script: str) -> None:
    """Run this process's command (``python <script> <args>``) in a warm child, then exit.

    Call it first in a stage's ``if __name__ == "__main__":``, before anything heavy is
    imported. It returns (and the caller runs the stage itself) when warm processes are off, when
    no server is ready (it then starts one for the next stages), or when the server refuses.
    """
    if not enabled():
        return
    try:
        path = socket_path()
    except OSError:
        return
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        pid = _hand_over(conn, script)
    except OSError:
        conn.close()
        _start_server(path)
        return
    status = _wait_for(conn, pid)
    sys.stdout.flush()
    sys.stderr.flush()
    code = os.waitstatus_to_exitcode(status)
    if code < 0:  # killed by a signal: die of the same one, as the stage itself would have
        import signal

        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    os._exit(code)


def _hand_over(conn: socket.socket, script: str) -> int:
    import resource

    limits = {n: resource.getrlimit(getattr(resource, n)) for n in _LIMITS}
    umask = os.umask(0o022)
    os.umask(umask)
    request = json.dumps(
        {
            "script": os.path.abspath(script),
            "argv": sys.argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": umask,
            "limits": limits,
            "orig_argv": getattr(sys, "orig_argv", []),
            "path": sys.path,
        }
    ).encode()
    conn.settimeout(5.0)
    fds = [0, 1, 2]
    conn.sendmsg(
        [struct.pack("!I", len(request))],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))],
    )
    conn.sendall(request)
    line = _read_line(conn)
    if not line:
        raise ConnectionError("the warm server closed the connection")
    answer = json.loads(line)
    if "pid" not in answer:
        raise ConnectionError(answer.get("error", "refused"))
    return int(answer["pid"])


def _wait_for(conn: socket.socket, pid: int) -> int:
    """The child's wait status; the signals this process gets go to the child's process group."""
    import signal

    def forward(signum, _frame):
        try:
            os.killpg(pid, signum)
        except ProcessLookupError:
            pass

    for name in _FORWARDED:
        signal.signal(getattr(signal, name), forward)
    conn.settimeout(None)
    line = _read_line(conn)
    if not line:  # the server died: the child went with it (it kills the group on exit)
        print("simlearn: the warm server stopped while the stage ran", file=sys.stderr)
        return 1 << 8
    return int(json.loads(line)["status"])


def _read_line(conn: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        try:
            chunk = conn.recv(4096)
        except InterruptedError:
            continue
        if not chunk:
            return b""
        data += chunk
    return data


def _start_server(path: str) -> None:
    """Start a server in the background, detached (own session, no inherited pipes)."""
    import fcntl
    import subprocess

    lock = open(path + ".lock", "a")  # noqa: SIM115 (closed below)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()  # a server holds it: it is starting up
        return
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()
    subprocess.Popen(  # noqa: S603 (this interpreter, this module)
        [sys.executable, "-m", "simlearn.warm", "serve", path],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        start_new_session=True,
        cwd="/",
    )


# ----------------------------------------------------------------------------- the server


def serve(path: str, idle_s: float | None = None) -> None:
    """Import :data:`PRELOAD`, then fork a child per request until idle for ``idle_s``."""
    import fcntl
    import importlib
    import selectors
    import signal
    import time

    if idle_s is None:
        idle_s = float(os.environ.get("SIMLEARN_WARM_IDLE", IDLE_S_DEFAULT))
    lock = open(path + ".lock", "a")  # noqa: SIM115 (held for the server's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return  # another server for this key is up or starting
    for name in preload():
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 (a library that is not installed: not preloaded)
            continue
    warm_up()
    import gc

    gc.collect()
    gc.freeze()  # the children neither scan nor copy (on write) the libraries' objects
    stamp = _packages_stamp()
    tmp = os.path.join(os.path.dirname(path), f"{os.getpid()}.tmp")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(tmp)
    listener.listen(64)
    os.rename(tmp, path)  # clients see the socket only once everything is imported
    ident = os.stat(path).st_ino
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    wake_r, wake_w = socket.socketpair()  # a child's exit wakes the loop (SIGCHLD) at once
    wake_r.setblocking(False)
    wake_w.setblocking(False)
    signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    sel.register(wake_r, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    last = time.monotonic()

    def stop(_signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        while True:
            for sk, _ in sel.select(timeout=1.0):
                if sk.fileobj is wake_r:
                    try:
                        while wake_r.recv(4096):
                            pass
                    except BlockingIOError:
                        pass
                elif sk.fileobj is listener:
                    try:
                        conn, _ = listener.accept()
                    except OSError:
                        continue
                    last = time.monotonic()
                    pid = _fork_child(conn, listener, children)
                    if pid:
                        children[pid] = conn
                        sel.register(conn, selectors.EVENT_READ, pid)
                    else:
                        conn.close()
                else:  # the stage's process closed the connection: it was killed
                    try:
                        gone = not sk.fileobj.recv(1, socket.MSG_PEEK)
                    except OSError:
                        gone = True
                    if gone:
                        _kill_group(sk.data)
                        sel.unregister(sk.fileobj)
            while children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                conn = children.pop(pid, None)
                if conn is not None:
                    try:
                        conn.sendall(json.dumps({"status": status}).encode() + b"\n")
                    except OSError:
                        pass
                    try:
                        sel.unregister(conn)
                    except (KeyError, ValueError):
                        pass  # already unregistered: its stage's process had gone
                    conn.close()
                last = time.monotonic()
            if children:
                last = time.monotonic()
            try:
                replaced = os.stat(path).st_ino != ident
            except OSError:
                replaced = True
            if replaced or time.monotonic() - last > idle_s:
                break
            if not children and _packages_stamp() != stamp:
                break  # packages installed or removed: new stages go to a new server
    finally:
        try:
            if os.stat(path).st_ino == ident:
                os.unlink(path)
        except OSError:
            pass
        listener.close()
        for pid in children:
            _kill_group(pid)


def _kill_group(pid: int) -> None:
    import signal

    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def warm_up() -> list[str]:
    """What the preloaded libraries do on their first call and then keep in the process, done
    once here so that every stage the server forks inherits it; the names of those done.

    - ``torch.export``: its first call imports and sets up ``torch._dynamo`` and the export
      machinery. The report stage exports every newly trained model
      (``simlearn.tracking.log_torch_model``), so an edit's rerun paid it each time. Traced
      here: a module with no parameters on a tensor of zeros, and the torch generator's state
      put back (tests/test_warm.py); each stage reseeds it anyway (:func:`_run_child`).
    - MLflow's map of installed packages to their modules (``importlib.metadata``'s
      ``packages_distributions``, which opens every installed distribution's file list),
      computed on each ``log_model`` to check the model's requirements. The server
      leaves when packages are installed or removed (:func:`_packages_stamp`), so the map is
      never stale.

    Only for libraries already imported (:func:`preload`); one that fails is left cold. What
    it buys: a stage's first model logged in 0.80 s instead of 1.56 s, on 2 cores (means of 3,
    alternating: ``benchmarks/bench_warm.py``).
    """
    done = []
    if "torch.export" in sys.modules:
        try:
            torch = sys.modules["torch"]

            class _Probe(torch.nn.Module):
                def forward(self, x):
                    return torch.relu(x).sum(1)

            state = torch.random.get_rng_state()
            torch.export.export(_Probe(), (torch.zeros(2, 3),))
            torch.random.set_rng_state(state)
            done.append("torch.export")
        except Exception:  # noqa: BLE001, S110 (left cold: the stage pays it, as before)
            pass
    if "mlflow" in sys.modules:
        try:
            from mlflow.utils import requirements_utils

            requirements_utils._init_modules_to_packages_map()
            done.append("mlflow.requirements")
        except Exception:  # noqa: BLE001, S110 (a private function MLflow may rename)
            pass
    return done


def _fork_child(conn: socket.socket, listener: socket.socket, children: dict) -> int:
    """Read one request and fork its child; the child's pid, or 0 when the request is bad."""
    conn.settimeout(5.0)
    try:
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
        if uid != os.getuid():
            return 0
        msg, ancdata, _flags, _addr = conn.recvmsg(4, socket.CMSG_SPACE(3 * 4))
        fds: list[int] = []
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds += struct.unpack(f"{len(data) // 4}i", data[: len(data) // 4 * 4])
        if len(msg) != 4 or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return 0
        (size,) = struct.unpack("!I", msg)
        body = b""
        while len(body) < size:
            chunk = conn.recv(min(65536, size - len(body)))
            if not chunk:
                raise ConnectionError
            body += chunk
        request = json.loads(body)
    except (OSError, ValueError, struct.error):
        return 0
    import signal

    pid = os.fork()
    if pid == 0:  # the child: never returns into the server's loop
        code = 1
        try:
            listener.close()
            for other in children.values():
                other.close()
            conn.close()
            signal.set_wakeup_fd(-1)
            code = _run_child(request, fds)
            if code < 0:  # dies of the signal, as the script would have
                signal.signal(-code, signal.SIG_DFL)
                os.kill(os.getpid(), -code)
        except BaseException:  # noqa: BLE001 (reported, then the child exits)
            import traceback

            traceback.print_exc()
        finally:
            os._exit(code if code >= 0 else 1)
    for fd in fds:
        os.close(fd)
    try:
        conn.settimeout(None)
        conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
    except OSError:
        _kill_group(pid)
    return pid


def _run_child(request: dict, fds: list[int]) -> int:
    """Become ``python <script> <args>`` of the request, run it, and return its exit code."""
    import io
    import random
    import resource
    import runpy
    import signal

    sys._simlearn_warm_child = True  # its own run_warm call runs the script here
    os.setpgid(0, 0)  # a group of its own: the server kills it whole if the stage is killed
    for name in ("SIGTERM", "SIGCHLD", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGPIPE"):
        sig = getattr(signal, name)
        signal.signal(sig, signal.SIG_IGN if name == "SIGPIPE" else signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for name, (soft, hard) in request["limits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError):
            pass
    os.umask(request["umask"])
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    # nothing else of the server's (its socket, lock, epoll, wake-up pair; no library keeps a
    # file open) stays open in the stage, as in a process DVC starts; their Python objects live
    # in the server's frames, which the child leaves only through os._exit, so none is closed twice
    os.closerange(3, 1 << 16)
    unbuffered = bool(os.environ.get("PYTHONUNBUFFERED"))
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    sys.stdout = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace" if not os.isatty(1) else "strict",
        line_buffering=os.isatty(1),
        write_through=unbuffered,
    )
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
    random.seed()  # fresh entropy per stage, as a new interpreter has
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    if "torch" in sys.modules:  # seeded from entropy, as a fresh interpreter's torch is
        sys.modules["torch"].seed()
    for name in [m for m in sys.modules if m == "simlearn" or m.startswith("simlearn.")]:
        del sys.modules[name]  # project code is read from disk by each stage, never inherited
    script = request["script"]
    sys.argv = list(request["argv"])
    sys.path[:] = request["path"]
    sys.orig_argv = list(request.get("orig_argv") or [sys.executable, *sys.argv])
    code = 0
    given = sys.argv[0]  # as the user typed it (relative, usually): the script sees the same
    try:
        same = os.path.samefile(given, script)
    except OSError:
        same = False
    try:
        runpy.run_path(given if same else script, run_name="__main__")
    except SystemExit as e:
        code = _exit_code(e.code)
    except KeyboardInterrupt:  # the interpreter prints it, then dies of SIGINT (exit -2)
        import traceback

        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:  # noqa: BLE001 (what the interpreter does with an uncaught error)
        import traceback

        traceback.print_exc()
        code = 1
    _finalise()
    return code


def _exit_code(value) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _finalise() -> None:
    """What the interpreter does at exit that a stage can notice: join threads, atexit, flush.

    The child then leaves with ``os._exit`` (it must never unwind into the server's loop), so the
    buffers of files still open are flushed here, as the interpreter's teardown would.
    """
    import _io
    import atexit
    import gc
    import threading

    try:
        threading._shutdown()  # non-daemon threads are joined, as at a normal exit
    except Exception:  # noqa: BLE001, S110 (best effort, as the interpreter's own)
        pass
    atexit._run_exitfuncs()
    for obj in gc.get_objects():  # the stage's objects only: the server's are frozen (serve)
        if isinstance(obj, _io._IOBase):  # the C base class: a fast check, unlike io.IOBase
            try:
                if not obj.closed and obj.writable():
                    obj.flush()
            except Exception:  # noqa: BLE001, S110 (as the interpreter: a failed flush is lost)
                pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        raise SystemExit("usage: python -m simlearn.warm serve <socket path>")
