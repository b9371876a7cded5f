import mlflow
import pytest

from simlearn import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    return tmp_path


def test_uri_rule(store, monkeypatch):
    sub = store / "stages"
    sub.mkdir()
    assert tracking.tracking_uri(sub) == f"sqlite:///{store.resolve()}/mlflow.db"
    queued = store / ".dvc" / "tmp" / "exps" / "tmpabc"
    queued.mkdir(parents=True)
    (queued / "dvc.yaml").write_text("")
    assert tracking.repo_root(queued) == store.resolve()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    assert tracking.tracking_uri(sub) == "http://127.0.0.1:1"


def test_log_reopen_and_read_back(store):
    section = {"task": "metric", "train": {"lr": 0.01, "epochs": 3}, "holdout_classes": [7, 8]}
    run_id = tracking.start_run("exp_a", section, dataset="digits")
    tracking.log_metrics(run_id, {"loss": 0.5}, step=1)
    tracking.log_metrics(run_id, {"loss": 0.25}, step=2)
    with tracking.open_run(run_id) as run:  # reopened by id, as embed/evaluate do
        assert run.info.run_id == run_id
    tracking.log_metrics(run_id, {"map": 0.9})
    tracking.write_run_file(store / "run.json", run_id, "exp_a")
    assert tracking.read_run_file(store / "run.json") == run_id

    client = mlflow.MlflowClient(tracking.tracking_uri())
    run = client.get_run(run_id)
    assert run.data.params == {
        "task": "metric",
        "train.lr": "0.01",
        "train.epochs": "3",
        "holdout_classes": "[7, 8]",
    }
    assert run.data.metrics["map"] == 0.9
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == [0.5, 0.25]
    tags = run.data.tags
    assert tags["dataset"] == "digits" and tags["dvc_exp_name"] == "exp-test"
    assert tags["params_hash"] == tracking.params_hash(section)
    assert {"git_commit", "git_dirty"} <= set(tags)
    assert client.get_experiment(run.info.experiment_id).name == "exp_a"
    assert (store / "mlflow.db").exists()


def test_params_hash_is_order_independent():
    assert tracking.params_hash({"a": 1, "b": 2}) == tracking.params_hash({"b": 2, "a": 1})
    assert tracking.params_hash({"a": 1}) != tracking.params_hash({"a": 2})
