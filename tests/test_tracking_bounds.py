"""Every call to an HTTP tracking store is bounded: a server that answers 500 or 503, or never
answers, fails the stage within 15 s, with a message that names the URI and the likely cause.

The servers are fakes on loopback: ``/health`` answers 200 (the web process is alive) while the
API answers as a server whose database is down does.
"""

from __future__ import annotations

import http.server
import os
import threading
import time
from collections.abc import Iterator

import mlflow
import pytest

from simlearn import tracking
from simlearn.tracking import store as tracking_store
from simlearn.tracking.store import HTTP_BOUNDS, get_client

SECTION = {"task": "metric", "dataset": "digits"}


class _Fake(http.server.BaseHTTPRequestHandler):
    mode = "ok"  # ok | 500 | 503 | hang
    release = threading.Event()
    api_calls = 0

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/health":
            self._answer(200, b"OK")
            return
        type(self).api_calls += 1
        if self.mode == "hang":
            self.release.wait(60)  # holds the connection open, says nothing
            return
        if self.mode in ("500", "503"):
            self._answer(int(self.mode), b'{"error_code": "INTERNAL_ERROR"}')
            return
        self._answer(200, b'{"experiments": []}')

    do_POST = do_GET  # noqa: N815

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path, monkeypatch) -> Iterator[tuple[str, type[_Fake]]]:
    handler = type("Fake", (_Fake,), {"release": threading.Event(), "api_calls": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{httpd.server_port}"
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    for name in HTTP_BOUNDS:  # absent, as for a user who set none; restored afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    try:
        yield uri, handler
    finally:
        handler.release.set()
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize(
    ("mode", "needles"),
    [
        ("503", ("answered HTTP 503", "/health answers) but fails its API", "backend store")),
        ("500", ("answered HTTP 500", "/health answers) but fails its API", "backend store")),
        ("hang", ("within 5 s", "its API does not answer", "likely hangs")),
    ],
)
def test_a_server_whose_api_fails_is_refused_by_the_store_check(server, mode, needles):
    uri, handler = server
    handler.mode = mode
    t0 = time.perf_counter()
    with pytest.raises(tracking.TrackingStoreError) as e:
        tracking.start_run("bh", SECTION, dataset="digits")
    seconds = time.perf_counter() - t0
    message = str(e.value)
    said = "no answer from" if mode == "hang" else "GET"
    assert message.startswith(f"MLflow tracking store {uri}: {said} {uri}/api/2.0/mlflow/")
    assert all(n in message for n in needles), message
    assert handler.api_calls == 1  # the check does not retry
    assert seconds < (6 if mode == "hang" else 2)


@pytest.mark.parametrize("mode", ["503", "hang"])
def test_a_server_that_fails_after_the_check_fails_each_call_within_15_s(server, mode):
    uri, handler = server
    client = get_client()  # the check passes: the API answers
    assert all(os.environ[k] == v for k, v in HTTP_BOUNDS.items())
    handler.mode = mode
    t0 = time.perf_counter()
    with pytest.raises(mlflow.exceptions.MlflowException) as e:
        client.get_experiment_by_name("digits")
    seconds = time.perf_counter() - t0
    assert seconds < 15
    # the stage's one message names the server, whatever MLflow's own words (3.17 named the
    # host, 3.18 says only INTERNAL_ERROR of a 503)
    said = str(tracking_store.as_store_error(e.value))
    assert said.startswith(f"MLflow tracking store {uri} failed in the middle of the stage: "), said
    assert "the server stopped answering" in said
    assert handler.api_calls == 1 + 2  # the check's call, then one try and one retry


def test_the_user_s_own_settings_are_kept(server, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "300")
    tracking.configure()
    assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "300"
