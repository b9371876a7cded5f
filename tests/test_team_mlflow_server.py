"""A team's MLflow server: ``mlflow server`` on PostgreSQL with proxied artifacts, and two clones
of the project running ``dvc repro`` against it at the same time.

PostgreSQL is Debian's (``apt-get install -y postgresql``; ``.ci/run`` installs it): a throw-away
cluster made with ``initdb`` in a temporary folder and started with ``pg_ctl`` on a free loopback
port (as root, both run as ``nobody``: PostgreSQL refuses to run as root). ``mlflow server``
serves it with ``--artifacts-destination`` (clients upload and download artifacts through the
server and never see the artifact store). Two clones ("alice", "bob"), each with its own
``params.yaml`` (a ``raw`` baseline and a small triplet network on the embedded ``digits``), run
``dvc repro report`` at once with ``MLFLOW_TRACKING_URI=http://...``; the MLflow client reads back
every run: FINISHED, every per-epoch and evaluation metric (counted, compared with the clones'
files), the dataset input, the figures and the pt2 models through the server, the registry.
A copy of a complete project whose runs live on the server, pointed at a new store, reruns an
edited experiment: the report names the missing run once and goes on.

Skipped, with the reason, where ``initdb``/``pg_ctl`` or ``psycopg2`` cannot be found.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.protos.databricks_pb2 import BAD_REQUEST
from mlflow.tracking import MlflowClient

from simlearn import tracking

ROOT = Path(__file__).resolve().parents[1]
TRACKED = ("dvc.yaml", "stages", "src", ".dvc", ".dvcignore", ".gitignore")
EVAL = {"embedding_map": "pca"}  # t-SNE would double the pipeline's time for nothing tested here
DIGITS = {"source": "digits", "test_fraction": 0.3, "validation": {"min_rows_per_split": 100}}


def _params(normalize: bool, embedding_dim: int, epochs: int) -> dict[str, Any]:
    """Two quick experiments (the ``distances`` stage reads ``raw`` and ``triplet``)."""
    return {
        "datasets": {"digits": DIGITS},
        "experiments": {
            "raw": {
                "task": "metric",
                "dataset": "digits",
                "model": {"name": "raw", "normalize": normalize},
                "eval": EVAL,
            },
            "triplet": {
                "task": "metric",
                "dataset": "digits",
                "model": {"name": "convnet", "embedding_dim": embedding_dim, "width": 4},
                "loss": {"name": "triplet"},
                "sampler": {"steps_per_epoch": 2},
                "train": {"epochs": epochs},
                "eval": EVAL,
            },
        },
    }


#: two users, two different sets of experiments under the same keys
USERS = {
    "alice": _params(normalize=False, embedding_dim=8, epochs=2),
    "bob": _params(normalize=True, embedding_dim=12, epochs=3),
}


# ----------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest
    /usr/lib/postgresql/<version>/bin."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    found = [
        d
        for d in Path("/usr/lib/postgresql").glob("*/bin")
        if (d / "initdb").exists() and (d / "pg_ctl").exists()
    ]
    version = lambda d: int(d.parent.name) if d.parent.name.isdigit() else 0  # noqa: E731
    return max(found, key=version, default=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postgres:
    bin: Path
    folder: Path  # the cluster, its log and its socket; owned by the user that runs it
    port: int
    as_user: list[str]  # the command prefix that runs a program as that user

    def run(self, *args: str) -> str:
        res = subprocess.run(
            [*self.as_user, str(self.bin / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, f"{' '.join(args)}: {res.stdout[-2000:]}{res.stderr[-2000:]}"
        return res.stdout

    @property
    def uri(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/mlflow"


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """A throw-away PostgreSQL cluster on a free loopback port, with an empty database
    ``mlflow``; trust authentication, no fsync (nothing here must survive a crash)."""
    pg_bin = _pg_bin()
    if pg_bin is None:
        pytest.skip(
            "no initdb/pg_ctl on PATH or in /usr/lib/postgresql/*/bin: install Debian's "
            "PostgreSQL (`apt-get install -y postgresql`; .ci/run does)"
        )
    psycopg2 = pytest.importorskip(
        "psycopg2", reason="the PostgreSQL driver: pip install -e '.[server]'"
    )
    folder = Path(tempfile.mkdtemp(prefix="simlearn-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(folder)
            pytest.skip("running as root without runuser: cannot start PostgreSQL as a user")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root with no user `nobody` to run PostgreSQL as")
        os.chown(folder, nobody.pw_uid, nobody.pw_gid)
        as_user = [runuser, "-u", "nobody", "--"]
    pg = Postgres(pg_bin, folder, _free_port(), as_user)
    data = folder / "data"
    pg.run("initdb", "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
    options = (
        f"-p {pg.port} -c listen_addresses=127.0.0.1 -k {folder} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    pg.run("pg_ctl", "-D", str(data), "-l", str(folder / "log"), "-w", "-o", options, "start")
    try:
        con = psycopg2.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres")
        con.autocommit = True
        con.cursor().execute("CREATE DATABASE mlflow")
        con.close()
        yield pg
    finally:
        subprocess.run(
            [*as_user, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- mlflow server


class MlflowServer:
    """``mlflow server`` on PostgreSQL with proxied artifacts, on a loopback port; restartable
    on the same port, store and artifacts."""

    def __init__(self, backend: str, artifacts: Path, log: Path) -> None:
        self.backend, self.artifacts, self.log = backend, artifacts, log
        self.port = _free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 180) -> None:
        self.launch()
        self.wait(timeout)

    def launch(self) -> None:
        """Start the server process; :meth:`wait` for it to answer."""
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", self.backend]
        cmd += ["--artifacts-destination", str(self.artifacts)]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.log.parent,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop() ends the server and its workers together
            )

    def wait(self, timeout: float = 180) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                log = self.log.read_text()[-3000:]
                raise AssertionError(f"mlflow server did not start:\n{log}")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, 9)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None


# ----------------------------------------------------------------------------- the clones


def _env(code: Path, uri: str | None) -> dict[str, str]:
    """The environment of a user's commands: ``code`` (a ``src`` folder) on PYTHONPATH, logging
    to ``uri`` (None: the project's default store, ``<repo>/mlflow.db``)."""
    env = {
        **os.environ,
        "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PYTHONPATH": str(code),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    if uri is not None:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", *args], cwd=repo, env=_env(repo / "src", None), check=True, capture_output=True
    )


@dataclass
class Job:
    proc: subprocess.Popen
    log: Path
    start: int  # where its output begins in the log


def _start(cmd: list[str], repo: Path, env: dict[str, str]) -> Job:
    """``cmd`` in ``repo``, its output to ``<repo>.log``: a file, not a pipe, that nobody reads
    while waiting for the other clone (a full pipe would stop the process writing to it)."""
    log = repo.with_suffix(".log")
    start = log.stat().st_size if log.exists() else 0
    with open(log, "a") as f:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=f, stderr=subprocess.STDOUT)
    return Job(proc, log, start)


def _dvc_repro(repo: Path, env: dict[str, str]) -> Job:
    """``dvc repro report``: every stage up to the report, the last one that logs to MLflow
    (``distances`` and ``plots_template`` log nothing; leaving them out saves 7 s a clone)."""
    return _start([str(Path(sys.executable).parent / "dvc"), "repro", "report"], repo, env)


def _finish(job: Job, what: str, ok: bool = True) -> str:
    """Wait for ``job``; the output it wrote (exit status 0 asserted when ``ok``)."""
    try:
        job.proc.wait(timeout=900)
    finally:
        if job.proc.poll() is None:
            job.proc.kill()
    with open(job.log, "rb") as f:
        f.seek(job.start)
        out = f.read().decode(errors="replace")
    if ok:
        assert job.proc.returncode == 0, f"{what}: exit {job.proc.returncode}\n{out[-6000:]}"
    return out


@dataclass
class Team:
    server: MlflowServer
    clones: dict[str, Path]
    code: Path  # the src/ on the clones' PYTHONPATH
    logs: dict[str, str]
    seconds: float  # wall time of the two concurrent `dvc repro`

    def client(self) -> MlflowClient:
        return MlflowClient(self.server.uri)


@pytest.fixture(scope="module")
def team(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    """The server, and the two clones after their concurrent ``dvc repro``."""
    top = tmp_path_factory.mktemp("team")
    (top / "artifacts").mkdir()
    server = MlflowServer(postgres.uri, top / "artifacts", top / "mlflow-server.log")
    server.launch()  # it starts (~10 s) while the clones are made
    try:
        origin = top / "origin"
        origin.mkdir()
        for item in TRACKED:
            src = ROOT / item
            if src.is_dir():
                ignore = shutil.ignore_patterns("__pycache__", "tmp", "cache")
                shutil.copytree(src, origin / item, ignore=ignore)
            else:
                shutil.copy(src, origin / item)
        (origin / "params.yaml").write_text(yaml.safe_dump(USERS["alice"], sort_keys=False))
        _git(origin, "init", "-q")
        _git(origin, "add", "-A")
        _git(origin, "commit", "-qm", "init")
        # one PYTHONPATH for both clones (they hold the same commit of src/): the stages of both
        # then share one warm server (simlearn.warm keys it on PYTHON* variables), and 2 cores
        # import torch, MLflow and Great Expectations once instead of twice. A light stage run
        # now starts that server, which imports while mlflow server starts: no stage runs cold
        env = _env(origin / "src", server.uri)
        warm = [sys.executable, "stages/check_params.py", str(top / "params_check.json")]
        out = subprocess.DEVNULL  # not a pipe: the warm server it starts would hold it open
        subprocess.run(warm, cwd=origin, env=env, stdout=out, stderr=out, timeout=120)
        clones = {}
        for user, params in USERS.items():  # each user clones, edits params.yaml, reproduces
            clones[user] = top / user
            _git(top, "clone", "-q", str(origin), user)
            (clones[user] / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        server.wait()
        t0 = time.perf_counter()
        procs = {u: _dvc_repro(c, env) for u, c in clones.items()}
        logs = {u: _finish(p, f"dvc repro in {u}'s clone") for u, p in procs.items()}
        seconds = time.perf_counter() - t0
        print(f"two concurrent dvc repro against the server: {seconds:.1f} s")
        yield Team(server, clones, origin / "src", logs, seconds)
    finally:
        server.stop()


def _run_ids(clone: Path) -> dict[str, str]:
    """params key -> the MLflow run its ``train`` stage logged to (``models/<key>/run.json``)."""
    return {
        key: json.loads((clone / "models" / key / "run.json").read_text())["run_id"]
        for key in ("raw", "triplet")
    }


def _md5s(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """What ``publish_evaluation`` logs of a metrics.json: every number (null skipped)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


@pytest.fixture(autouse=True)
def _mlflow_uri_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """simlearn.tracking points MLflow's process-wide URI at the store it opens (here the test
    server, gone after this module): put the previous one back after each test."""
    from mlflow.tracking._tracking_service import utils

    monkeypatch.setattr(
        utils, "_tracking_uri", getattr(utils, "_tracking_uri", None), raising=False
    )


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# ----------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_two_clones_at_once_log_every_run_finished_and_complete_to_the_server(
    team, monkeypatch, tmp_path
):
    monkeypatch.chdir(tmp_path)  # nothing of MLflow's may land in the working tree
    client = team.client()
    exp = client.get_experiment_by_name("digits")
    assert exp is not None and exp.artifact_location.startswith("mlflow-artifacts:")
    on_server = {r.info.run_id: r for r in client.search_runs([exp.experiment_id])}
    figures = 0
    ids = {(u, k): rid for u, c in team.clones.items() for k, rid in _run_ids(c).items()}
    assert set(on_server) == set(ids.values()) and len(ids) == 4, (ids, list(on_server))

    for (user, key), run_id in ids.items():
        clone, section = team.clones[user], USERS[user]["experiments"][key]
        run = client.get_run(run_id)
        where = f"{user}'s {key} (run {run_id})"
        assert run.info.status == "FINISHED" and run.info.run_name == key, where
        assert run.data.tags["params_key"] == key and run.data.tags["dataset"] == "digits", where
        assert run.data.params["model.normalize" if key == "raw" else "model.embedding_dim"] == (
            str(section["model"]["normalize" if key == "raw" else "embedding_dim"])
        ), where
        assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["digits"], where

        # evaluation metrics: every number of the clone's metrics.json, with its value
        evaluation = _numbers(json.loads((clone / f"reports/eval/{key}/metrics.json").read_text()))
        for k, v in evaluation.items():
            got = run.data.metrics.get(k)
            assert got is not None and _same(got, v), f"{where}: {k} = {got}, metrics.json says {v}"
        # per-epoch metrics: one point per epoch of history.csv, at step = epoch, same value
        history = pd.read_csv(clone / f"reports/train/{key}/history.csv")
        trained = history[history["epoch"] >= 1]  # a fitted baseline has one row, epoch 0
        per_epoch = [c for c in history.columns if trained[c].notna().any()]
        points = 0
        for col in per_epoch:
            logged = {
                m.step: m.value
                for m in client.get_metric_history(run_id, col)
                if m.step >= 1  # step 0: the training summary (samples_per_s)
            }
            assert logged == pytest.approx(
                dict(zip(trained["epoch"], trained[col], strict=True))
            ), f"{where}: {col} per epoch"
            points += len(logged)
        epochs = section.get("train", {}).get("epochs", 0)
        assert len(trained) == epochs and points == epochs * len(per_epoch), where
        # the count: nothing missing, nothing unexpected
        summary = {"train_seconds", "samples_per_s", "epochs"}
        summary |= {"final_val_map"} if "val_map" in history else set()
        assert set(run.data.metrics) == set(evaluation) | summary | set(per_epoch), where

        # figures, through the server, byte for byte
        got = Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="figures", tracking_uri=team.server.uri
            )
        )
        want = _md5s(clone / f"reports/eval/{key}/figures")
        curves = clone / f"reports/train/{key}/training_curves.png"
        if curves.exists():  # drawn when there are two epochs or more
            want[curves.name] = hashlib.md5(curves.read_bytes()).hexdigest()
        assert _md5s(got) == want, where
        figures += len(want)

    # every artifact went through the server to its --artifacts-destination; no clone has a
    # store or artifacts of its own
    assert sum(1 for p in team.server.artifacts.rglob("*.png")) == figures >= 4 * 5
    for clone in team.clones.values():
        assert not any((clone / name).exists() for name in ("mlflow.db", "mlruns", "mlartifacts"))


@pytest.mark.slow
def test_networks_are_registered_and_load_through_the_server_without_pickle(
    team, monkeypatch, tmp_path
):
    import torch

    monkeypatch.chdir(tmp_path)  # nothing of MLflow's may land in the working tree

    client = team.client()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    mlflow.set_tracking_uri(team.server.uri)  # put back after the test (_mlflow_uri_restored)
    versions = {v.run_id: v.version for v in client.search_model_versions("name = 'triplet'")}
    triplets = {user: _run_ids(clone)["triplet"] for user, clone in team.clones.items()}
    assert set(versions) == set(triplets.values()), versions
    for user, clone in team.clones.items():
        run_id = triplets[user]
        assert client.get_run(run_id).data.tags["model_format"] == "pt2"
        model = mlflow.pytorch.load_model(f"models:/triplet/{versions[run_id]}")
        rows = pd.read_parquet(clone / "data/digits/manifest.parquet")["index"].to_numpy()
        images = np.load(clone / "data/digits/images.npy")[rows]  # embeddings follow the manifest
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # (N, C, H, W) in [0, 1]
        with torch.no_grad():
            got = model(x).numpy()
        want = np.load(clone / "data/embeddings/triplet.npz")["embeddings"]
        dim = USERS[user]["experiments"]["triplet"]["model"]["embedding_dim"]
        assert got.shape == want.shape == (1797, dim)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_run_in_store_is_false_for_a_missing_or_deleted_run_and_raises_for_a_dead_store(
    team, monkeypatch
):
    from simlearn import tracking
    from simlearn.tracking.store import HTTP_BOUNDS

    for name, value in HTTP_BOUNDS.items():  # what configure() sets, restored afterwards
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.server.uri)
    client = team.client()
    assert tracking.run_in_store(_run_ids(team.clones["alice"])["raw"])
    assert not tracking.run_in_store("0" * 32)  # never logged here (another store's run)
    scratch = client.create_experiment("scratch")
    gone = client.create_run(scratch).info.run_id
    client.delete_run(gone)
    assert not tracking.run_in_store(gone)
    # a store that does not answer is not "no such run": the caller must stop, not skip
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_free_port()}")
    with pytest.raises(tracking.TrackingStoreError, match="127.0.0.1"):
        tracking.run_in_store(gone)


@pytest.mark.slow
def test_a_resumed_training_whose_run_is_gone_says_so_and_logs_its_missing_epochs(
    team, monkeypatch, tmp_path, capsys
):
    from simlearn import tracking
    from simlearn.tracking.store import HTTP_BOUNDS

    for name, value in HTTP_BOUNDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team.server.uri)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    section = {"task": "metric", "dataset": "scratch_digits", "train": {"epochs": 3}}
    gone = "0" * 32  # the run a checkpoint names, not in this store
    with tracking.training_run("k", section, dataset="scratch_digits", resume_run_id=gone) as rid:
        tracking.log_metrics(rid, {"epoch": 1, "loss": 0.5}, step=1)
        tracking.log_metrics(rid, {"epoch": 3, "loss": 0.3}, step=3)  # epoch 2's log was lost
        rows = [{"epoch": e, "loss": v} for e, v in ((1, 0.5), (2, 0.4), (3, 0.3))]
        assert tracking.log_missing_epochs(rid, rows) == [2]
        assert tracking.log_missing_epochs(rid, rows) == []  # logged once
    err = capsys.readouterr().err
    assert err.count(f"does not hold MLflow run {gone}") == 1 and team.server.uri in err, err
    assert f"logs to a new run, {rid}" in err
    history = team.client().get_metric_history(rid, "loss")
    assert sorted((m.step, m.value) for m in history) == [(1, 0.5), (2, 0.4), (3, 0.3)]


@pytest.mark.slow
def test_a_copy_on_a_new_store_trains_the_edit_and_names_the_missing_run_once(team, tmp_path):
    # a complete project whose runs are on the server, now logging to a new store (the default
    # <repo>/mlflow.db, absent): the case of `rm mlflow.db`, or of outputs from `dvc pull`
    copy = tmp_path / "copy"
    shutil.copytree(team.clones["alice"], copy, symlinks=True)
    params = json.loads(json.dumps(USERS["alice"]))
    params["experiments"]["triplet"]["loss"]["margin"] = 0.3
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _finish(_dvc_repro(copy, _env(team.code, None)), "dvc repro in the copy on a new store")
    assert "Traceback" not in out, out[-4000:]
    raw_run = _run_ids(team.clones["alice"])["raw"]
    assert out.count("does not hold the MLflow runs of") == 1, out[-4000:]
    line = next(ln for ln in out.splitlines() if "does not hold the MLflow runs of" in ln)
    assert f"runs of raw (run {raw_run}):" in line and "triplet" not in line.split(":")[1], line
    assert "Running stage 'train@triplet'" in out and "Running stage 'train@raw'" not in out

    client = MlflowClient(f"sqlite:///{copy / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("digits").experiment_id])
    assert [(r.info.run_name, r.info.status) for r in runs] == [("triplet", "FINISHED")]
    run = runs[0]
    assert run.info.run_id == _run_ids(copy)["triplet"] != _run_ids(team.clones["alice"])["triplet"]
    evaluation = _numbers(json.loads((copy / "reports/eval/triplet/metrics.json").read_text()))
    assert all(_same(run.data.metrics[k], v) for k, v in evaluation.items()), run.data.metrics
    assert run.data.params["loss.margin"] == "0.3" and run.data.tags["model_format"] == "pt2"
    assert [v.run_id for v in client.search_model_versions("name = 'triplet'")] == [run.info.run_id]
    assert not client.search_model_versions("name = 'raw'")
    summary = (copy / "reports/summary.md").read_text()
    assert "| raw |" in summary and "| triplet |" in summary


@pytest.mark.slow
def test_a_training_whose_server_stops_fails_within_15_s_and_resumes_its_run_when_it_is_back(
    team, tmp_path
):
    copy = tmp_path / "copy"
    shutil.copytree(team.clones["bob"], copy, symlinks=True)
    params = json.loads(json.dumps(USERS["bob"]))
    triplet = params["experiments"]["triplet"]
    triplet["sampler"] = {}  # full epochs (~1 s each): time to stop the server after the first
    triplet["train"]["epochs"] = EPOCHS = 3
    (copy / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, "stages/train.py", "triplet", "data/digits", "models/triplet"]
    cmd += ["reports/train/triplet", "--no-progress"]
    env = _env(team.code, team.server.uri)
    client = team.client()
    job = _start(cmd, copy, env)
    proc = job.proc
    try:
        run_file, deadline = copy / "checkpoints/triplet/run.json", time.monotonic() + 120
        while not run_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        run_id = json.loads(run_file.read_text())["run_id"]
        while not client.get_metric_history(run_id, "loss") and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the training ended before the server could be stopped"
        team.server.stop()
        stopped = time.monotonic()
        out = _finish(job, "the training", ok=False)
        failed_in = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
        team.server.start()
    print(f"the training failed {failed_in:.1f} s after the server stopped")
    assert proc.returncode != 0 and failed_in < 15, (failed_in, out[-3000:])
    assert team.server.uri in out, out[-3000:]
    before = {m.step for m in client.get_metric_history(run_id, "loss")}
    assert before and max(before) < EPOCHS
    unclosed = json.loads((copy / tracking.UNCLOSED_FILE).read_text())  # to close it FAILED
    assert unclosed[run_id]["status"] == "FAILED" and unclosed[run_id]["store"] == team.server.uri

    out = _finish(_start(cmd, copy, env), "the training, rerun once the server is back")
    assert f"MLflow run {run_id}" in out  # its own run, resumed, not a new one
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags.get("resumes") == "1"
    assert not (copy / tracking.UNCLOSED_FILE).exists()  # resumed, so not closed FAILED
    history = pd.read_csv(copy / "reports/train/triplet/history.csv")
    logged = {m.step: m.value for m in client.get_metric_history(run_id, "loss")}
    assert logged == pytest.approx(dict(zip(history["epoch"], history["loss"], strict=True))), (
        before,
        logged,
    )


class _RacingClient:
    """A client whose first ``log_inputs`` fails as PostgreSQL answered when two clones logged
    the same dataset at the same moment (MLflow checks, then inserts)."""

    def __init__(self, first_error: str) -> None:
        self.first_error, self.calls = first_error, 0

    def log_inputs(self, run_id: str, datasets: list) -> None:
        self.calls += 1
        if self.calls == 1:
            raise mlflow.exceptions.MlflowException(self.first_error, error_code=BAD_REQUEST)


@pytest.mark.parametrize(
    ("first_error", "retried"),
    [
        ('(psycopg2.errors.UniqueViolation) duplicate key value violates unique constraint '
         '"dataset_pk" DETAIL: Key (experiment_id, name, digest)=(1, digits, 7e9c5bd8)', True),
        ("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.experiment_id", True),
        ("Run 'abc' not found", False),
    ],
)  # fmt: skip
def test_log_dataset_logs_again_once_when_a_parallel_training_inserted_the_dataset_first(
    monkeypatch, first_error, retried
):
    from simlearn.tracking import runs

    fake = _RacingClient(first_error)
    monkeypatch.setattr(runs, "get_client", lambda: fake)
    manifest = pd.DataFrame({"id": ["a", "b"], "label": [0, 1]})
    if retried:
        runs.log_dataset("r", manifest, name="digits", source="/data/digits", context="training")
        assert fake.calls == 2
    else:  # any other refusal is the caller's to see
        with pytest.raises(mlflow.exceptions.MlflowException, match="not found"):
            runs.log_dataset(
                "r", manifest, name="digits", source="/data/digits", context="training"
            )
        assert fake.calls == 1
