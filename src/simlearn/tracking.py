"""Every MLflow call of the project lives here.

Rules (see DESIGN.md):

- Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<absolute repo root>/mlflow.db``,
  so ``dvc repro``, ``dvc exp run`` (queued runs execute in temporary copies of the repo) and the
  tests all land in one store. Artifacts of that local store go to ``<repo root>/mlartifacts``.
  The store is checked before its first use (:func:`check_store`): a broken, unwritable or
  unreachable store fails within seconds with an error naming the URI and the fix, instead of
  MLflow's minutes of retries.
- Layout (``tracking.experiment_per`` in params.yaml, :class:`TrackingConfig`): one MLflow
  experiment per **dataset** by default, so every run on the same data sits in one runs table;
  ``experiment`` gives one MLflow experiment per params key instead. Either way an MLflow run is
  one training of one params experiment, named by its key and tagged ``params_key``, ``task``,
  ``loss``, ``model``; the newest finished run of each key carries ``latest = true``.
- Run states tell the truth. ``train`` opens the run with :func:`training_run`: it is RUNNING
  while the stage trains, FINISHED only when the block completes, FAILED (tag ``error``) on any
  exception, KILLED on Ctrl-C or SIGTERM. A run whose process died without a word (SIGKILL, power
  loss) is marked KILLED when the next training of its key starts with other params; a resumed
  training (same params, checkpoint present) continues its own run. ``evaluate`` writes files
  only; the ``report`` stage adds each experiment's evaluation to its run by id
  (:func:`read_run_file`, :func:`publish_evaluation`, :func:`publish_model`) and never changes
  the run's state. No
  call here uses MLflow's fluent ``start_run``: reopening a run with it marks the run FINISHED
  when it ends.
- Models are logged in MLflow's ``pt2`` format (``torch.export``): loading one runs no pickled
  code (MLflow checks the archive is pickle-free when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is
  false) and needs no ``simlearn`` import. Each is registered in the Model Registry under its
  params key, so ``mlflow.pytorch.load_model("models:/<key>/latest")`` loads the newest one.
  The ``report`` stage logs them (:func:`publish_model`), not ``train``: one process pays for
  importing ``torch.export`` once per ``dvc repro``.
- No network: telemetry is switched off before MLflow is imported.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from simlearn.config import ConfigError, flatten, from_dict  # noqa: E402

_QUEUE_DIR = "/.dvc/tmp/exps/"

# Tags every run carries (besides git_commit, git_dirty, dataset, params_hash, dvc_exp_name).
TAG_KEY = "params_key"  # the params.yaml experiment key (also the run name)
TAG_LATEST = "latest"  # "true" on the newest FINISHED run of each key, absent elsewhere
TAG_ERROR = "error"  # why a run is FAILED or KILLED: "<ExceptionType>: <message>"
TAG_PID = "simlearn.pid"  # the training process, to tell a live run from a stale one
TAG_PID_START = "simlearn.pid_start"  # its start time in clock ticks (/proc; guards PID reuse)
TAG_HOST = "simlearn.host"
TAG_MODEL_FORMAT = "model_format"  # pt2 (no pickle) | pickle (fallback; see log_torch_model)
TAG_EVAL_DIGEST = "simlearn.eval_digest"  # what publish_evaluation last logged to the run
# MLflow 3.x opens an experiment on its GenAI pages unless this tag says model training.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
UI_RUNS_VIEW = "workflowType=machine_learning"  # URL parameter: open the runs table

STORE_TIMEOUT_S = 5.0  # per check of the tracking store; the whole check stays well under 15 s
_ERROR_TAG_CHARS = 5000  # MLflow caps tag values at 8000 characters


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


def configure(root: str | Path | None = None) -> str:
    """Point MLflow's process-wide calls (model logging, registry) at the store; its URI."""
    uri = tracking_uri(root)
    user_set = "MLFLOW_TRACKING_URI" in os.environ
    mlflow.set_tracking_uri(uri)
    if not user_set:  # MLflow exports it; the rule above must keep seeing "not set by the user"
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    return uri


_CLIENTS: dict[str, MlflowClient] = {}


def _client() -> MlflowClient:
    uri = configure()
    if _CLIENTS.get(uri) is None:  # opening a store (a database, a server) is not free
        check_store(uri)
        _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


def check_store(uri: str, timeout: float = STORE_TIMEOUT_S) -> None:
    """Fail fast, naming ``uri`` and the fix, when the tracking store cannot be used.

    MLflow itself retries an unreachable server for minutes (7 retries, exponential backoff,
    120 s timeout per request) and reports a locked or corrupt database without the URI. Checked
    here: SQLite (the folder can be created, the file is a database, a write transaction can
    start within ``timeout``), ``file:`` folders (writable), and HTTP(S) servers (``/health``
    answers within ``timeout``, no retry). Other schemes (PostgreSQL, MySQL, Databricks) are
    left to MLflow.
    """
    scheme = urllib.parse.urlparse(uri).scheme.lower()
    if scheme == "sqlite":
        _check_sqlite(uri, timeout)
    elif scheme in ("http", "https"):
        _check_http(uri, timeout)
    elif scheme in ("", "file"):
        path = urllib.parse.urlparse(uri).path if scheme == "file" else uri
        _check_folder(uri, Path(path))


_FIX = (
    "Fix: {what}, or log elsewhere: export MLFLOW_TRACKING_URI=sqlite:///<a writable folder>/"
    "mlflow.db (or http://<host>:<port> of a running `mlflow server`)."
)


def _store_error(uri: str, problem: str, what: str) -> TrackingStoreError:
    return TrackingStoreError(f"MLflow tracking store {uri}: {problem}. " + _FIX.format(what=what))


def _check_sqlite(uri: str, timeout: float) -> None:
    from sqlalchemy.engine import make_url

    database = make_url(uri).database
    if not database or database == ":memory:":
        return
    path = Path(database)
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
            f"file:{urllib.parse.quote(str(path))}?mode=rwc", uri=True, timeout=timeout
        )
    except sqlite3.Error as e:
        raise _store_error(
            uri, f"{path} is not writable (cannot open it: {e})", f"make {path} writable"
        ) from None
    try:
        con.execute("PRAGMA schema_version").fetchone()  # reads the header: is it a database?
        con.execute("BEGIN IMMEDIATE")  # takes the write lock: can we write, is it free?
        con.rollback()
    except sqlite3.DatabaseError as e:
        msg = str(e)
        if "locked" in msg or "busy" in msg:
            raise _store_error(
                uri,
                f"{path} stayed locked by another process for {timeout:.0f} s",
                "stop the process that holds it (`fuser " + str(path) + "`)",
            ) from None
        if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
            raise _store_error(
                uri, f"{path} is not writable ({msg})", f"make {path} and its folder writable"
            ) from None
        raise _store_error(
            uri,
            f"{path} is not a usable SQLite database ({msg})",
            f"move {path} aside (MLflow creates a new one) or restore it from a backup",
        ) from None
    finally:
        con.close()


def _check_http(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (http/https only)
            r.read(64)
    except urllib.error.HTTPError as e:
        raise _store_error(
            uri,
            f"GET {url} answered HTTP {e.code} {e.reason}",
            "check that the URI is an MLflow tracking server (`mlflow server`)",
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise _store_error(
            uri,
            f"no answer from {url} within {timeout:.0f} s ({reason})",
            "start the server (`mlflow server --host <host> --port <port>`) or correct the URI",
        ) from None


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


def _experiment_id(name: str, root: Path, dataset: str = "", layout: str = "dataset") -> str:
    """The id of MLflow experiment ``name``, created (or completed) with the project's tags."""
    client = _client()
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


def ui_url(experiment_id: str, base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI address that opens ``experiment_id`` on its runs table."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{UI_RUNS_VIEW}"


def ui_links(base: str = "http://127.0.0.1:5000") -> dict[str, str]:
    """Experiment name -> the UI address of its runs table, for every experiment with runs."""
    client = _client()
    links = {}
    for exp in client.search_experiments():
        if client.search_runs([exp.experiment_id], max_results=1):
            links[exp.name] = ui_url(exp.experiment_id, base)
    return links


# ----------------------------------------------------------------------------- runs


def git_state(root: str | Path) -> dict[str, str]:
    """Commit and dirty flag of the repository, or "unknown" outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def params_hash(section: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a params section (first 16 hex digits)."""
    blob = json.dumps(section, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _section_tags(params: Mapping[str, Any]) -> dict[str, str]:
    """task, model and loss of a params section; ``loss = none`` for fitted baselines."""
    from simlearn import config as _config

    model = params.get("model") or {}
    model_name = str(model.get("name", "")) if isinstance(model, Mapping) else str(model)
    loss = params.get("loss") or {}
    loss_name = str(loss.get("name", "")) if isinstance(loss, Mapping) else str(loss)
    if model_name in getattr(_config, "SHALLOW_MODELS", ()):
        loss_name = "none"  # fitted, not trained: the section's default loss is never used
    tags = {"task": str(params.get("task", "")), "model": model_name, "loss": loss_name}
    return {k: v for k, v in tags.items() if v}


def _process_tags() -> dict[str, str]:
    tags = {TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()}
    start = _pid_start(os.getpid())
    if start is not None:
        tags[TAG_PID_START] = start
    return tags


def _pid_start(pid: int) -> str | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux /proc), else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the name in (...) may hold spaces


def _process_gone(tags: Mapping[str, str]) -> bool:
    """True when the run's training process is known to be dead (same host only)."""
    if tags.get(TAG_HOST) != socket.gethostname() or not tags.get(TAG_PID, "").isdigit():
        return False  # another machine, or a run from before these tags: cannot tell
    pid = int(tags[TAG_PID])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    start = tags.get(TAG_PID_START)
    return start is not None and _pid_start(pid) not in (None, start)  # the PID was reused


def _mark_stale_runs(client: MlflowClient, experiment_id: str, key: str, by: str) -> list[str]:
    """Mark KILLED the RUNNING runs of ``key`` whose process is gone; their ids."""
    stale = []
    runs = client.search_runs(
        [experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000
    )
    for run in runs:
        if run.data.tags.get(TAG_KEY) != key or not _process_gone(run.data.tags):
            continue
        tags = run.data.tags
        client.set_tag(
            run.info.run_id,
            TAG_ERROR,
            f"process {tags[TAG_PID]} on {tags[TAG_HOST]} ended without closing this run "
            f"(SIGKILL, crash or power loss); marked KILLED when run {by} of {key} started",
        )
        client.set_terminated(run.info.run_id, "KILLED")
        stale.append(run.info.run_id)
    return stale


def start_run(
    experiment: str,
    params: Mapping[str, Any],
    *,
    dataset: str,
    root: str | Path | None = None,
    extra_tags: Mapping[str, str] | None = None,
    layout: str = "dataset",
    description: str | None = None,
    source: str = "stages/train.py",
) -> str:
    """Create a RUNNING run of params experiment ``experiment`` (the key); its id.

    The run goes to MLflow experiment :func:`experiment_name` (``layout``), is named by the key,
    holds the flattened ``params`` and the tags task, loss, model, params_key, dataset,
    params_hash, git and DVC state, the stage as its source, and ``description`` (one line: the
    loss and its formula) as its description. RUNNING runs of the same key whose process is gone
    are marked KILLED first. Prefer :func:`training_run`, which also closes the run truthfully.
    """
    root = repo_root(root)
    client = _client()
    exp_id = _experiment_id(experiment_name(experiment, dataset, layout), root, dataset, layout)
    section = _section_tags(params)
    git = git_state(root)
    if description is None:
        description = (
            f"{experiment}: task {section.get('task', '?')}, loss {section.get('loss', '?')}, "
            f"model {section.get('model', '?')}, dataset {dataset}"
        )
    tags = {
        **git,
        **section,
        TAG_KEY: experiment,
        "dataset": dataset,
        "params_hash": params_hash(params),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "mlflow.source.name": source,
        "mlflow.source.type": "LOCAL",
        "mlflow.user": _user(),
        "mlflow.note.content": description,
        **_process_tags(),
        **(extra_tags or {}),
    }
    if git["git_commit"] != "unknown":
        tags["mlflow.source.git.commit"] = git["git_commit"]
    run = client.create_run(exp_id, tags=tags, run_name=experiment)
    _mark_stale_runs(client, exp_id, experiment, by=run.info.run_id)
    flat = {k: _param_value(v) for k, v in flatten(params).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):  # MLflow's batch limit
        client.log_batch(
            run.info.run_id,
            params=[mlflow.entities.Param(k, v) for k, v in items[i : i + 100]],
        )
    return run.info.run_id


def resume_run(run_id: str) -> str | None:
    """Mark an interrupted run RUNNING again for the process resuming it; None when the store
    no longer has it (deleted, or another store), so the caller starts a new run."""
    client = _client()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        return None
    if run.info.lifecycle_stage != "active":
        return None
    client.update_run(run_id, status="RUNNING")
    resumes = int(run.data.tags.get("resumes", "0")) + 1
    set_tags(run_id, {**_process_tags(), "resumes": str(resumes)})
    if TAG_ERROR in run.data.tags:
        client.set_tag(run_id, "previous_error", run.data.tags[TAG_ERROR][:_ERROR_TAG_CHARS])
        client.delete_tag(run_id, TAG_ERROR)
    return run_id


def finish_run(run_id: str) -> None:
    """FINISHED, and the ``latest`` tag moved to this run from older runs of its key."""
    client = _client()
    client.set_terminated(run_id, "FINISHED")
    key = client.get_run(run_id).data.tags.get(TAG_KEY)
    if key is None:
        return
    exp_ids = [e.experiment_id for e in client.search_experiments()]
    for i in range(0, len(exp_ids), 100):
        for old in client.search_runs(
            exp_ids[i : i + 100], filter_string=f"tags.{TAG_LATEST} = 'true'", max_results=10000
        ):
            if old.data.tags.get(TAG_KEY) == key and old.info.run_id != run_id:
                client.delete_tag(old.info.run_id, TAG_LATEST)
    client.set_tag(run_id, TAG_LATEST, "true")


def fail_run(run_id: str, error: BaseException) -> str:
    """Mark a run FAILED (KILLED for Ctrl-C and SIGTERM) with the error message as tag
    ``error``; the status set. Never raises: the error being reported matters more."""
    status = "KILLED" if isinstance(error, KeyboardInterrupt | Terminated) else "FAILED"
    message = f"{type(error).__name__}: {error}".strip()
    try:
        client = _client()
        client.set_tag(run_id, TAG_ERROR, message[:_ERROR_TAG_CHARS])
        client.set_terminated(run_id, status)
    except Exception as e:  # the store itself may be what failed
        warnings.warn(f"could not mark MLflow run {run_id} {status}: {e}", stacklevel=2)
    return status


class Terminated(SystemExit):
    """SIGTERM (DVC, a scheduler, ``kill``) inside :func:`training_run`; exits with 143."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)

    def __str__(self) -> str:
        return "terminated by SIGTERM"


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`Terminated` so the run is closed as KILLED, not left RUNNING.
    Only where SIGTERM still has its default action and we are in the main thread."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def training_run(
    experiment: str,
    params: Mapping[str, Any],
    *,
    dataset: str,
    resume_run_id: str | None = None,
    **start_kwargs: Any,
) -> Iterator[str]:
    """The run of one training: RUNNING inside the block, FINISHED when it completes, FAILED
    (tag ``error``) on an exception, KILLED on Ctrl-C or SIGTERM; the exception propagates.

    ``resume_run_id``: the run of an interrupted training with the same params, continued when
    the store still has it. ``start_kwargs`` go to :func:`start_run` (``layout``,
    ``description``, ``source``, ``extra_tags``, ``root``).
    """
    run_id = resume_run(resume_run_id) if resume_run_id else None
    if run_id is None:
        run_id = start_run(experiment, params, dataset=dataset, **start_kwargs)
    with _sigterm_raises():
        try:
            yield run_id
        except BaseException as e:
            fail_run(run_id, e)
            raise
    finish_run(run_id)


def run_status(run_id: str) -> str:
    return _client().get_run(run_id).info.status


def _param_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return json.dumps(list(v))
    return str(v)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# ----------------------------------------------------------------------------- logging


def log_metrics(run_id: str, metrics: Mapping[str, float], step: int | None = None) -> None:
    client = _client()
    clean = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    client.log_batch(
        run_id,
        metrics=[
            mlflow.entities.Metric(k, v, _now_ms(), step or 0) for k, v in sorted(clean.items())
        ],
    )


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    _client().log_artifact(run_id, str(path), artifact_path)


def log_artifacts(run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
    _client().log_artifacts(run_id, str(folder), artifact_path)


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    client = _client()
    for k, v in tags.items():
        client.set_tag(run_id, k, v)


def evaluation_files(eval_dir: str | Path, curve_dir: str | Path | None = None) -> list[Path]:
    """The files of one experiment's evaluation: metrics.json, its figures, its curves; sorted."""
    folders = [Path(eval_dir)] + ([Path(curve_dir)] if curve_dir is not None else [])
    found = (p for folder in folders if folder.is_dir() for p in folder.rglob("*"))
    return sorted(p for p in found if p.is_file())


def publish_evaluation(
    run_id: str, eval_dir: str | Path, curve_dir: str | Path | None = None
) -> bool:
    """Add one experiment's evaluation to its MLflow run, once; True when something was logged.

    Logs the numbers of ``<eval_dir>/metrics.json`` as metrics (null, i.e. NaN, skipped), the
    figures under ``figures/``, ``metrics.json`` under ``eval/`` and the curves (``curve_dir``)
    under ``eval/curves``. The run's tag ``simlearn.eval_digest`` (MD5 of the run id and of
    every file's name and bytes) records what was logged: with the same files the call logs
    nothing, so the report stage can publish every experiment and pay only for what changed.

    Why the report stage logs and ``evaluate`` does not: importing MLflow and opening its store
    costs about 2 s per process, once per ``dvc repro`` instead of once per experiment.
    """
    eval_dir = Path(eval_dir)
    files = evaluation_files(eval_dir, curve_dir)
    h = hashlib.md5(run_id.encode())
    for f in files:
        h.update(f"{f.parent.name}/{f.name}".encode() + b"\0" + f.read_bytes())
    digest = h.hexdigest()
    client = _client()
    if client.get_run(run_id).data.tags.get(TAG_EVAL_DIGEST) == digest:
        return False
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    log_metrics(run_id, metrics)
    if (eval_dir / "figures").is_dir():
        log_artifacts(run_id, eval_dir / "figures", "figures")
    log_artifact(run_id, eval_dir / "metrics.json", "eval")
    if curve_dir is not None and Path(curve_dir).is_dir() and any(Path(curve_dir).iterdir()):
        log_artifacts(run_id, curve_dir, "eval/curves")
    client.set_tag(run_id, TAG_EVAL_DIGEST, digest)
    return True


def publish_model(run_id: str, load: Callable[[], tuple[Any, Any]]) -> bool:
    """Log and register the run's trained model, once; True when it was logged now.

    ``load()`` gives ``(model, input_example)`` for :func:`log_torch_model`; it is called only
    when the run has no model yet (no ``model_format`` tag), so the report stage can call this for
    every experiment and pay only for new trainings.

    Why the report stage logs models and ``train`` does not: ``torch.export`` imports
    ``torch._dynamo``, 2.6 s per process. Measured on 2 cores, ``train@raw_unseen`` took 9.2 and
    9.0 s with the model logged, 5.5 and 5.1 s without: about 3.8 s per train stage, once per
    ``dvc repro`` instead of once per experiment.
    """
    if TAG_MODEL_FORMAT in _client().get_run(run_id).data.tags:
        return False
    model, example = load()
    log_torch_model(run_id, model, example)
    return True


def log_dataset(run_id: str, manifest: Any, *, name: str, source: str, context: str) -> None:
    """Log the dataset (its manifest as a pandas dataset) as an input of the run."""
    import mlflow.data
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with warnings.catch_warnings():
        # a local path is a valid source of two equivalent kinds; integer columns are fine
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(manifest, source=source, name=name)
        entity = ds._to_mlflow_entity()  # the schema (with that hint) is inferred here
    _client().log_inputs(
        run_id, datasets=[DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])]
    )


def log_torch_model(
    run_id: str,
    model: Any,
    input_example: Any,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    register: bool = True,
) -> Any:
    """Log a torch module as an MLflow model with a signature; register it; the ModelInfo.

    Format: MLflow's ``pt2`` (``torch.export``), whose archive holds no pickle, so loading runs
    no stored code and needs no ``simlearn`` import. The batch dimension stays dynamic (the
    example is repeated to 2 rows when it has 1: torch.export pins size-1 dimensions). Cost, on
    the digits convnet: 3.8 s to log against 0.8 s for a pickle (2 shared CPU cores). A model
    that ``torch.export`` cannot trace (data-dependent control flow) falls back to a pickle,
    with a warning and the run tag ``model_format = pickle``; see the README's security notes.

    Registered (``register``) under ``registered_model_name``, by default the run's params key,
    so ``mlflow.pytorch.load_model("models:/<key>/latest")`` gives the newest trained network.
    """
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    client = _client()
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = model.cpu().eval()
    example = np.asarray(input_example)
    if example.shape[0] < 2:
        example = np.concatenate([example, example])
    with torch.no_grad():
        output = model(torch.as_tensor(example)).numpy()
    signature = infer_signature(example, output)
    run = client.get_run(run_id)
    tags = run.data.tags
    if register and registered_model_name is None:
        registered_model_name = tags.get(TAG_KEY)

    def logged_model_id() -> str:
        # created here, in the run's experiment: left to itself, MLflow puts the model in the
        # fluent "active" experiment (Default, artifacts under ./mlruns) when no run is active
        return client.create_logged_model(
            run.info.experiment_id, name=name, source_run_id=run_id, params=run.data.params
        ).model_id

    kwargs = {
        "name": name,
        "signature": signature,
        "input_example": example,
        "run_id": run_id,
        "registered_model_name": registered_model_name if register else None,
    }
    torch_req = f"torch=={torch.__version__.split('+')[0]}"
    export_error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hints about integer columns
        try:
            info = mlflow.pytorch.log_model(
                model,
                pip_requirements=[torch_req],
                serialization_format="pt2",
                model_id=logged_model_id(),
                **kwargs,
            )
            fmt = "pt2"
        except Exception as e:  # torch.export could not trace this model
            export_error = e
    if export_error is not None:
        warnings.warn(
            f"torch.export failed ({type(export_error).__name__}: "
            f"{(str(export_error).splitlines() or [''])[0][:200]}); "
            "logging the model as a pickle instead: loading it will run pickled code",
            stacklevel=2,
        )
        _drop_unfinished_models(client, run_id, name)  # else runs:/<id>/<name> finds that one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pytorch.log_model(
                model,
                pip_requirements=[torch_req, "simlearn"],
                serialization_format="pickle",
                model_id=logged_model_id(),
                **kwargs,
            )
        fmt = "pickle"
    client.set_tag(run_id, TAG_MODEL_FORMAT, fmt)
    if register and registered_model_name:
        client.update_registered_model(
            registered_model_name,
            description=(
                f"Networks trained by params experiment `{registered_model_name}` "
                f"(dataset {tags.get('dataset', '?')}, task {tags.get('task', '?')}, "
                f"loss {tags.get('loss', '?')}); one version per training run. Input: float "
                "images in [0, 1], (B, C, H, W); output: embeddings (B, D)."
            ),
        )
    return info


def _drop_unfinished_models(client: MlflowClient, run_id: str, name: str) -> None:
    """Delete the logged models ``name`` of ``run_id`` that never became READY."""
    exp_id = client.get_run(run_id).info.experiment_id
    for m in client.search_logged_models(
        experiment_ids=[exp_id], filter_string=f"name = '{name}'", max_results=100
    ):
        if m.source_run_id == run_id and str(m.status) != "READY":
            client.delete_logged_model(m.model_id)


# ----------------------------------------------------------------------------- run.json


def write_run_file(path: str | Path, run_id: str, experiment: str) -> None:
    Path(path).write_text(
        json.dumps({"run_id": run_id, "experiment": experiment, "tracking_uri": tracking_uri()})
        + "\n"
    )


def read_run_file(path: str | Path) -> str:
    data = json.loads(Path(path).read_text())
    return str(data["run_id"])


def _is_number(v: Any) -> bool:
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return True


def _now_ms() -> int:
    return int(time.time() * 1000)
