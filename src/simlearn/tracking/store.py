"""The MLflow tracking store: where runs go, whether the store works, how experiments are laid out.

- Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<absolute repo root>/mlflow.db``,
  so ``dvc repro``, ``dvc exp run`` (queued runs execute in temporary copies of the repo) and the
  tests all land in one store. Artifacts of that local store go to ``<repo root>/mlartifacts``.
  The store is checked before its first use (:func:`check_store`): a broken, read-only, full
  or unreachable store fails within seconds with an error naming the URI and the fix, instead of
  MLflow's minutes of retries or a SQLAlchemy traceback halfway through a stage. A SQLite store
  that was copied or moved with its project is pointed at its own ``mlartifacts`` folder when it
  is opened (:func:`relocate_artifacts`).
- Layout (``tracking.experiment_per`` in params.yaml, :class:`TrackingConfig`): one MLflow
  experiment per **dataset** by default, so every run on the same data sits in one runs table;
  ``experiment`` gives one MLflow experiment per params key instead. Either way an MLflow run is
  one training of one params experiment (:mod:`simlearn.tracking.runs`).
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from simlearn.config import ConfigError, from_dict

_QUEUE_DIR = "/.dvc/tmp/exps/"

# MLflow 3.x opens an experiment on its GenAI pages unless this tag says model training.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
UI_RUNS_VIEW = "workflowType=machine_learning"  # URL parameter: open the runs table

STORE_TIMEOUT_S = 5.0  # per check of the tracking store; the whole check stays well under 15 s

#: Free space (bytes) a local SQLite store needs on the disk of its database and on that of its
#: artifacts (``<database folder>/mlartifacts``), or the store check refuses it. Why: on a full
#: disk SQLite cannot write its journal and MLflow cannot write a model, so a stage fails halfway
#: through (``database or disk is full``, ``OSError: [Errno 28]``), leaving its run RUNNING and
#: a model without its files. A bound, not a measurement: 32 MiB holds the journal of any
#: transaction MLflow makes and the models and figures of the default experiments many times
#: over (the digits networks' archives are tens of kilobytes), and refuses no working disk.
MIN_FREE_BYTES = 32 * 2**20

#: MLflow's HTTP client, by default, waits 120 s for each answer and retries 7 times with
#: exponential backoff, so a server that answers 503 keeps a stage busy for minutes and one that
#: never answers for about 15 minutes. Unless the user sets them, every call to an HTTP store is
#: bounded instead: 6 s per connect or read, one retry after at most 1.5 s (backoff 1 s, no wait
#: before urllib3's first retry, jitter up to 0.5 s): a failing call raises within 13.5 s.
HTTP_BOUNDS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "6",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
}


# ----------------------------------------------------------------------------- configuration


LAYOUTS = ("dataset", "experiment")


@dataclass(frozen=True)
class TrackingConfig:
    """The ``tracking:`` section of params.yaml."""

    # dataset: one MLflow experiment per dataset (every run on the same data is one runs table,
    # runs named by their params key) | experiment: one MLflow experiment per params key
    experiment_per: str = "dataset"

    def __post_init__(self) -> None:
        if self.experiment_per not in LAYOUTS:
            raise ConfigError(
                f"experiment_per={self.experiment_per!r}: allowed values are "
                f"{', '.join(map(repr, LAYOUTS))}"
            )


def config(params: Mapping[str, Any]) -> TrackingConfig:
    """The validated ``tracking:`` section of a whole params mapping (defaults when absent)."""
    return from_dict(TrackingConfig, params.get("tracking"), "tracking")


def experiment_name(key: str, dataset: str, layout: str = "dataset") -> str:
    """The MLflow experiment a run of params experiment ``key`` on ``dataset`` belongs to."""
    if layout not in LAYOUTS:
        allowed = ", ".join(map(repr, LAYOUTS))
        raise ConfigError(f"tracking.experiment_per={layout!r}: allowed values are {allowed}")
    return dataset if layout == "dataset" else key


# ----------------------------------------------------------------------------- the store


class TrackingStoreError(RuntimeError):
    """The tracking store cannot be used; the message names the URI, the cause and the fix."""


def repo_root(start: str | Path | None = None) -> Path:
    """The project root: the nearest folder at or above ``start`` (default: cwd) with dvc.yaml.

    ``dvc exp run --queue`` executes in a temporary copy under ``<root>/.dvc/tmp/exps/``; runs
    made there belong to the user's store at ``<root>``, so that prefix is stripped first.
    """
    here = Path(start or os.getcwd()).resolve()
    text = here.as_posix()
    if _QUEUE_DIR in text:
        here = Path(text.split(_QUEUE_DIR)[0])
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").exists():
            return folder
    return here


def tracking_uri(root: str | Path | None = None) -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    return f"sqlite:///{repo_root(root) / 'mlflow.db'}"


class _NoSecondTraceback(logging.Filter):
    """Drop MLflow's log of a database error it is about to raise: the error itself ends the
    stage, said once (:func:`as_store_error`), or keeps its traceback where it is a bug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("SQLAlchemy database error")


logging.getLogger("mlflow.store.db.utils").addFilter(_NoSecondTraceback())  # once, at import


def configure(root: str | Path | None = None) -> str:
    """Point MLflow's process-wide calls (model logging, registry) at the store; its URI."""
    uri = tracking_uri(root)
    user_set = "MLFLOW_TRACKING_URI" in os.environ
    for name, value in HTTP_BOUNDS.items():  # read by MLflow at each request
        os.environ.setdefault(name, value)
    mlflow.set_tracking_uri(uri)
    if not user_set:  # MLflow exports it; the rule above must keep seeing "not set by the user"
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return uri


_CLIENTS: dict[str, MlflowClient] = {}


def get_client() -> MlflowClient:
    """The client of the store at :func:`tracking_uri`, checked (:func:`check_store`) and, for
    a copied SQLite store, relocated (:func:`relocate_artifacts`) once per process."""
    uri = configure()
    if _CLIENTS.get(uri) is None:  # opening a store (a database, a server) is not free
        check_store(uri)
        said = relocate_artifacts(uri)
        if said:
            print(said, file=sys.stderr, flush=True)
        _forget_artifact_repos()
        _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


def _forget_artifact_repos() -> None:
    """Empty MLflow's process-wide cache of artifact repositories, keyed by run id alone.

    A copied store has the same run ids as its original: a process that used the original
    would otherwise keep writing the copy's runs into the original's folder.
    """
    from mlflow.tracking._tracking_service import utils

    cache = getattr(utils, "_artifact_repos_cache", None)  # MLflow 3 (3.17 checked)
    if cache is not None:
        cache.clear()


def check_store(uri: str, timeout: float = STORE_TIMEOUT_S, min_free: int = MIN_FREE_BYTES) -> None:
    """Fail fast, naming ``uri``, the cause and the fix, when the tracking store cannot be used.

    MLflow itself retries an unreachable server for minutes (7 retries, exponential backoff,
    120 s timeout per request) and reports a locked, read-only or corrupt database without the
    URI, halfway through a stage. Checked here: SQLite (the folder can be created, both the
    database's disk and its artifacts' disk have ``min_free`` bytes free, the file is a database,
    and a write transaction can start within ``timeout`` and change a page, which needs the file
    and its folder, where SQLite creates its journal, to be writable), ``file:`` folders
    (writable), and HTTP(S) servers (``/health`` answers within ``timeout``, no retry). Other
    schemes (PostgreSQL, MySQL, Databricks) are left to MLflow.
    """
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme == "sqlite":
        _check_sqlite(uri, timeout, min_free)
    elif scheme in ("http", "https"):
        _check_http(uri, timeout)
    elif scheme in ("", "file"):
        path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
        _check_folder(uri, Path(path))


_FIX = (
    "Fix: {what}, or log elsewhere: export MLFLOW_TRACKING_URI=sqlite:///<a writable folder>/"
    "mlflow.db (or http://<host>:<port> of a running `mlflow server`)."
)


# What an error MLflow raises in the middle of a stage says about the store: (words, cause, fix).
_MID_STAGE_CAUSES = (
    (
        ("disk i/o error", "disk is full", "no space left", "file too large", "quota"),
        "its disk is full, over a quota or a file-size limit (`ulimit -f`), no longer "
        "writable (`chattr +i`, a read-only remount), or failing",
        "free space on the disk that holds it (`df -h`), lift the limit, or make it writable",
    ),
    (
        ("readonly", "read-only", "permission denied", "operation not permitted"),
        "it became read-only",
        "make the database and its folder writable again",
    ),
    (
        ("database is locked", "busy"),
        "another process held its lock too long",
        "stop the process that holds it",
    ),
    (
        ("max retries", "connection refused", "connection aborted", "timed out", "timeout",
         "503", "502", "504", "500 ", "temporarily_unavailable", "name or service not known",
         "internal_error: response"),  # MLflow 3.18's words for a server answering 500, 503
        "the server stopped answering, or its database failed",
        "restart the server or its database (see the server's log)",
    ),
)  # fmt: skip


def as_store_error(error: BaseException, uri: str | None = None) -> TrackingStoreError | None:
    """One message for a tracking store that failed in the middle of a stage, after the store
    check had passed (a disk that fills, a database made read-only, a server that stops): the
    URI, the likely cause, what is kept and what to do; None for any other error (a bug keeps
    its traceback). Recognised: MLflow's own errors, SQLite's operational errors, and the HTTP
    client's connection errors, by type, then by their words."""
    if isinstance(error, TrackingStoreError):
        return error
    names = {cls.__name__ for cls in type(error).__mro__}
    if not names & {"MlflowException", "OperationalError", "ConnectionError", "Timeout"}:
        return None
    text = f"{error}".strip()
    low = f"{text} {getattr(error, 'error_code', '')}".lower()
    found = next((c for c in _MID_STAGE_CAUSES if any(w in low for w in c[0])), None)
    if found is None:
        return None  # an MLflow error that is not about the store (a bad value): a bug
    _, cause, fix = found
    first = text.splitlines()[0][:300] if text else type(error).__name__
    return TrackingStoreError(
        f"MLflow tracking store {uri or tracking_uri()} failed in the middle of the stage: "
        f"{cause} ({type(error).__name__}: {first}). What the stage wrote before is kept (a "
        "training's checkpoint too; its MLflow run is closed FAILED once the store answers "
        f"again). Fix: {fix}, then rerun `dvc repro`: a training resumes from its checkpoint."
    )


def _store_error(uri: str, problem: str, what: str) -> TrackingStoreError:
    return TrackingStoreError(f"MLflow tracking store {uri}: {problem}. " + _FIX.format(what=what))


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:`` URI; None for an in-memory database."""
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return Path(database)


def _check_sqlite(uri: str, timeout: float, min_free: int = MIN_FREE_BYTES) -> None:
    path = _sqlite_file(uri)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _store_error(
            uri,
            f"cannot create its folder {path.parent} ({e.strerror or e})",
            f"create {path.parent} as a writable folder",
        ) from None
    if path.is_dir():
        raise _store_error(uri, f"{path} is a folder, not a database file", f"remove {path}")
    try:
        con = sqlite3.connect(
            f"file:{urllib.parse.quote(str(path))}?mode=rwc",
            uri=True,
            timeout=timeout,
            isolation_level=None,  # transactions as written below
        )
    except sqlite3.Error as e:
        _check_writable(uri, path)
        raise _store_error(
            uri, f"{path} is not writable (cannot open it: {e})", f"make {path} writable"
        ) from None
    try:
        con.execute("PRAGMA schema_version").fetchone()  # reads the header: is it a database?
        con.execute("BEGIN IMMEDIATE")  # takes the write lock: is it free?
        # Change a page (to its own value), then roll back: only a write shows a read-only file
        # (SQLite then opens it read-only, silently) or a folder where no journal can be made.
        version = con.execute("PRAGMA user_version").fetchone()[0]
        con.execute(f"PRAGMA user_version = {int(version)}")
        con.execute("ROLLBACK")
    except sqlite3.DatabaseError as e:
        msg = str(e)
        if "locked" in msg or "busy" in msg:
            raise _store_error(
                uri,
                f"{path} stayed locked by another process for {timeout:.0f} s",
                "stop the process that holds it (`fuser " + str(path) + "`)",
            ) from None
        if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
            _check_writable(uri, path)
            raise _store_error(
                uri, f"{path} is not writable ({msg})", f"make {path} and its folder writable"
            ) from None
        if "full" in msg:
            raise _store_error(
                uri, f"the disk that holds {path} is full ({msg})", "free space on that disk"
            ) from None
        raise _store_error(
            uri,
            f"{path} is not a usable SQLite database ({msg})",
            f"move {path} aside (MLflow creates a new one) or restore it from a backup",
        ) from None
    finally:
        con.close()
    _check_free_space(uri, path.parent, min_free)  # after: a read-only disk is said as such


def _check_free_space(uri: str, folder: Path, min_free: int) -> None:
    """Both disks of a local store, the database's and its artifacts', have ``min_free`` bytes
    free (:data:`MIN_FREE_BYTES`); a folder not made yet is on the disk of its nearest parent."""
    seen = set()
    for place in (folder, folder / "mlartifacts"):
        existing = next(p for p in (place, *place.parents) if p.exists())
        device = existing.stat().st_dev
        if device in seen:
            continue
        seen.add(device)
        usage = shutil.disk_usage(existing)
        free = usage.free  # what an unprivileged process may use
        if usage.total and free < min_free:  # total 0: no size to speak of (FUSE, /proc)
            raise _store_error(
                uri,
                f"only {free / 2**20:.1f} MiB free on the disk that holds {place} (the store "
                f"needs at least {min_free / 2**20:.0f} MiB for SQLite's journal and MLflow's "
                "models and figures)",
                f"free space on that disk (`df -h {existing}`)",
            )


def _check_writable(uri: str, path: Path) -> None:
    """Raise, naming the cause and the fix, when ``path`` or its folder refuses writes.

    Asked of the file system itself, not of ``os.access`` (which tells root it may write a
    0444 file, and knows nothing of immutable files or read-only mounts): the file is opened
    for writing and a file is created in the folder, where SQLite makes its journal.
    """
    if path.exists():
        try:
            os.close(os.open(path, os.O_RDWR))
        except OSError as e:
            raise _store_error(
                uri,
                f"{path} is not writable: opening it for writing failed ({e.strerror})",
                _unprotect(path, e.errno),
            ) from None
    folder = path.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise _store_error(
            uri,
            f"{folder} is not writable, so SQLite cannot create its journal "
            f"({path.name}-journal) there and every write to {path} fails ({e.strerror})",
            _unprotect(folder, e.errno),
        ) from None


def _unprotect(path: Path, code: int | None) -> str:
    """How to make ``path`` writable, by why writing it failed (``errno``)."""
    if code == errno.EROFS:
        return f"mount the file system that holds {path} read-write"
    if code == errno.EPERM:  # an immutable or append-only attribute, which stops root too
        return f"clear its attribute (`lsattr -d {path}`, then `chattr -i -a {path}`)"
    if code == errno.EACCES:
        return f"let the user running the stage write it (`chmod u+w {path}`, or `chown` it)"
    return f"make {path} writable"


def _check_http(uri: str, timeout: float) -> None:
    """``/health`` answers, then the API does: a server is up and its backend store works.

    A server whose database is down still answers ``/health`` (the web process is alive) and
    fails every API call with 500 or 503, or hangs on it; MLflow would retry those for minutes.
    Each request here waits at most ``timeout`` and is not retried.
    """
    base = uri.rstrip("/")
    _http_get(uri, f"{base}/health", timeout, "the server")
    _http_get(uri, f"{base}/api/2.0/mlflow/experiments/search?max_results=1", timeout, "its API")


def _http_get(uri: str, url: str, timeout: float, what: str) -> None:
    request = urllib.request.Request(url, headers=_auth_headers())
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:  # noqa: S310 (http/https)
            r.read(4096)
    except urllib.error.HTTPError as e:
        if what == "the server":
            cause = "check that the URI is an MLflow tracking server (`mlflow server`)"
        elif e.code in (401, 403):
            cause = (
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or "
                "MLFLOW_TRACKING_TOKEN) to credentials the server accepts"
            )
        elif e.code >= 500:
            cause = (
                "the server is up (/health answers) but fails its API: its backend store (the "
                "database behind `mlflow server --backend-store-uri`) is likely down, full or "
                "unreachable; check the server's log and its database"
            )
        else:
            cause = "check that the URI is an MLflow tracking server (`mlflow server`)"
        raise _store_error(uri, f"GET {url} answered HTTP {e.code} {e.reason}", cause) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if what == "the server":
            cause = (
                "start the server (`mlflow server --host <host> --port <port>`) or correct the URI"
            )
        else:
            cause = (
                "the server is up (/health answers) but its API does not answer: its backend store "
                "(the database behind `mlflow server --backend-store-uri`) likely hangs; check the "
                "server's log and its database"
            )
        raise _store_error(
            uri, f"no answer from {url} within {timeout:.0f} s ({reason})", cause
        ) from None


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's client sends (basic auth or a bearer token), if set."""
    import base64

    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    if token:
        return {"Authorization": f"Bearer {token}"}
    user, password = (os.environ.get(f"MLFLOW_TRACKING_{k}") for k in ("USERNAME", "PASSWORD"))
    if user and password:
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }
    return {}


def _check_folder(uri: str, path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise _store_error(
            uri, f"cannot write to {path} ({e.strerror or e})", f"make {path} writable"
        ) from None


# ----------------------------------------------------------------------------- experiments


def _experiment_description(name: str, dataset: str, layout: str) -> str:
    held = (
        f"every simlearn training on dataset `{dataset}`"
        if layout == "dataset"
        else f"every training of params experiment `{name}` (dataset `{dataset}`)"
    )
    return (
        f"{held}: one run per training of an `experiments:` entry of params.yaml, named by its "
        "key. Tags task, loss, model and params_key group and filter the runs; "
        "`tags.latest = 'true'` keeps the newest finished run of each key. Each run holds its "
        "params, per-epoch training curves, evaluation metrics (map, map_at_r, precision_at_1, "
        "roc_auc, ...), figures, the dataset input and the model, registered under its key."
    )


def ensure_experiment(name: str, root: Path, dataset: str = "", layout: str = "dataset") -> str:
    """The id of MLflow experiment ``name``, created (or completed) with the project's tags."""
    client = get_client()
    exp = client.get_experiment_by_name(name)
    if exp is None:
        artifact_location = _artifact_location(tracking_uri(root), name)
        try:
            return client.create_experiment(
                name,
                artifact_location=artifact_location,
                tags={
                    EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1],
                    "mlflow.note.content": _experiment_description(name, dataset, layout),
                    "dataset": dataset,
                },
            )
        except mlflow.exceptions.MlflowException:
            exp = client.get_experiment_by_name(name)  # created meanwhile by a parallel stage
            if exp is None:
                raise
    wanted = {
        EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1],  # experiments made before this tag existed
        "mlflow.note.content": _experiment_description(name, dataset, layout),
    }
    for k, v in wanted.items():
        if exp.tags.get(k) != v:
            client.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


def _artifact_location(uri: str, name: str) -> str | None:
    """``<database folder>/mlartifacts/<name>`` for a SQLite store; the server's choice else.

    MLflow's default for SQLite is ``./mlruns`` under the working directory, which for a queued
    ``dvc exp run`` is a temporary copy of the repository, deleted after the run.
    """
    if urllib.parse.urlparse(uri).scheme.lower() != "sqlite":
        return None
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return None
    return (Path(database).resolve().parent / "mlartifacts" / name).as_uri()


#: The columns of MLflow's SQL schema that hold artifact locations: MLflow 3 (3.17 checked)
#: keeps each run's under its experiment's, each logged model's under ``<experiment>/models``,
#: and a registered version's storage location (its ``source`` is ``models:/<id>``, or a
#: location in stores written by MLflow 2). Tables or columns a store lacks are skipped.
LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def relocate_artifacts(uri: str) -> str | None:
    """Point a copied or moved SQLite store at its own ``mlartifacts``; what was done, or None.

    MLflow stores absolute artifact locations: an experiment made by :func:`ensure_experiment`
    at ``<A>/mlflow.db`` keeps ``file://<A>/mlartifacts/<name>``, and its runs and models keep
    locations under it. After ``cp -r A B`` (or ``mv``), B's runs would write their artifacts
    into A and show A's files. So when B's store is opened, every location under an old
    ``<A>/mlartifacts/`` prefix is rewritten to ``<B>/mlartifacts/``, in one transaction. The old
    prefixes are those of experiments whose location is exactly what :func:`_artifact_location`
    gives ``<A>/mlflow.db`` (``<A>/mlartifacts/<experiment name>``): a location the user chose
    elsewhere is left alone. Cheap when there is nothing to do: one read of ``experiments``.
    """
    if urllib.parse.urlparse(uri).scheme.lower() != "sqlite":
        return None
    path = _sqlite_file(uri)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return None
    here = (path.resolve().parent / "mlartifacts").as_uri() + "/"
    con = sqlite3.connect(
        f"file:{urllib.parse.quote(str(path))}?mode=rw",
        uri=True,
        timeout=STORE_TIMEOUT_S,
        isolation_level=None,
    )
    try:
        if not _old_prefixes(con, here):
            return None
        con.execute("BEGIN IMMEDIATE")  # again under the write lock: a parallel stage may have
        old = _old_prefixes(con, here)  # done it meanwhile
        counts: dict[str, int] = {}
        for table, column in LOCATION_COLUMNS:
            if column not in _columns(con, table):
                continue
            for prefix in old:
                n = con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "  # noqa: S608
                    f"WHERE substr({column}, 1, ?) = ?",
                    (here, len(prefix) + 1, len(prefix), prefix),
                ).rowcount
                counts[f"{table}.{column}"] = counts.get(f"{table}.{column}", 0) + n
        con.execute("COMMIT")
    except BaseException as e:
        if con.in_transaction:
            con.execute("ROLLBACK")
        said = as_store_error(e, uri) if isinstance(e, sqlite3.Error) else None
        if said is not None:
            raise said from None
        raise
    finally:
        con.close()
    if not old:
        return None
    done = ", ".join(f"{column}: {n}" for column, n in counts.items() if n)
    names = ", ".join(_local(p) for p in old)
    missing = "" if Path(_local(here)).is_dir() else f" ({_local(here)} does not exist yet)"
    return (
        f"MLflow tracking store {uri}: its artifact locations pointed into {names}, the "
        f"artifacts of the folder it was copied or moved from; now into {_local(here)}"
        f"{missing}, beside it (rows rewritten: {done})."
    )


def _old_prefixes(con: sqlite3.Connection, here: str) -> list[str]:
    """The ``file://<folder>/mlartifacts/`` prefixes, other than ``here``, under which this
    store's experiments were created by :func:`ensure_experiment` (location = prefix + name)."""
    if "artifact_location" not in _columns(con, "experiments"):
        return []
    found = set()
    for name, location in con.execute("SELECT name, artifact_location FROM experiments"):
        tail = "/mlartifacts/" + urllib.parse.quote(name)
        if location and location.startswith("file://") and location.endswith(tail):
            prefix = location[: -len(tail)] + "/mlartifacts/"
            if prefix != here:
                found.add(prefix)
    return sorted(found)


def _columns(con: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in con.execute(f"PRAGMA table_info({table})")}


def _local(location: str) -> str:
    """A ``file://`` URI as a local path (the trailing slash dropped)."""
    return urllib.request.url2pathname(urllib.parse.urlparse(location).path).rstrip("/")


def ui_url(experiment_id: str, base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI address that opens ``experiment_id`` on its runs table."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{UI_RUNS_VIEW}"


def ui_links(base: str = "http://127.0.0.1:5000") -> dict[str, str]:
    """Experiment name -> the UI address of its runs table, for every experiment with runs."""
    client = get_client()
    links = {}
    for exp in client.search_experiments():
        if client.search_runs([exp.experiment_id], max_results=1):
            links[exp.name] = ui_url(exp.experiment_id, base)
    return links
