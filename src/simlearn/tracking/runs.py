"""The MLflow run of one training: its lifecycle, and what is logged to it.

- An MLflow run is one training of one params experiment, in the MLflow experiment that
  :func:`~simlearn.tracking.store.experiment_name` names, named by its key and tagged
  ``params_key``, ``task``, ``loss``, ``model``; the newest finished run of each key carries
  ``latest = true``.
- Run states tell the truth. ``train`` opens the run with :func:`training_run`: it is RUNNING
  while the stage trains, FINISHED only when the block completes, FAILED (tag ``error``) on any
  exception, KILLED on Ctrl-C or SIGTERM. A run whose process died without a word (SIGKILL, power
  loss) is marked KILLED when the next training of its key starts with other params; a resumed
  training (same params, checkpoint present) continues its own run. A run whose store failed
  while the training failed (a server down, a full or read-only database) cannot be closed then:
  :func:`fail_run` writes its status and error to ``checkpoints/unclosed_runs.json``, and the
  next stage that opens the same store (any training, or ``report``) closes it FAILED with that
  error (:func:`close_unclosed_runs`), unless the training resumes it. ``evaluate`` writes files
  only; the ``report`` stage finds each experiment's run by id (:func:`read_run_file`, the
  ``run.json`` that ``train`` wrote) and adds its evaluation and model to it
  (:mod:`simlearn.tracking.publishing`) without changing the run's state; a run the current
  store does not hold (:func:`run_in_store`: outputs pulled from a DVC remote, a new store) is
  left out of MLflow, said once, never a traceback. No call here uses
  MLflow's fluent ``start_run``: reopening a run with it marks the run FINISHED when it ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from simlearn.config import flatten
from simlearn.tracking.store import (
    ensure_experiment,
    experiment_name,
    get_client,
    repo_root,
    tracking_uri,
)

# Tags every run carries (besides git_commit, git_dirty, dataset, params_hash, dvc_exp_name).
TAG_KEY = "params_key"  # the params.yaml experiment key (also the run name)
TAG_LATEST = "latest"  # "true" on the newest FINISHED run of each key, absent elsewhere
TAG_ERROR = "error"  # why a run is FAILED or KILLED: "<ExceptionType>: <message>"
TAG_PID = "simlearn.pid"  # the training process, to tell a live run from a stale one
TAG_PID_START = "simlearn.pid_start"  # its start time in clock ticks (/proc; guards PID reuse)
TAG_HOST = "simlearn.host"

_ERROR_TAG_CHARS = 5000  # MLflow caps tag values at 8000 characters
UNCLOSED_FILE = Path("checkpoints") / "unclosed_runs.json"  # under the project root


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
    client = get_client()
    close_unclosed_runs(root)
    exp_id = ensure_experiment(experiment_name(experiment, dataset, layout), root, dataset, layout)
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
    does not hold it (deleted, or another store: :func:`run_in_store`), so the caller starts a
    new run. A store that cannot be reached raises: the training must not go on unlogged."""
    if not run_in_store(run_id):
        return None
    client = get_client()
    _forget_unclosed(repo_root(), {run_id})  # it goes on: not to be closed by another stage
    close_unclosed_runs()
    run = client.get_run(run_id)
    client.update_run(run_id, status="RUNNING")
    resumes = int(run.data.tags.get("resumes", "0")) + 1
    set_tags(run_id, {**_process_tags(), "resumes": str(resumes)})
    if TAG_ERROR in run.data.tags:
        client.set_tag(run_id, "previous_error", run.data.tags[TAG_ERROR][:_ERROR_TAG_CHARS])
        client.delete_tag(run_id, TAG_ERROR)
    return run_id


def finish_run(run_id: str) -> None:
    """FINISHED, and the ``latest`` tag moved to this run from older runs of its key."""
    client = get_client()
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
                try:
                    client.delete_tag(old.info.run_id, TAG_LATEST)
                except mlflow.exceptions.MlflowException as e:  # another finishing training
                    if e.error_code != "RESOURCE_DOES_NOT_EXIST":  # of the key took it first
                        raise
    client.set_tag(run_id, TAG_LATEST, "true")


def fail_run(run_id: str, error: BaseException) -> str:
    """Mark a run FAILED (KILLED for Ctrl-C and SIGTERM) with the error message as tag
    ``error``; the status set. Never raises: the error being reported matters more."""
    status = "KILLED" if isinstance(error, KeyboardInterrupt | Terminated) else "FAILED"
    message = f"{type(error).__name__}: {error}".strip()
    try:
        client = get_client()
        client.set_tag(run_id, TAG_ERROR, message[:_ERROR_TAG_CHARS])
        client.set_terminated(run_id, status)
    except Exception as e:  # the store itself may be what failed
        where = _remember_unclosed(run_id, status, message)
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(
            f"could not mark MLflow run {run_id} {status} ({type(e).__name__}: {first}); "
            f"{where or 'nothing recorded'}",
            file=sys.stderr,
            flush=True,
        )
    return status


# ----------------------------------------------------------------------------- unclosed runs


@contextlib.contextmanager
def _unclosed(root: Path) -> Iterator[dict[str, dict[str, str]]]:
    """The record of runs left open by a failed store, locked against other stages; written
    back (atomically; removed when empty) when the block ends without an exception."""
    path = root / UNCLOSED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            record = json.loads(path.read_text()) if path.exists() else {}
        except (OSError, ValueError):
            record = {}  # a torn or hand-edited file: the runs fall back to the stale-run rule
        before = json.dumps(record, sort_keys=True)
        yield record
        if json.dumps(record, sort_keys=True) == before:
            return
        if not record:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        tmp.write_text(json.dumps(record, indent=1, sort_keys=True))
        os.replace(tmp, path)


def _remember_unclosed(run_id: str, status: str, message: str) -> str | None:
    """Record that run ``run_id`` of the current store must be closed ``status``; a sentence
    saying where, or None when even that could not be written (a full disk)."""
    root = repo_root()
    try:
        with _unclosed(root) as record:
            record[run_id] = {
                "status": status,
                "error": message[:_ERROR_TAG_CHARS],
                "store": tracking_uri(root),
                "at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            }
    except OSError:
        return None
    return (
        f"recorded in {root / UNCLOSED_FILE}: the next stage that reaches the store closes it "
        f"{status}"
    )


def _forget_unclosed(root: Path, run_ids: set[str]) -> None:
    path = root / UNCLOSED_FILE
    if not path.exists():
        return
    with _unclosed(root) as record:
        for run_id in run_ids:
            record.pop(run_id, None)


def close_unclosed_runs(root: str | Path | None = None) -> list[str]:
    """Close the runs that :func:`fail_run` could not close because their store failed, now
    that the store answers: each gets the recorded status (FAILED, or KILLED for Ctrl-C and
    SIGTERM) and its ``error`` tag, with the time of the failure. Only runs of the current store
    (the record names it), still RUNNING, whose process is gone; a run another process resumed
    is left alone. The ids closed; one line on stderr when there are any."""
    root = repo_root(root)
    if not (root / UNCLOSED_FILE).exists():
        return []
    uri = tracking_uri(root)
    client = get_client()
    closed = []
    with _unclosed(root) as record:
        for run_id, entry in list(record.items()):
            if entry.get("store") != uri:
                continue  # another store's run: closed when that store is used again
            if not run_in_store(run_id):
                del record[run_id]
                continue
            run = client.get_run(run_id)
            if run.info.status == "RUNNING" and not _process_gone(run.data.tags):
                continue  # resumed by a live training: it closes the run itself
            if run.info.status == "RUNNING":
                error = f"{entry.get('error', '')} (at {entry.get('at', '?')}; the store failed "
                error += "too, so the run was closed when the store answered again)"
                client.set_tag(run_id, TAG_ERROR, error[:_ERROR_TAG_CHARS])
                client.set_terminated(run_id, entry.get("status", "FAILED"))
                closed.append(run_id)
            del record[run_id]
    if closed:
        print(
            f"closed {len(closed)} MLflow run(s) left RUNNING when the tracking store {uri} "
            f"failed: {', '.join(closed)}",
            file=sys.stderr,
            flush=True,
        )
    return closed


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
    if resume_run_id and run_id != resume_run_id:  # said once, on the stage's stderr
        print(
            f"{experiment}: the tracking store {tracking_uri()} does not hold MLflow run "
            f"{resume_run_id} of the interrupted training; the resumed training logs to a new "
            f"run, {run_id}, which lacks the epochs trained before",
            file=sys.stderr,
            flush=True,
        )
    with _sigterm_raises():
        try:
            yield run_id
        except BaseException as e:
            fail_run(run_id, e)
            raise
    finish_run(run_id)


def run_status(run_id: str) -> str:
    return get_client().get_run(run_id).info.status


def run_in_store(run_id: str) -> bool:
    """True when the current store holds run ``run_id``, active, so that it can be added to."""
    return stored_run(run_id) is not None


def stored_run(run_id: str) -> Run | None:
    """Run ``run_id`` as the current store holds it when it is there and active, else None.

    None when the store has no such run (or only a deleted one): outputs pulled from a DVC
    remote whose runs were logged to another store, or a store replaced since (``mlflow.db``
    deleted, ``MLFLOW_TRACKING_URI`` changed). Why not let the caller catch MLflow's error: a
    store that cannot be reached raises too, and that must stop the stage, not skip the run.
    """
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode

    try:
        run = get_client().get_run(run_id)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    return run if run.info.lifecycle_stage == "active" else None


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
    client = get_client()
    clean = {k: float(v) for k, v in metrics.items() if _is_number(v)}
    client.log_batch(
        run_id,
        metrics=[
            mlflow.entities.Metric(k, v, _now_ms(), step or 0) for k, v in sorted(clean.items())
        ],
    )


def log_missing_epochs(run_id: str, history: list[Mapping[str, float]]) -> list[int]:
    """Log the rows of ``history`` (one per epoch, ``epoch`` >= 1) that the run lacks, each at
    step = its epoch; the epochs logged now.

    Why: each epoch's row is logged after its checkpoint is written. When that log fails (the
    tracking server stopped), the resumed training starts after that epoch and never logs it
    again; the checkpoint's history still has it. A row is one batch, logged whole or not at
    all, so its ``epoch`` metric tells whether it is there.
    """
    logged = {m.step for m in get_client().get_metric_history(run_id, "epoch")}
    missing = [r for r in history if int(r.get("epoch", 0)) >= 1 and r["epoch"] not in logged]
    for row in missing:
        log_metrics(run_id, row, step=int(row["epoch"]))
    return [int(r["epoch"]) for r in missing]


def log_artifact(run_id: str, path: str | Path, artifact_path: str | None = None) -> None:
    get_client().log_artifact(run_id, str(path), artifact_path)


def log_artifacts(run_id: str, folder: str | Path, artifact_path: str | None = None) -> None:
    get_client().log_artifacts(run_id, str(folder), artifact_path)


def set_tags(run_id: str, tags: Mapping[str, str]) -> None:
    client = get_client()
    for k, v in tags.items():
        client.set_tag(run_id, k, v)


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
    inputs = [DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])]
    try:
        get_client().log_inputs(run_id, datasets=inputs)
    except mlflow.exceptions.MlflowException as e:
        # two trainings on the same data logging it at the same moment (two users, one server):
        # MLflow looks the dataset up, finds none, inserts it in both, and the database refuses
        # the second copy (seen on PostgreSQL: "duplicate key value violates unique constraint
        # dataset_pk"). Once it exists, logging again links it to this run.
        text = str(e).lower()
        if "unique" not in text and "duplicate" not in text:
            raise
        get_client().log_inputs(run_id, datasets=inputs)


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
