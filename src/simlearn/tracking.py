"""Every MLflow call of the project lives here.

Rules (see DESIGN.md):

- Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<absolute repo root>/mlflow.db``,
  so ``dvc repro``, ``dvc exp run`` (queued runs execute in temporary copies of the repo) and the
  tests all land in one store. Artifacts of that local store go to ``<repo root>/mlartifacts``.
- MLflow experiment = the params experiment key; MLflow run = one training of it. ``train``
  starts the run and writes its id to ``models/<exp>/run.json``; ``embed`` and ``evaluate``
  reopen it by id and add to it.
- No network: telemetry is switched off before MLflow is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import mlflow  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from simlearn.config import flatten  # noqa: E402

_QUEUE_DIR = "/.dvc/tmp/exps/"


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
    uri = tracking_uri(root)
    mlflow.set_tracking_uri(uri)
    return uri


def _client() -> MlflowClient:
    uri = configure()
    if _CLIENTS.get(uri) is None:  # opening a store (a database, a server) is not free
        _CLIENTS[uri] = MlflowClient(tracking_uri=uri)
    return _CLIENTS[uri]


_CLIENTS: dict[str, MlflowClient] = {}


def _experiment_id(name: str, root: Path) -> str:
    client = _client()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    artifact_location = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        artifact_location = (root / "mlartifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=artifact_location)


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


def start_run(
    experiment: str,
    params: Mapping[str, Any],
    *,
    dataset: str,
    root: str | Path | None = None,
    extra_tags: Mapping[str, str] | None = None,
) -> str:
    """Create a run in MLflow experiment ``experiment`` with flattened params and tags; its id."""
    root = repo_root(root)
    tags = {
        **git_state(root),
        "dataset": dataset,
        "params_hash": params_hash(params),
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        **(extra_tags or {}),
    }
    client = _client()
    run = client.create_run(_experiment_id(experiment, root), tags=tags, run_name=experiment)
    flat = {k: _param_value(v) for k, v in flatten(params).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):  # MLflow's batch limit
        client.log_batch(
            run.info.run_id,
            params=[mlflow.entities.Param(k, v) for k, v in items[i : i + 100]],
        )
    return run.info.run_id


def _param_value(v: Any) -> str:
    if isinstance(v, list | tuple):
        return json.dumps(list(v))
    return str(v)


@contextmanager
def open_run(run_id: str, root: str | Path | None = None) -> Iterator[mlflow.ActiveRun]:
    """Reopen a run by id as the active run (for ``mlflow.log_*`` helpers); it ends on exit."""
    configure(root)
    with mlflow.start_run(run_id=run_id) as run:
        yield run


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


def log_dataset(run_id: str, manifest: Any, *, name: str, source: str, context: str) -> None:
    """Log the dataset (its manifest as a pandas dataset) as an input of the run."""
    import warnings

    import mlflow.data

    with warnings.catch_warnings():
        # a local path is a valid source of two equivalent kinds; integer columns are fine
        warnings.simplefilter("ignore", UserWarning)
        ds = mlflow.data.from_pandas(manifest, source=source, name=name)
    with open_run(run_id):
        mlflow.log_input(ds, context=context)


def log_torch_model(run_id: str, model: Any, input_example: Any, name: str = "model") -> None:
    """Log a torch module as an MLflow model with a signature inferred from ``input_example``.

    ``mlflow.pytorch.load_model(f"runs:/{run_id}/{name}")`` loads it back (it needs ``simlearn``
    importable: the model is pickled). Pickle rather than MLflow 3's default ``pt2`` export: the
    export fixes the batch size of the input example and costs ~3 s per model. Requirements are
    given explicitly so MLflow does not import-scan the environment.
    """
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    model = model.cpu().eval()
    with torch.no_grad():
        output = model(torch.as_tensor(input_example)).numpy()
    signature = infer_signature(np.asarray(input_example), output)
    with open_run(run_id):
        mlflow.pytorch.log_model(
            model,
            name=name,
            signature=signature,
            input_example=np.asarray(input_example),
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "simlearn"],
            serialization_format="pickle",
        )


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
    import time

    return int(time.time() * 1000)
