"""simlearn.tracking: layout, truthful run states, the registry round trip, store faults.

Every test works on a SQLite store in its own temporary folder (the default URI rule, or
MLFLOW_TRACKING_URI pointing at a fault)."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from simlearn import tracking
from simlearn.config import ConfigError

SECTION = {
    "task": "metric",
    "dataset": "digits",
    "model": {"name": "convnet", "embedding_dim": 8},
    "loss": {"name": "batch_hard", "margin": 0.2},
    "train": {"lr": 0.01, "epochs": 3},
    "holdout_classes": [7, 8],
}
DESCRIPTION = "batch-hard triplet: L = mean_a [m + max_p d(a,p) - min_n d(a,n)]_+"


@pytest.fixture(scope="session")
def empty_db(tmp_path_factory) -> Path:
    """An initialised, empty MLflow database: creating the schema takes MLflow ~8 s, a copy ms."""
    db = tmp_path_factory.mktemp("template") / "mlflow.db"
    mlflow.MlflowClient(f"sqlite:///{db}").search_experiments()
    return db


@pytest.fixture
def store(tmp_path, monkeypatch, empty_db):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    shutil.copy(empty_db, tmp_path / "mlflow.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    return tmp_path


def client() -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking.tracking_uri())


def test_uri_rule(store, monkeypatch):
    sub = store / "stages"
    sub.mkdir()
    assert tracking.tracking_uri(sub) == f"sqlite:///{store.resolve()}/mlflow.db"
    queued = store / ".dvc" / "tmp" / "exps" / "tmpabc"
    queued.mkdir(parents=True)
    (queued / "dvc.yaml").write_text("")
    assert tracking.repo_root(queued) == store.resolve()
    tracking.configure(sub)  # MLflow exports the URI it is given; the rule must not see it
    assert "MLFLOW_TRACKING_URI" not in os.environ
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking.tracking_uri(sub) == "http://127.0.0.1:1"


def test_layout_config():
    assert tracking.config({}).experiment_per == "dataset"
    assert tracking.config({"tracking": {"experiment_per": "experiment"}}).experiment_per == (
        "experiment"
    )
    with pytest.raises(ConfigError, match=r"tracking\.experiment_per='run'.*'dataset'"):
        tracking.config({"tracking": {"experiment_per": "run"}})
    with pytest.raises(ConfigError, match=r"tracking\.per_dataset: unknown key"):
        tracking.config({"tracking": {"per_dataset": True}})
    assert tracking.experiment_name("bh", "digits") == "digits"
    assert tracking.experiment_name("bh", "digits", "experiment") == "bh"


def test_two_keys_on_one_dataset_share_one_experiment(store):
    other = {**SECTION, "loss": {"name": "supcon"}}
    with tracking.training_run("bh", SECTION, dataset="digits", description=DESCRIPTION) as a:
        pass
    with tracking.training_run("sc", other, dataset="digits") as b:
        pass
    baseline = {**SECTION, "model": {"name": "raw"}}  # fitted: its default loss is unused
    with tracking.training_run("raw", baseline, dataset="digits") as c:
        pass
    with tracking.training_run("stereo", SECTION, dataset="motorcycle") as d:
        pass

    cl = client()
    runs = {r.info.run_name: r for r in cl.search_runs([cl.get_run(a).info.experiment_id])}
    assert sorted(runs) == ["bh", "raw", "sc"]  # one table for digits; motorcycle elsewhere
    exp = cl.get_experiment(cl.get_run(a).info.experiment_id)
    assert exp.name == "digits"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "every simlearn training on dataset `digits`" in exp.tags["mlflow.note.content"]
    assert cl.get_experiment(cl.get_run(d).info.experiment_id).name == "motorcycle"
    assert exp.artifact_location == (store.resolve() / "mlartifacts" / "digits").as_uri()

    tags = cl.get_run(a).data.tags
    assert {k: tags[k] for k in ("task", "loss", "model", "params_key", "dataset")} == {
        "task": "metric",
        "loss": "batch_hard",
        "model": "convnet",
        "params_key": "bh",
        "dataset": "digits",
    }
    assert tags["mlflow.note.content"] == DESCRIPTION
    assert tags["mlflow.source.name"] == "stages/train.py"
    assert cl.get_run(b).data.tags["loss"] == "supcon"
    assert cl.get_run(c).data.tags["loss"] == "none"
    assert cl.get_run(b).data.tags["mlflow.note.content"] == (
        "sc: task metric, loss supcon, model convnet, dataset digits"
    )

    assert tracking.ui_links("http://h:1") == {
        "digits": f"http://h:1/#/experiments/{exp.experiment_id}?workflowType=machine_learning",
        "motorcycle": tracking.ui_url(cl.get_run(d).info.experiment_id, "http://h:1"),
    }  # Default (no runs) is left out

    # "Group by" and the search box work on the tags
    found = cl.search_runs([exp.experiment_id], filter_string="tags.loss = 'supcon'")
    assert [r.info.run_id for r in found] == [b]


def test_layout_per_params_experiment(store):
    with tracking.training_run("bh", SECTION, dataset="digits", layout="experiment") as a:
        pass
    with tracking.training_run("sc", SECTION, dataset="digits", layout="experiment") as b:
        pass
    cl = client()
    names = {cl.get_experiment(cl.get_run(r).info.experiment_id).name for r in (a, b)}
    assert names == {"bh", "sc"}


def test_params_metrics_and_run_file_read_back(store):
    run_id = tracking.start_run("exp_a", SECTION, dataset="digits")
    tracking.log_metrics(run_id, {"loss": 0.5}, step=1)
    tracking.log_metrics(run_id, {"loss": 0.25, "note": "text is skipped"}, step=2)
    tracking.log_metrics(run_id, {"map": 0.9})
    tracking.write_run_file(store / "run.json", run_id, "exp_a")
    assert tracking.read_run_file(store / "run.json") == run_id

    cl = client()
    run = cl.get_run(run_id)
    assert run.data.params == {
        "task": "metric",
        "dataset": "digits",
        "model.name": "convnet",
        "model.embedding_dim": "8",
        "loss.name": "batch_hard",
        "loss.margin": "0.2",
        "train.lr": "0.01",
        "train.epochs": "3",
        "holdout_classes": "[7, 8]",
    }
    assert run.data.metrics["map"] == 0.9 and "note" not in run.data.metrics
    assert [m.value for m in cl.get_metric_history(run_id, "loss")] == [0.5, 0.25]
    tags = run.data.tags
    assert tags["dataset"] == "digits" and tags["dvc_exp_name"] == "exp-test"
    assert tags["params_hash"] == tracking.params_hash(SECTION)
    assert {"git_commit", "git_dirty"} <= set(tags)
    assert run.info.run_name == "exp_a"
    assert (store / "mlflow.db").exists()


def test_publish_evaluation_logs_once_and_again_only_when_a_file_changes(store):
    run_id = tracking.start_run("exp_a", SECTION, dataset="digits")
    tracking.finish_run(run_id)
    ev, curves = store / "eval/exp_a", store / "curves/exp_a"
    (ev / "figures").mkdir(parents=True)
    curves.mkdir(parents=True)
    (ev / "metrics.json").write_text('{"map": 0.75, "unseen_map": null}\n')
    (ev / "figures/pr.png").write_bytes(b"png")
    (curves / "pr.csv").write_text("x,y\n0,1\n")
    assert tracking.publish_evaluation(run_id, ev, curves)
    assert not tracking.publish_evaluation(run_id, ev, curves)  # same files: nothing logged
    cl = client()
    run = cl.get_run(run_id)
    assert run.info.status == "FINISHED"  # adding to a run never changes its state
    assert run.data.metrics == {"map": 0.75}  # null (NaN) is not logged
    assert [m.value for m in cl.get_metric_history(run_id, "map")] == [0.75]
    arts = {a.path for a in cl.list_artifacts(run_id)} | {
        a.path for d in ("figures", "eval", "eval/curves") for a in cl.list_artifacts(run_id, d)
    }
    assert {"figures/pr.png", "eval/metrics.json", "eval/curves/pr.csv"} <= arts
    (ev / "metrics.json").write_text('{"map": 0.8}\n')
    assert tracking.publish_evaluation(run_id, ev, curves)
    assert [m.value for m in cl.get_metric_history(run_id, "map")] == [0.75, 0.8]


def test_log_dataset_keeps_the_run_running(store):
    import pandas as pd

    run_id = tracking.start_run("bh", SECTION, dataset="digits")
    manifest = pd.DataFrame({"index": [0, 1, 2], "label": [0, 1, 1], "split": ["train"] * 3})
    tracking.log_dataset(run_id, manifest, name="digits", source=str(store), context="training")
    run = client().get_run(run_id)
    assert run.info.status == "RUNNING"  # the old fluent reopen marked it FINISHED here
    (inp,) = run.inputs.dataset_inputs
    assert inp.dataset.name == "digits"
    assert {t.key: t.value for t in inp.tags}["mlflow.data.context"] == "training"


def test_params_hash_is_order_independent():
    assert tracking.params_hash({"a": 1, "b": 2}) == tracking.params_hash({"b": 2, "a": 1})
    assert tracking.params_hash({"a": 1}) != tracking.params_hash({"a": 2})


# ----------------------------------------------------------------------------- run states


def test_finished_only_when_the_block_completes_and_latest_moves(store):
    with tracking.training_run("bh", SECTION, dataset="digits") as first:
        assert tracking.run_status(first) == "RUNNING"
        tracking.log_metrics(first, {"loss": 1.0}, step=1)
        assert tracking.run_status(first) == "RUNNING"
    assert tracking.run_status(first) == "FINISHED"
    assert client().get_run(first).data.tags["latest"] == "true"

    with tracking.training_run("bh", {**SECTION, "seed": 1}, dataset="digits") as second:
        pass
    with tracking.training_run("other", SECTION, dataset="digits") as other:
        pass
    cl = client()
    assert "latest" not in cl.get_run(first).data.tags  # moved to the newer run of the key
    assert cl.get_run(second).data.tags["latest"] == "true"
    assert cl.get_run(other).data.tags["latest"] == "true"  # other keys keep theirs


def test_exception_marks_failed_with_the_message(store):
    with pytest.raises(ValueError, match="margin=nan"):
        with tracking.training_run("bh", SECTION, dataset="digits") as run_id:
            tracking.log_metrics(run_id, {"loss": 1.0}, step=1)
            raise ValueError("experiments.bh.loss.margin=nan: allowed: a finite number > 0")
    run = client().get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == (
        "ValueError: experiments.bh.loss.margin=nan: allowed: a finite number > 0"
    )
    assert "latest" not in run.data.tags


def test_ctrl_c_marks_killed(store):
    with pytest.raises(KeyboardInterrupt):
        with tracking.training_run("bh", SECTION, dataset="digits") as run_id:
            raise KeyboardInterrupt
    run = client().get_run(run_id)
    assert run.info.status == "KILLED" and run.data.tags["error"].startswith("KeyboardInterrupt")


def test_resumed_run_continues_its_own_run(store):
    with pytest.raises(KeyboardInterrupt):  # interrupted after epoch 1
        with tracking.training_run("bh", SECTION, dataset="digits") as run_id:
            tracking.log_metrics(run_id, {"loss": 1.0}, step=1)
            raise KeyboardInterrupt
    with tracking.training_run("bh", SECTION, dataset="digits", resume_run_id=run_id) as again:
        assert again == run_id
        assert tracking.run_status(run_id) == "RUNNING"
        tracking.log_metrics(run_id, {"loss": 0.5}, step=2)
    cl = client()
    run = cl.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["resumes"] == "1"
    assert "error" not in run.data.tags and run.data.tags["previous_error"] == "KeyboardInterrupt:"
    assert [m.step for m in cl.get_metric_history(run_id, "loss")] == [1, 2]
    assert len(cl.search_runs([run.info.experiment_id])) == 1

    # a run id the store does not know (deleted run, other store): a new run starts
    cl.delete_run(run_id)
    with tracking.training_run("bh", SECTION, dataset="digits", resume_run_id=run_id) as fresh:
        assert fresh != run_id


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_sigkilled_run_is_marked_killed_when_the_key_trains_again(store):
    res = _python(
        f"""
        import os, signal
        from simlearn import tracking
        for key in ("bh", "bh", "other_key"):
            print(tracking.start_run(key, {SECTION!r}, dataset="digits"), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """,
        store,
    )
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    dead, elsewhere, other_key = res.stdout.split()[-3:]
    cl = client()
    assert {cl.get_run(r).info.status for r in (dead, elsewhere, other_key)} == {"RUNNING"}
    cl.set_tag(elsewhere, tracking.TAG_HOST, "another-machine")  # cannot tell: left alone
    live = tracking.start_run("bh", SECTION, dataset="digits")  # this process: alive

    new = tracking.start_run("bh", {**SECTION, "seed": 3}, dataset="digits")  # other params
    run = cl.get_run(dead)
    assert run.info.status == "KILLED"
    pid = run.data.tags[tracking.TAG_PID]
    assert run.data.tags["error"].startswith(f"process {pid} on {socket.gethostname()} ended")
    assert new in run.data.tags["error"] or live in run.data.tags["error"]
    for untouched in (elsewhere, other_key, live, new):  # other host, other key, alive
        assert cl.get_run(untouched).info.status == "RUNNING"


def test_reused_pid_counts_as_gone():
    from simlearn.tracking import runs

    tags = runs._process_tags()  # this very process: alive
    assert not runs._process_gone(tags)
    if runs.TAG_PID_START in tags:  # Linux: same PID, other start time = another process
        assert runs._process_gone({**tags, runs.TAG_PID_START: "1"})


@pytest.mark.slow
def test_sigterm_marks_killed(store):
    res = _python(
        """
        import os, signal
        from simlearn import tracking
        with tracking.training_run("bh", {"task": "metric"}, dataset="digits") as run_id:
            print(run_id, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
        """,
        store,
    )
    assert res.returncode == 143, res.stderr[-2000:]
    run = client().get_run(res.stdout.split()[-1])
    assert run.info.status == "KILLED"
    assert run.data.tags["error"] == "Terminated: terminated by SIGTERM"


# ----------------------------------------------------------------------------- models


def _net(seed: int) -> torch.nn.Module:
    from simlearn.models import build_model

    torch.manual_seed(seed)
    spec = {
        "name": "convnet",
        "in_channels": 1,
        "embedding_dim": 8,
        "width": 4,
        "normalize": True,
        "input_mean": [0.3],
        "input_std": [0.4],
    }
    return build_model(spec).eval()


def test_registry_round_trip_without_pickle(store, monkeypatch):
    """models:/<key>/latest is the newest training's network, in a pickle-free format, and
    embeds like the stage's ``embed_images``."""
    from simlearn.models import embed_images, to_input

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 8, 8, 1), dtype=np.uint8)  # (N, H, W, C), N != 2
    nets = {}
    for seed in (1, 2):
        with tracking.training_run("bh", {**SECTION, "seed": seed}, dataset="digits") as run_id:
            nets[seed] = _net(seed)
            tracking.log_torch_model(run_id, nets[seed], to_input(images[:1]).numpy())
        assert client().get_run(run_id).data.tags["model_format"] == "pt2"

    cl = client()
    versions = {int(v.version): v.run_id for v in cl.search_model_versions("name = 'bh'")}
    assert len(versions) == 2 and versions[2] == run_id  # one version per training
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # refuse any pickle
    tracking.configure()
    import mlflow.pytorch

    loaded = mlflow.pytorch.load_model("models:/bh/latest")
    with torch.no_grad():
        got = loaded(to_input(images)).numpy()
    np.testing.assert_allclose(got, embed_images(nets[2], images), rtol=1e-5, atol=1e-6)
    first = mlflow.pytorch.load_model("models:/bh/1")
    with torch.no_grad():
        np.testing.assert_allclose(
            first(to_input(images)).numpy(), embed_images(nets[1], images), rtol=1e-5, atol=1e-6
        )
    assert not np.allclose(got, embed_images(nets[1], images))
    assert "bh" in cl.get_registered_model("bh").description


class _DataDependent(torch.nn.Module):
    """torch.export cannot trace a branch on tensor values; ``scale`` is a fitted tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C*H*W)
        if x.sum() > 0:
            return x.flatten(1) * self.scale
        return x.flatten(1)


class _Weightless(torch.nn.Module):
    """A classical method: settings, no learned tensor, and a step torch.export cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.method, self.block_size, self.options = "sgbm", 3, {"mode": "3way"}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(x.numpy().reshape(len(x), -1).copy())  # leaves the graph


def test_weightless_untraceable_model_is_logged_as_its_settings_and_not_registered(store):
    x = np.ones((2, 1, 2, 2), dtype=np.float32)
    with tracking.training_run("sgbm", SECTION, dataset="digits") as run_id:
        assert tracking.log_torch_model(run_id, _Weightless(), x) is None
    cl = client()
    assert cl.get_run(run_id).data.tags["model_format"] == "json"
    path = cl.download_artifacts(run_id, "model/settings.json")
    saved = json.loads(Path(path).read_text())
    assert saved == {
        "class": f"{__name__}._Weightless",
        "settings": {"method": "sgbm", "block_size": 3, "options": {"mode": "3way"}},
    }
    assert [m.name for m in cl.search_registered_models()] == []  # nothing needs a pickle


def test_untraceable_model_falls_back_to_pickle_and_says_so(store):
    x = np.ones((2, 1, 2, 2), dtype=np.float32)
    with tracking.training_run("dd", SECTION, dataset="digits") as run_id:
        with pytest.warns(UserWarning, match="torch.export failed.*pickle"):
            tracking.log_torch_model(run_id, _DataDependent(), x, register=False)
    assert client().get_run(run_id).data.tags["model_format"] == "pickle"
    import mlflow.pytorch

    loaded = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    np.testing.assert_array_equal(loaded(torch.from_numpy(x)).numpy(), np.full((2, 4), 2.0))


# ----------------------------------------------------------------------------- store faults


def refused_within(uri: str, monkeypatch, limit: float, *needles: str) -> tuple[str, float]:
    """start_run against ``uri`` raises TrackingStoreError naming it, the needles and the fix,
    within ``limit`` seconds: (message, seconds)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    t0 = time.perf_counter()
    with pytest.raises(tracking.TrackingStoreError) as e:
        tracking.start_run("bh", SECTION, dataset="digits")
    seconds = time.perf_counter() - t0
    msg = str(e.value)
    assert msg.startswith(f"MLflow tracking store {uri}: "), msg
    assert "Fix: " in msg and "MLFLOW_TRACKING_URI" in msg, msg
    for needle in needles:
        assert needle in msg, msg
    assert seconds < limit, seconds
    return msg, seconds


def _fails_fast(uri: str, monkeypatch, *needles: str) -> float:
    """:func:`refused_within` 15 s (the issue's bound for a stage); seconds."""
    return refused_within(uri, monkeypatch, 15.0, *needles)[1]


def test_store_fault_not_a_database(store, monkeypatch):
    db = store / "broken.db"
    db.write_bytes(b"this is not an SQLite file" * 100)
    _fails_fast(f"sqlite:///{db}", monkeypatch, "not a usable SQLite database", "move")


def test_store_fault_folder_cannot_be_created(store, monkeypatch):
    (store / "afile").write_text("x")
    _fails_fast(f"sqlite:///{store}/afile/mlflow.db", monkeypatch, "cannot create its folder")


def test_store_fault_unwritable(store, monkeypatch):
    # /proc refuses new files even to root (a chmod would not stop root)
    _fails_fast("sqlite:////proc/self/mlflow.db", monkeypatch, "not writable")


def test_store_fault_locked_database(store, monkeypatch):
    db = store / "locked.db"
    holder = sqlite3.connect(db)
    holder.execute("CREATE TABLE t (x)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, or a crashed one's lock
    try:
        t0 = time.perf_counter()
        with pytest.raises(tracking.TrackingStoreError, match="locked by another process"):
            tracking.check_store(f"sqlite:///{db}", timeout=1.0)
        assert 0.9 < time.perf_counter() - t0 < 5
    finally:
        holder.rollback()
        holder.close()
    tracking.check_store(f"sqlite:///{db}", timeout=1.0)  # free again: accepted


def test_store_fault_server_refuses(store, monkeypatch):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    seconds = _fails_fast(f"http://127.0.0.1:{port}", monkeypatch, "no answer", "mlflow server")
    assert seconds < 2


def test_store_fault_server_never_answers(store, monkeypatch):
    with socket.socket() as s:  # accepts connections (kernel backlog), never replies
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        seconds = _fails_fast(f"http://127.0.0.1:{s.getsockname()[1]}", monkeypatch, "within 5 s")
    assert 4.5 < seconds < 10


def test_healthy_server_passes_the_check(monkeypatch):
    import http.server
    import threading

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            code = 200 if self.path == "/health" or "/experiments/search" in self.path else 404
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracking.check_store(f"http://127.0.0.1:{server.server_port}")
        Health.do_GET = lambda self: self.send_error(503, "down")
        with pytest.raises(tracking.TrackingStoreError, match="HTTP 503"):
            tracking.check_store(f"http://127.0.0.1:{server.server_port}/")
    finally:
        server.shutdown()
        server.server_close()
