"""Faults of the MLflow tracking store (issue 27): a read-only or full SQLite store is refused
by the store check, a copied project's store writes and reads its own artifacts, and a model
whose files were deleted is logged and registered again.

Real SQLite stores in temporary folders, real file systems (chmod, chattr, tmpfs mounts where
this machine permits them); no mock of MLflow."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import mlflow.pytorch
import numpy as np
import pytest
import torch
from tests.test_tracking import refused_within

from simlearn import tracking
from simlearn.tracking import store as tracking_store

SECTION = {"task": "metric", "dataset": "digits", "model": {"name": "convnet"}}
MIB = 2**20


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory) -> Path:
    """An initialised, empty MLflow database: MLflow's migrations take seconds, a copy ms."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


def _project(folder: Path, empty_db: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dvc.yaml").write_text("stages: {}\n")
    shutil.copy(empty_db, folder / "mlflow.db")
    return folder


@pytest.fixture
def project(tmp_path, monkeypatch, empty_db) -> Path:
    """A project folder (dvc.yaml, an empty store) as the working directory; default URI rule."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(_project(tmp_path / "project", empty_db))
    return tmp_path / "project"


@pytest.fixture(scope="module")
def plain_db(tmp_path_factory) -> Path:
    """A SQLite database with one table: what the store check reads (it never reads MLflow's
    tables), made in ms where MLflow's migrations take seconds."""
    db = tmp_path_factory.mktemp("plain") / "mlflow.db"
    with contextlib.closing(sqlite3.connect(db)) as con:
        con.execute("CREATE TABLE t (x)")
        con.commit()
    return db


@pytest.fixture
def folder(tmp_path, monkeypatch, plain_db) -> Path:
    """A project folder whose ``mlflow.db`` is :func:`plain_db`, as the working directory."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(_project(tmp_path / "project", plain_db))
    return tmp_path / "project"


def _refused(uri: str, monkeypatch, *needles: str) -> tuple[str, float]:
    """A stage's first MLflow call on ``uri`` raises TrackingStoreError naming it, the needles
    and the fix, within 5 s: (message, seconds it took)."""
    return refused_within(uri, monkeypatch, 5.0, *needles)


# ----------------------------------------------------------------------------- read-only store


@contextlib.contextmanager
def _write_protected(path: Path, mode: int) -> Iterator[str]:
    """``path`` chmod'ed to ``mode``, and, when we run as root, immutable (``chattr +i``): root
    writes through any mode (CAP_DAC_OVERRIDE), not through the immutable attribute. Yields the
    command the error should suggest; skips when no protection holds here."""
    old = path.stat().st_mode & 0o7777
    path.chmod(mode)
    immutable = False
    try:
        if os.geteuid() == 0:
            try:
                r = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
            except FileNotFoundError:
                pytest.skip("running as root without chattr: no way to make a file read-only")
            if r.returncode:
                pytest.skip(f"running as root and `chattr +i {path}` failed: {r.stderr.strip()}")
            immutable = True
        yield "chattr -i" if immutable else "chmod u+w"
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(old)


def test_read_only_database_file_is_refused_within_seconds_naming_it(folder, monkeypatch):
    db = folder / "mlflow.db"
    with _write_protected(db, 0o444) as fix:
        with pytest.raises(OSError):  # the protection holds: nobody here can write the file
            os.close(os.open(db, os.O_RDWR))
        _refused(f"sqlite:///{db}", monkeypatch, f"{db} is not writable", fix)
    tracking.check_store(f"sqlite:///{db}")  # writable again: accepted


def test_read_only_database_folder_is_refused_within_seconds_naming_it(folder, monkeypatch):
    db = folder / "mlflow.db"
    with _write_protected(folder, 0o555) as fix:
        with pytest.raises(OSError):  # the protection holds: no journal can be created there
            (folder / "mlflow.db-journal").touch()
        _refused(
            f"sqlite:///{db}",
            monkeypatch,
            f"{folder} is not writable, so SQLite cannot create its journal",
            fix,
        )
    assert not (folder / "mlflow.db-journal").exists()
    tracking.check_store(f"sqlite:///{db}")


# ----------------------------------------------------------------------------- full store


@contextlib.contextmanager
def _small_disk(folder: Path, mib: int) -> Iterator[None]:
    """A ``mib`` MiB tmpfs mounted on ``folder``; skips where mounting is not permitted."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={mib}m", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("no mount command: cannot make a small file system")
    if r.returncode:
        pytest.skip(f"cannot mount a {mib} MiB tmpfs here: {r.stderr.strip()}")
    try:
        yield
    finally:
        # lazy: detached even if a failed check left a file open there
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def _free_mib(msg: str) -> float:
    found = re.search(r"only ([0-9.]+) MiB free", msg)
    assert found, msg
    return float(found.group(1))


def test_store_on_a_small_disk_is_refused_with_its_free_space(tmp_path, monkeypatch, plain_db):
    folder = tmp_path / "small"
    with _small_disk(folder, 8):
        shutil.copy(plain_db, folder / "mlflow.db")
        free = shutil.disk_usage(folder).free / MIB
        msg, _ = _refused(
            f"sqlite:///{folder}/mlflow.db",
            monkeypatch,
            f"the disk that holds {folder} (",
            "32 MiB",
        )
    assert abs(_free_mib(msg) - free) < 0.1 and free < 8, (free, msg)


def test_artifacts_on_a_small_disk_are_refused(folder, monkeypatch):
    artifacts = folder / "mlartifacts"
    with _small_disk(artifacts, 4):
        msg, _ = _refused(
            f"sqlite:///{folder}/mlflow.db", monkeypatch, f"the disk that holds {artifacts} ("
        )
    assert 3.9 < _free_mib(msg) <= 4.0, msg


def test_free_space_bound_refuses_a_disk_with_less_and_accepts_one_with_more(folder):
    uri = f"sqlite:///{folder}/mlflow.db"
    free = shutil.disk_usage(folder).free
    with pytest.raises(tracking.TrackingStoreError, match="MiB free") as e:
        tracking.check_store(uri, min_free=free + 2**30)
    assert abs(_free_mib(str(e.value)) - free / MIB) < 64, str(e.value)  # others write too
    assert f"at least {(free + 2**30) / MIB:.0f} MiB" in str(e.value)
    tracking.check_store(uri, min_free=free // 2)
    assert tracking_store.MIN_FREE_BYTES == 32 * MIB


# ----------------------------------------------------------------------------- copied project


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()


X = np.arange(8, dtype=np.float32).reshape(2, 1, 2, 2) / 8  # (B, C, H, W)


@pytest.mark.slow
def test_copied_project_writes_and_reads_its_own_artifacts(tmp_path, monkeypatch, empty_db, capfd):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    a = _project(tmp_path / "A", empty_db)
    monkeypatch.chdir(a)
    with tracking.training_run("k", SECTION, dataset="digits") as old_run:
        (tmp_path / "note.txt").write_text("logged in A")
        tracking.log_artifact(old_run, tmp_path / "note.txt", "files")
    tracking.publish_model(old_run, lambda: (_net(1), X[:1]))
    elsewhere = (tmp_path / "elsewhere" / "own").as_uri()  # a user's choice: never moved
    own_exp = mlflow.MlflowClient(tracking.tracking_uri()).create_experiment(
        "own", artifact_location=elsewhere
    )

    b = tmp_path / "B"
    shutil.copytree(a, b)  # cp -r A B
    (b / "mlartifacts/digits" / old_run / "artifacts/files/note.txt").write_text("B's copy")
    for model in (a / "mlartifacts/digits/models").iterdir():
        shutil.rmtree(model)  # only B has the model's files now
    before = _files(a)

    monkeypatch.chdir(b)
    capfd.readouterr()
    cl = tracking_store.get_client()
    said = capfd.readouterr().err
    (line,) = [x for x in said.splitlines() if "mlartifacts" in x]  # said once
    assert f"{a}/mlartifacts" in line and f"{b}/mlartifacts" in line, said
    with tracking.training_run("k2", SECTION, dataset="digits") as new_run:
        tracking.log_artifact(new_run, tmp_path / "note.txt", "files")
    tracking.log_artifact(old_run, tmp_path / "note.txt", "more")

    assert _files(a) == before  # nothing new in A
    art = b / "mlartifacts/digits"
    assert (art / new_run / "artifacts/files/note.txt").read_text() == "logged in A"
    assert (art / old_run / "artifacts/more/note.txt").read_text() == "logged in A"
    assert Path(cl.download_artifacts(old_run, "files/note.txt")).read_text() == "B's copy"
    assert cl.get_experiment(own_exp).artifact_location == elsewhere
    assert cl.get_run(old_run).info.artifact_uri == f"{art.as_uri()}/{old_run}/artifacts"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = mlflow.pytorch.load_model("models:/k/1")  # from B: A's copy is gone
    with torch.no_grad():
        np.testing.assert_allclose(
            loaded(torch.from_numpy(X)).numpy(), _net(1)(torch.from_numpy(X))
        )

    assert tracking_store.relocate_artifacts(tracking.tracking_uri()) is None  # done once
    with sqlite3.connect(b / "mlflow.db") as con:  # no location of B's store still names A
        for table, column in (
            ("experiments", "artifact_location"),
            ("runs", "artifact_uri"),
            ("model_versions", "storage_location"),
            ("logged_models", "artifact_location"),
        ):
            values = [v for (v,) in con.execute(f"SELECT {column} FROM {table}")]  # noqa: S608
            assert values and not [v for v in values if str(a) + "/" in v], (table, values)


# ----------------------------------------------------------------------------- deleted model


@pytest.mark.slow
def test_model_whose_files_were_deleted_is_logged_and_registered_again(project, monkeypatch, capfd):
    with tracking.training_run("k", SECTION, dataset="digits") as run_id:
        pass
    assert tracking.publish_model(run_id, lambda: (_net(1), X[:1]))
    assert not tracking.publish_model(run_id, lambda: (_net(1), X[:1]))  # there: not again
    models = project / "mlartifacts/digits/models"
    (first,) = list(models.iterdir())
    shutil.rmtree(first)  # the whole model artifact folder
    capfd.readouterr()
    assert tracking.publish_model(run_id, lambda: (_net(2), X[:1]))
    said = capfd.readouterr().err
    (line,) = [x for x in said.splitlines() if "logged again" in x]  # said once
    assert first.name in line and run_id in line, said
    cl = mlflow.MlflowClient(tracking.tracking_uri())
    assert sorted(int(v.version) for v in cl.search_model_versions("name = 'k'")) == [1, 2]
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    tracking.configure()
    loaded = mlflow.pytorch.load_model("models:/k/latest")
    with torch.no_grad():
        np.testing.assert_allclose(
            loaded(torch.from_numpy(X)).numpy(), _net(2)(torch.from_numpy(X))
        )

    (second,) = [m for m in models.iterdir() if m != first]
    (second / "artifacts/data/model.pt2").unlink()  # only the weights: as broken
    assert tracking.publish_model(run_id, lambda: (_net(3), X[:1]))
    assert len(cl.search_model_versions("name = 'k'")) == 3
    assert not tracking.publish_model(run_id, lambda: (_net(3), X[:1]))


class _Weightless(torch.nn.Module):
    """Settings and no learned tensor, with a step torch.export cannot trace: logged as JSON."""

    def __init__(self) -> None:
        super().__init__()
        self.method = "sgbm"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy().reshape(len(x), -1).copy())  # leaves the graph


@pytest.mark.slow
def test_settings_whose_file_was_deleted_are_logged_again(project):
    with tracking.training_run("sgbm", SECTION, dataset="digits") as run_id:
        pass
    assert tracking.publish_model(run_id, lambda: (_Weightless(), X))
    settings = project / "mlartifacts/digits" / run_id / "artifacts/model/settings.json"
    assert not tracking.publish_model(run_id, lambda: (_Weightless(), X))
    settings.unlink()
    assert tracking.publish_model(run_id, lambda: (_Weightless(), X))
    assert '"method": "sgbm"' in settings.read_text()


@pytest.mark.slow
def test_a_run_handed_over_saves_every_query_for_it_once_its_outputs_are_logged(
    project, tmp_path, monkeypatch
):
    with tracking.training_run("k", SECTION, dataset="digits") as run_id:
        pass
    evaluation = tmp_path / "eval"
    evaluation.mkdir()
    (evaluation / "metrics.json").write_text('{"map": 0.5}')
    assert tracking.stored_run("no-such-run") is None
    run = tracking.stored_run(run_id)
    assert run is not None and run.info.run_id == run_id
    assert tracking.publish_model(run_id, lambda: (_net(1), X[:1]), run=run)
    assert tracking.publish_evaluation(run_id, evaluation, run=run)
    asked = []
    real = mlflow.MlflowClient.get_run
    monkeypatch.setattr(
        mlflow.MlflowClient, "get_run", lambda self, rid: asked.append(rid) or real(self, rid)
    )
    run = tracking.stored_run(run_id)  # the report stage's one query for this run
    assert not tracking.publish_model(run_id, lambda: (_net(1), X[:1]), run=run)
    assert not tracking.publish_evaluation(run_id, evaluation, run=run)
    assert asked == [run_id]  # was 4: run_in_store, publish_model, file check, publish_evaluation
    asked.clear()
    assert not tracking.publish_model(run_id, lambda: (_net(1), X[:1]))
    assert not tracking.publish_evaluation(run_id, evaluation)
    assert asked == [run_id] * 2  # each call asks for the run itself


# ----------------------------------------------------------------------------- a run left open

_FAILING_TRAINING = """
import os, subprocess, sys, warnings
from simlearn import tracking
from simlearn.tracking import store
with tracking.training_run("k", {"task": "metric", "dataset": "digits"}, dataset="digits") as run:
    print(run, flush=True)
    os.chmod("mlflow.db", 0o444)
    if os.geteuid() == 0:  # root writes through any mode, not through the immutable attribute
        subprocess.run(["chattr", "+i", "mlflow.db"], check=True)
    store._CLIENTS.clear()  # the next call opens the store again, as a new connection would
    raise RuntimeError("epoch 2 of 3: the disk of the store is full")
"""


@pytest.fixture
def left_open(project) -> Iterator[str]:
    """The id of a run whose training failed while its store had become read-only: the training
    process is gone, the run is still RUNNING, the store writable again."""
    if os.geteuid() == 0 and shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make the store read-only")
    db = project / "mlflow.db"
    try:
        r = subprocess.run(
            [sys.executable, "-c", _FAILING_TRAINING], capture_output=True, text=True, timeout=120
        )
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(db)], check=False)
        db.chmod(0o644)
    assert r.returncode == 1 and "the disk of the store is full" in r.stderr, r.stderr[-3000:]
    run_id = r.stdout.split()[0]
    assert f"could not mark MLflow run {run_id} FAILED" in r.stderr, r.stderr[-3000:]
    assert str(project / tracking.UNCLOSED_FILE) in r.stderr, r.stderr[-3000:]
    cl = mlflow.MlflowClient(tracking.tracking_uri())
    assert cl.get_run(run_id).info.status == "RUNNING"  # what the issue found: a run that lies
    return run_id


@pytest.mark.slow
def test_a_run_left_running_by_a_failed_store_is_closed_failed_by_the_next_training(
    project, left_open, capfd
):
    capfd.readouterr()
    with tracking.training_run("other", SECTION, dataset="digits"):  # another key, same store
        pass
    said = capfd.readouterr().err
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(left_open)
    assert run.info.status == "FAILED", run.info
    error = run.data.tags[tracking.TAG_ERROR]
    assert error.startswith("RuntimeError: epoch 2 of 3: the disk of the store is full"), error
    assert "closed when the store answered again" in error
    assert left_open in said and "closed 1 MLflow run" in said, said
    assert not (project / tracking.UNCLOSED_FILE).exists()
    assert tracking.close_unclosed_runs() == []  # once


@pytest.mark.slow
def test_a_run_left_running_by_a_failed_store_is_closed_by_report_before_it_publishes(
    project, left_open
):
    assert tracking.close_unclosed_runs() == [left_open]
    cl = mlflow.MlflowClient(tracking.tracking_uri())
    assert cl.get_run(left_open).info.status == "FAILED"


@pytest.mark.slow
def test_a_resumed_run_left_open_by_a_failed_store_is_not_closed_and_ends_finished(
    project, left_open
):
    assert tracking.resume_run(left_open) == left_open
    assert not (project / tracking.UNCLOSED_FILE).exists()  # the record is the resume's now
    assert tracking.close_unclosed_runs() == []
    tracking.finish_run(left_open)
    cl = mlflow.MlflowClient(tracking.tracking_uri())
    run = cl.get_run(left_open)
    assert run.info.status == "FINISHED" and tracking.TAG_ERROR not in run.data.tags


def test_a_record_of_another_store_is_kept_for_that_store(project, monkeypatch):
    other = "sqlite:////nonexistent/elsewhere/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    from simlearn.tracking import runs

    assert "next stage" in runs._remember_unclosed("abc123", "FAILED", "E: x")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.close_unclosed_runs() == []
    record = (project / tracking.UNCLOSED_FILE).read_text()
    assert '"abc123"' in record and other in record


_FILLING_STORE = """
import os, resource
from simlearn import tasks, tracking
with tasks.one_message("train@k"):
    with tracking.training_run("k", {"task": "metric"}, dataset="digits") as run:
        print(run, flush=True)
        tracking.log_metrics(run, {"loss": 1.0}, step=1)
        # From here on no file may grow: the store's disk is as good as full (Python ignores
        # SIGXFSZ, so the write fails with EFBIG, which SQLite reports as a disk I/O error).
        size = max(os.path.getsize(f) for f in os.listdir(".") if f.startswith("mlflow.db"))
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.RLIM_INFINITY))
        for step in range(2, 2000):
            tracking.log_metrics(run, {"loss": 1.0 / step, "pad": step}, step=step)
"""


@pytest.mark.slow
def test_a_store_that_fills_in_the_middle_of_a_training_ends_it_with_one_message(project):
    r = subprocess.run(
        [sys.executable, "-c", _FILLING_STORE], capture_output=True, text=True, timeout=120
    )
    run_id = r.stdout.split()[0]
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    said = r.stderr[r.stderr.index("train@k failed:") :]
    assert tracking.tracking_uri() in said and "failed in the middle of the stage" in said, said
    assert "its disk is full, over a quota or a file-size limit" in said, said
    assert "disk I/O error" in said, said
    cl = mlflow.MlflowClient(tracking.tracking_uri())
    if "could not mark MLflow run" in r.stderr:  # closing it needed a page the disk lacked
        assert cl.get_run(run_id).info.status == "RUNNING"
        assert tracking.close_unclosed_runs() == [run_id]  # the limit died with the process
    else:  # the status fitted in the pages the database had
        assert not (project / tracking.UNCLOSED_FILE).exists()
    run = cl.get_run(run_id)
    assert run.info.status == "FAILED" and "disk I/O error" in run.data.tags[tracking.TAG_ERROR]
    assert [m.value for m in cl.get_metric_history(run_id, "loss")][0] == 1.0  # kept


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (sqlite3.OperationalError("disk I/O error"), "its disk is full"),
        (sqlite3.OperationalError("database or disk is full"), "its disk is full"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.OperationalError("database is locked"), "held its lock"),
        (
            mlflow.exceptions.MlflowException(
                "API request to http://127.0.0.1:9/api/2.0/mlflow/runs/log-batch failed with "
                "exception HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded"
            ),
            "the server stopped answering",
        ),
    ],
)
def test_a_store_failure_in_the_middle_of_a_stage_is_said_with_its_cause(error, cause, project):
    said = tracking_store.as_store_error(error)
    assert isinstance(said, tracking.TrackingStoreError)
    assert cause in str(said) and tracking.tracking_uri() in str(said)
    assert str(error).splitlines()[0][:40] in str(said)


@pytest.mark.parametrize(
    "error",
    [
        ValueError("disk I/O error"),  # not an error of the store's kinds: a bug
        mlflow.exceptions.MlflowException("Invalid value 'x' for parameter 'max_results'"),
        sqlite3.OperationalError("no such column: runs.foo"),
    ],
)
def test_other_errors_are_not_taken_for_a_failing_store(error):
    assert tracking_store.as_store_error(error) is None
