"""The MLflow UI as a user sees it, in a real browser (Debian's chromium, driven by Playwright).

A short real pipeline (download, train, embed, evaluate of three runs on digits: a fitted
baseline, a 1-epoch network, and the same key rerun with an edited loss) fills a store in a
temporary folder; ``mlflow ui`` serves it on a free loopback port; headless chromium opens the
digits experiment at the README's link and must land on the runs table with every run, and a
figure artifact must load and render. Screenshots go to the test's temporary folder.

Skipped, with the reason, only where no chromium can be found (``.ci/run`` installs it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.projects import DIGITS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EVAL = {"embedding_map": "pca"}  # t-SNE would double the pipeline's time for nothing tested here
PARAMS = {
    "datasets": {"digits": DIGITS},
    "experiments": {
        "raw": {
            "task": "metric",
            "dataset": "digits",
            "model": {"name": "raw", "normalize": False},
            "eval": EVAL,
        },
        "bh": {
            "task": "metric",
            "dataset": "digits",
            "model": {"name": "convnet", "embedding_dim": 16, "width": 8},
            "loss": {"name": "batch_hard", "margin": 0.2},
            "train": {"epochs": 1},
            "eval": EVAL,
        },
    },
}


def _stage(name: str):
    spec = importlib.util.spec_from_file_location(f"_stage_{name}", ROOT / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_experiment(key: str) -> None:
    """train -> embed -> evaluate of one experiment, with the stages' own argv."""
    _stage("train").main([key, "data/digits", f"models/{key}", f"reports/train/{key}"])
    _stage("embed").main([key, f"models/{key}", "data/digits", f"data/embeddings/{key}.npz"])
    _stage("evaluate").main(
        [key, f"data/embeddings/{key}.npz", "data/digits", f"reports/eval/{key}"]
    )


def _report() -> None:
    """check_params (which names the experiments the report lists), then the report stage,
    which adds each evaluation to its MLflow run; as `dvc repro` runs them."""
    names = ["reports/params_check.json", "--experiments", "reports/experiments.json"]
    assert _stage("check_params").main(names) == 0
    _stage("report").main(["reports/eval", "reports/train", "reports/summary"])


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """A project folder after a short real pipeline: digits, raw, bh, then bh edited and rerun."""
    import torch

    repo = tmp_path_factory.mktemp("project")
    (repo / "dvc.yaml").write_text("stages: {}\n")  # marks the project root for the store rule
    (repo / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(repo)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        torch.set_num_threads(1)
        try:
            assert _stage("download").main(["digits", "data/digits"]) == 0
            for key in ("raw", "bh"):
                _run_experiment(key)
            _report()
            edited = yaml.safe_load((repo / "params.yaml").read_text())
            edited["experiments"]["bh"]["model"]["embedding_dim"] = 24  # the user edits, reruns
            (repo / "params.yaml").write_text(yaml.safe_dump(edited, sort_keys=False))
            _run_experiment("bh")
            _report()
        finally:
            torch.set_num_threads(threads)
    return repo


def _runs(repo: Path):
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{repo}/mlflow.db")
    exp = client.get_experiment_by_name("digits")
    assert exp is not None, [e.name for e in client.search_experiments()]
    return client, exp, client.search_runs([exp.experiment_id], order_by=["start_time ASC"])


def test_one_experiment_per_dataset_with_truthful_runs(store):
    client, exp, runs = _runs(store)
    assert sorted(e.name for e in client.search_experiments()) == ["Default", "digits"]
    assert [r.info.run_name for r in runs] == ["raw", "bh", "bh"]
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    for r in runs:
        assert r.info.status == "FINISHED", (r.info.run_name, r.data.tags.get("error"))
        assert {"map", "train_seconds"} <= set(r.data.metrics)
        assert r.data.tags["params_key"] == r.info.run_name
        assert r.data.tags["mlflow.source.name"].endswith("train.py")
        assert r.data.tags["mlflow.note.content"]
    old_bh, new_bh = runs[1], runs[2]
    assert "latest" not in old_bh.data.tags and new_bh.data.tags["latest"] == "true"
    assert runs[0].data.tags["latest"] == "true"
    assert old_bh.data.params["model.embedding_dim"] == "16"
    assert new_bh.data.params["model.embedding_dim"] == "24"


def test_registered_model_embeds_like_the_stage(store, monkeypatch):
    """models:/bh/latest (the rerun's network, loaded without unpickling) reproduces
    data/embeddings/bh.npz, which the embed stage wrote from models/bh/model.pt."""
    import mlflow
    import mlflow.pytorch
    import pandas as pd
    import torch

    client, _, runs = _runs(store)
    versions = {int(v.version): v.run_id for v in client.search_model_versions("name = 'bh'")}
    assert versions == {1: runs[1].info.run_id, 2: runs[2].info.run_id}
    assert len(client.search_model_versions("name = 'raw'")) == 1

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    mlflow.set_tracking_uri(f"sqlite:///{store}/mlflow.db")
    model = mlflow.pytorch.load_model("models:/bh/latest")
    z = np.load(store / "data/embeddings/bh.npz")
    rows = pd.read_parquet(store / "data/digits/manifest.parquet")["index"].to_numpy()
    images = np.load(store / "data/digits/images.npy")[rows]  # embeddings follow manifest order
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255  # (N, C, H, W) in [0, 1]
    with torch.no_grad():
        got = model(x).numpy()
    assert got.shape == (len(images), 24)  # the rerun's network, not version 1 (16-d)
    np.testing.assert_allclose(got, z["embeddings"], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        assert mlflow.pytorch.load_model("models:/bh/1")(x[:2]).shape == (2, 16)


# ----------------------------------------------------------------------------- the browser


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "no chromium on PATH: install Debian's (`apt-get install -y chromium`; .ci/run does); "
        "the test never downloads a browser"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(store):
    """``mlflow ui`` over the store on a free loopback port; its base URL."""
    port = _free_port()
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    env.pop("MLFLOW_TRACKING_URI", None)
    log = open(store / "mlflow-ui.log", "w")  # closed at teardown
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        f"sqlite:///{store}/mlflow.db",
    ]
    server = subprocess.Popen(
        [*cmd, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=store,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"mlflow ui did not start: {(store / 'mlflow-ui.log').read_text()[-3000:]}"
                )
            time.sleep(1)
        yield base
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


@pytest.fixture
def page(tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile: what a first-time user sees
            executable_path=executable,
            headless=True,
            args=BROWSER_FLAGS,
            viewport={"width": 1600, "height": 900},
        )
        # keep MLflow's assistant panel from covering the table in screenshots
        ctx.add_init_script(
            "try { localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
            " localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true'); }"
            " catch (e) {}"
        )
        ctx.set_default_timeout(90_000)
        try:
            yield ctx.new_page()
        finally:
            ctx.close()


def test_readme_link_opens_the_runs_table_and_a_figure_renders(store, ui, page, tmp_path):
    from playwright.sync_api import expect

    from simlearn import tracking

    expect.set_options(timeout=90_000)  # the first page load compiles a large bundle on 2 cores

    _, exp, runs = _runs(store)
    url = tracking.ui_url(exp.experiment_id, ui)
    assert url == f"{ui}/#/experiments/{exp.experiment_id}?workflowType=machine_learning"
    page.goto(url)
    # the model-training runs table, not the GenAI overview
    expect(page.get_by_role("columnheader", name="Run Name").first).to_be_visible()
    assert "/runs?" in page.url and "workflowType=machine_learning" in page.url, page.url
    for r in runs:  # each run's row: its name, linking to that run
        name_link = page.get_by_role("link", name=r.info.run_name, exact=True)
        expect(name_link.and_(page.locator(f"a[href*='/runs/{r.info.run_id}']"))).to_be_visible()
    expect(page.get_by_text("3 matching runs")).to_be_visible()
    page.screenshot(path=str(tmp_path / "runs_table.png"))

    # the README's "chart map across runs": chart view, filtered to map
    page.locator("label:has(input[value=CHART])").click()
    page.get_by_placeholder("Search metric charts").fill("map")
    expect(page.get_by_text("map", exact=True).first).to_be_visible()
    page.screenshot(path=str(tmp_path / "map_chart.png"))

    run = runs[-1]
    base = f"{ui}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}"
    with page.expect_response(
        lambda r: "/get-artifact" in r.url and "figures%2Fpr.png" in r.url
    ) as response:
        page.goto(f"{base}/artifacts/figures/pr.png?workflowType=machine_learning")
    r = response.value
    assert r.status == 200 and r.headers["content-type"] == "image/png"
    body = page.request.get(r.url).body()  # the page's own request: its body is not kept
    assert body[:8] == b"\x89PNG\r\n\x1a\n" and len(body) > 10_000
    assert body == (store / "reports/eval/bh/figures/pr.png").read_bytes()
    image = page.locator("img[src^='blob:']").first
    expect(image).to_be_visible()
    size = image.evaluate("i => [i.complete, i.naturalWidth, i.naturalHeight]")
    assert size[0] and size[1] > 100 and size[2] > 100, size  # decoded and drawn, not broken
    page.screenshot(path=str(tmp_path / "run_figure.png"))
    assert (tmp_path / "runs_table.png").stat().st_size > 10_000
