"""End to end: `dvc repro` of a reduced params.yaml in a fresh git repo, then MLflow read-back."""

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.projects import BIN, DIGITS, copy_project, git_commit, run, user_env
from tests.test_plots_offline import _check_every_plot_drawn, _dvc, _open_offline, _plot_files

ROOT = Path(__file__).resolve().parents[1]
#: stages DVC reruns on every repro (dvc.yaml ``always_changed``), whose output stays the same
ALWAYS_RUN = {"check_params"}

PARAMS = {
    "datasets": {
        "digits": DIGITS,
        "motorcycle": {"source": "motorcycle"},
    },
    "experiments": {
        "raw": {
            "task": "metric",
            "dataset": "digits",
            "model": {"name": "raw", "normalize": False},
        },
        "bh": {
            "task": "metric",
            "dataset": "digits",
            "model": {"name": "convnet", "embedding_dim": 16, "width": 8},
            "loss": {"name": "batch_hard"},
            "train": {"epochs": 2},
        },
        "triplet": {  # the distances stage tabulates triplet and raw
            "task": "metric",
            "dataset": "digits",
            "model": {"name": "convnet", "embedding_dim": 16, "width": 8},
            "loss": {"name": "triplet"},
            "sampler": {"mining": "semihard"},
            "train": {"epochs": 1},
        },
        "bh_unseen": {
            "task": "metric",
            "dataset": "digits",
            "holdout_classes": [8, 9],
            "model": {"name": "convnet", "embedding_dim": 16, "width": 8},
            "loss": {"name": "supcon"},
            "sampler": {"classes_per_batch": 8},
            "train": {"epochs": 1},
        },
        "ssl": {
            "task": "simclr",
            "dataset": "digits",
            "model": {"name": "convnet", "embedding_dim": 16, "width": 8, "projection_dim": 8},
            "loss": {"name": "ntxent"},
            "sampler": {"name": "random", "batch_size": 128},
            "train": {"epochs": 1},
        },
    },
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    repo = copy_project(tmp_path_factory.mktemp("repo"), PARAMS)
    env = user_env(repo)
    git_commit(repo, env, "init", init=True)
    bindir = str(BIN)
    # every Python process of the run prints what it imports (to stderr, merged in order with
    # DVC's "Running stage" lines): the code-digest test reads it
    res = subprocess.run(
        [bindir + "/dvc", "repro"],
        cwd=repo,
        env={**env, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, f"dvc repro failed:\n{res.stdout[-6000:]}"
    return repo, env, bindir, res.stdout


@pytest.mark.slow
def test_repro_writes_every_contract_output(repo):
    repo, env, bindir, _ = repo
    for ds in ("digits", "motorcycle"):
        assert (repo / "data" / ds / "manifest.parquet").exists()
        assert json.loads((repo / f"reports/validation/{ds}.json").read_text())["success"]
        assert (repo / f"reports/validation/{ds}.html").exists()
    for exp in PARAMS["experiments"]:
        assert (repo / f"models/{exp}/model.pt").exists()
        z = np.load(repo / f"data/embeddings/{exp}.npz")
        assert z["embeddings"].dtype == np.float32 and len(z["labels"]) == 1797
        m = json.loads((repo / f"reports/eval/{exp}/metrics.json").read_text())
        assert {
            "map",
            "map_at_r",
            "r_precision",
            "precision_at_1",
            "aupr",
            "roc_auc",
            "knn_accuracy",
            "ncm_accuracy",
            "linear_probe_accuracy",
        } <= set(m)
        assert 0 < m["map"] <= 1 and m["map"] == m["aupr"]
        for fig in ("pr", "roc", "distances", "embedding_map", "retrieval_grid"):
            assert (repo / f"reports/eval/{exp}/figures/{fig}.png").stat().st_size > 5000
    # simclr saves the encoder alone: 16-d embeddings, not the projection head's 8
    assert np.load(repo / "data/embeddings/ssl.npz")["embeddings"].shape == (1797, 16)
    m = json.loads((repo / "reports/eval/bh_unseen/metrics.json").read_text())
    assert {"seen_map", "unseen_map"} <= set(m)
    summary = (repo / "reports/summary.md").read_text()
    assert all(f"| {exp} |" in summary for exp in PARAMS["experiments"])


def _imported_per_stage(out: str) -> dict[str, set[str]]:
    """stage -> the simlearn modules its process imported, from ``-X importtime`` lines."""
    found: dict[str, set[str]] = {}
    stage = None
    for line in out.splitlines():
        m = re.match(r"Running stage '([^']+)'", line)
        if m:
            stage = m.group(1)
            found[stage] = set()
            continue
        m = re.match(r"import time:.*\|\s*(simlearn(\.\w+)*)\s*$", line)
        if m and stage is not None:
            found[stage].add(m.group(1))
    return found


def _module_file(repo: Path, module: str) -> str:
    path = Path("src", *module.split("."))
    return (path / "__init__.py" if (repo / path).is_dir() else path.with_suffix(".py")).as_posix()


@pytest.mark.slow
def test_each_stage_s_code_digest_covers_every_module_it_imported(repo):
    # the per-experiment stages see shared code only through reports/code/<kind>.json: a module
    # they import but the digest misses would be a change that reruns nothing
    repo, env, bindir, out = repo
    imported = _imported_per_stage(out)
    checked = 0
    for stage, modules in imported.items():
        kind, _, exp = stage.partition("@")
        if kind not in ("train", "embed", "evaluate"):
            continue
        assert modules, f"{stage}: no import lines read"
        covered = set(json.loads((repo / f"reports/code/{kind}.json").read_text()))
        covered.add(f"src/simlearn/tasks/{PARAMS['experiments'][exp]['task']}.py")
        # simlearn.warm decides which process runs the stage, not what it computes (see
        # tests/test_code_digest.py's LAUNCHERS)
        missing = {_module_file(repo, m) for m in modules} - covered - {"src/simlearn/warm.py"}
        assert not missing, f"{stage} imports {sorted(missing)}, not in reports/code/{kind}.json"
        checked += 1
    assert checked == 3 * len(PARAMS["experiments"])


@pytest.mark.slow
def test_second_repro_does_nothing_and_an_edit_reruns_only_its_experiment(repo):
    repo, env, bindir, _ = repo
    out = run([bindir + "/dvc", "repro"], repo, env)
    # check_params (which also writes the stat fingerprint of image_folder / manifest files) runs
    # on every repro by design (always_changed) and rewrites nothing here; no other stage may run
    assert re.findall(r"Running stage '([^']+)'", out) == ["check_params"], out
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["experiments"]["bh"]["train"]["epochs"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = run([bindir + "/dvc", "status", "--json"], repo, env)
    changed = set(json.loads(status)) - ALWAYS_RUN
    # embed@, evaluate@ and the report read the params as trained (models/bh/experiment.json):
    # they are stale once train@bh has rewritten that file, and then rerun
    assert changed == {"train@bh"}, changed
    try:
        out = run([bindir + "/dvc", "repro"], repo, env)
        ran = re.findall(r"Running stage '([^']+)'", out)
        assert ran == ["check_params", "train@bh", "embed@bh", "evaluate@bh", "report"], out
        trained = json.loads((repo / "models/bh/experiment.json").read_text())
        assert trained["params"]["train"]["epochs"] == 3
    finally:  # back to the lock the other tests expect
        params["experiments"]["bh"]["train"]["epochs"] = 2
        (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        run([bindir + "/dvc", "repro"], repo, env)


@pytest.mark.slow
def test_a_new_task_module_or_another_task_s_edit_leaves_experiments_up_to_date(repo):
    repo, env, bindir, _ = repo
    tasks_dir = repo / "src/simlearn/tasks"
    new = tasks_dir / "newtask.py"
    simclr = tasks_dir / "simclr.py"
    original = simclr.read_text()
    try:
        new.write_text('"""A task being written."""\n')
        status = json.loads(run([bindir + "/dvc", "status", "--json"], repo, env))
        # no experiment's stage changes; the report reads every task module, so it reruns (3 s)
        assert set(status) - ALWAYS_RUN == {"report"}, status
        simclr.write_text(original + "\n# an edit of the simclr task\n")
        status = json.loads(run([bindir + "/dvc", "status", "--json"], repo, env))
        assert set(status) - ALWAYS_RUN == {
            "train@ssl",
            "embed@ssl",
            "evaluate@ssl",
            "report",
        }, status
        changed = status["train@ssl"][0]["changed deps"]
        assert changed == {"src/simlearn/tasks/simclr.py": "modified"}, changed
    finally:
        new.unlink(missing_ok=True)
        simclr.write_text(original)
    status = json.loads(run([bindir + "/dvc", "status", "--json"], repo, env))
    assert set(status) <= ALWAYS_RUN, status


@pytest.mark.slow
def test_mlflow_run_holds_everything_and_the_model_loads(repo):
    repo, env, bindir, _ = repo
    import mlflow
    import mlflow.pytorch
    import torch

    uri = f"sqlite:///{repo}/mlflow.db"
    client = mlflow.MlflowClient(uri)
    run_id = json.loads((repo / "models/bh/run.json").read_text())["run_id"]
    r = client.get_run(run_id)
    assert r.data.params["loss.name"] == "batch_hard" and r.data.params["train.epochs"] == "2"
    assert r.data.tags["dataset"] == "digits" and len(r.data.tags["git_commit"]) == 40
    assert {"map", "map_at_r", "roc_auc", "train_seconds", "loss", "val_map"} <= set(r.data.metrics)
    assert len(client.get_metric_history(run_id, "loss")) == 2  # one point per epoch
    arts = {a.path for a in client.list_artifacts(run_id, "figures")}
    assert "figures/retrieval_grid.png" in arts
    assert r.inputs.dataset_inputs and r.inputs.dataset_inputs[0].dataset.name == "digits"
    mlflow.set_tracking_uri(uri)
    model = mlflow.pytorch.load_model(f"runs:/{run_id}/model")
    z = np.load(repo / "data/embeddings/bh.npz")
    rows = pd.read_parquet(repo / "data/digits/manifest.parquet")["index"].to_numpy()[:5]
    images = np.load(repo / "data/digits/images.npy")[rows]  # embeddings follow manifest order
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        np.testing.assert_allclose(model(x).numpy(), z["embeddings"][:5], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- plots offline
# `dvc plots show` / `diff` of this run in a real browser with the network blocked
# (tests/test_plots_offline.py holds the checks and the tests on the committed reports/)


@pytest.fixture(scope="module")
def committed_repo(repo):
    """The repo after the run, its outputs committed (``dvc plots diff HEAD`` needs a HEAD)."""
    repo, env, _, out = repo
    assert "Running stage 'plots_template'" in out
    for cmd in (["git", "add", "-A"], ["git", "commit", "-qm", "repro"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True)
    return repo, env


@pytest.mark.slow
def test_plots_show_renders_every_curve_with_the_network_blocked(committed_repo, tmp_path):
    repo, env = committed_repo
    _dvc(repo, env, "plots", "show")
    html = repo / "dvc_plots/index.html"
    assert "cdn.jsdelivr" not in html.read_text(encoding="utf8")
    found, blocked, errors = _open_offline(html, shot=tmp_path / "dvc_plots_offline.png")
    assert not blocked and not errors, (blocked, errors)
    _check_every_plot_drawn(repo, found)
    kinds = {Path(p).name for p in _plot_files(repo).values()}
    assert {"pr.csv", "roc.csv", "history.csv", "training_curves.png"} <= kinds
    assert (tmp_path / "dvc_plots_offline.png").stat().st_size > 20_000


@pytest.mark.slow
def test_plots_diff_renders_both_revisions_with_the_network_blocked(committed_repo):
    repo, env = committed_repo
    curve = repo / "reports/curves/triplet/pr.csv"
    original = curve.read_text()
    try:
        df = pd.read_csv(curve)
        df["y"] = df["y"] * 0.5  # the workspace's curve, against HEAD's
        df.to_csv(curve, index=False)
        _dvc(repo, env, "plots", "diff", "HEAD", "-o", "diff_plots")
        found, blocked, errors = _open_offline(repo / "diff_plots/index.html")
    finally:
        curve.write_text(original)
    assert not blocked and not errors, (blocked, errors)
    _check_every_plot_drawn(repo, found)
    page = (repo / "diff_plots/index.html").read_text(encoding="utf8")
    assert '"rev": "HEAD"' in page and '"rev": "workspace"' in page


@pytest.mark.slow
def test_dvc_s_default_page_is_blank_offline_so_the_check_can_fail(committed_repo):
    repo, env = committed_repo
    config = repo / ".dvc/config"  # without plots.html_template: DVC's own page
    saved = config.read_text()
    try:
        config.write_text("[core]\n    analytics = false\n")
        _dvc(repo, env, "plots", "show", "-o", "cdn_plots")
    finally:
        config.write_text(saved)
    html = repo / "cdn_plots/index.html"
    assert "https://cdn.jsdelivr.net/npm/vega@5" in html.read_text(encoding="utf8")
    found, blocked, errors = _open_offline(html)
    assert any("cdn.jsdelivr.net" in u for u in blocked), blocked
    assert any("vegaEmbed" in e for e in errors), errors
    vega = [f for f in found if not f["images"]]
    assert vega and not any(f["canvas"] for f in vega)
