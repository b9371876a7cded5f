"""What the ``report`` stage adds to a finished training run: its evaluation and its model.

- Evaluations (:func:`publish_evaluation`): the metrics, figures and curves that ``evaluate``
  wrote, logged once per change of those files.
- Models are logged in MLflow's ``pt2`` format (``torch.export``): loading one runs no pickled
  code (MLflow checks the archive is pickle-free when ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION`` is
  false) and needs no ``simlearn`` import. Each is registered in the Model Registry under its
  params key, so ``mlflow.pytorch.load_model("models:/<key>/latest")`` loads the newest one.
  The ``report`` stage logs them (:func:`publish_model`), not ``train``: one process pays for
  importing ``torch.export`` once per ``dvc repro``.

Adding to a run never changes its state (:mod:`simlearn.tracking.runs`).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from simlearn.tracking.runs import TAG_KEY, log_artifact, log_artifacts, log_metrics
from simlearn.tracking.store import get_client

#: pt2 (no pickle) | json (a weightless baseline: its settings) | pickle (see log_torch_model)
TAG_MODEL_FORMAT = "model_format"
TAG_EVAL_DIGEST = "simlearn.eval_digest"  # what publish_evaluation last logged to the run


def evaluation_files(eval_dir: str | Path, curve_dir: str | Path | None = None) -> list[Path]:
    """The files of one experiment's evaluation: metrics.json, its figures, its curves; sorted."""
    folders = [Path(eval_dir)] + ([Path(curve_dir)] if curve_dir is not None else [])
    found = (p for folder in folders if folder.is_dir() for p in folder.rglob("*"))
    return sorted(p for p in found if p.is_file())


def publish_evaluation(
    run_id: str,
    eval_dir: str | Path,
    curve_dir: str | Path | None = None,
    *,
    run: Run | None = None,
) -> bool:
    """Add one experiment's evaluation to its MLflow run, once; True when something was logged.

    Logs the numbers of ``<eval_dir>/metrics.json`` as metrics (null, i.e. NaN, skipped), the
    figures under ``figures/``, ``metrics.json`` under ``eval/`` and the curves (``curve_dir``)
    under ``eval/curves``. The run's tag ``simlearn.eval_digest`` (MD5 of the run id and of
    every file's name and bytes) records what was logged: with the same files the call logs
    nothing, so the report stage can publish every experiment and pay only for what changed.

    Why the report stage logs and ``evaluate`` does not: importing MLflow and opening its store
    costs about 2 s per process, once per ``dvc repro`` instead of once per experiment. ``run``:
    the run as the caller just fetched it, to save a query per experiment.
    """
    eval_dir = Path(eval_dir)
    files = evaluation_files(eval_dir, curve_dir)
    h = hashlib.md5(run_id.encode())
    for f in files:
        h.update(f"{f.parent.name}/{f.name}".encode() + b"\0" + f.read_bytes())
    digest = h.hexdigest()
    client = get_client()
    if (run or client.get_run(run_id)).data.tags.get(TAG_EVAL_DIGEST) == digest:
        return False
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    log_metrics(run_id, metrics)
    if (eval_dir / "figures").is_dir():
        log_artifacts(run_id, eval_dir / "figures", "figures")
    log_artifact(run_id, eval_dir / "metrics.json", "eval")
    if curve_dir is not None and Path(curve_dir).is_dir() and any(Path(curve_dir).iterdir()):
        log_artifacts(run_id, curve_dir, "eval/curves")
    client.set_tag(run_id, TAG_EVAL_DIGEST, digest)
    return True


def publish_model(
    run_id: str, load: Callable[[], tuple[Any, Any]], *, run: Run | None = None
) -> bool:
    """Log and register the run's trained model, once; True when it was logged now.

    ``load()`` gives ``(model, input_example)`` for :func:`log_torch_model`; it is called only
    when the run has no model yet (no ``model_format`` tag), or when the files of the model it
    has are gone from the artifact store (:func:`missing_model_files`: a deleted ``mlartifacts``
    folder). Then the model is logged and registered again, as a new version, and that is said
    once on stderr. So the report stage can call this for every experiment and pay only for new
    trainings and lost files.

    Why the report stage logs models and ``train`` does not: ``torch.export`` imports
    ``torch._dynamo``, 2.6 s per process. Measured on 2 cores, ``train@raw_unseen`` took 9.2 and
    9.0 s with the model logged, 5.5 and 5.1 s without: about 3.8 s per train stage, once per
    ``dvc repro`` instead of once per experiment. ``run``: the run as the caller just fetched
    it, to save the queries for it (the report stage checks 30 runs after every edit).
    """
    client = get_client()
    run = run or client.get_run(run_id)
    fmt = run.data.tags.get(TAG_MODEL_FORMAT)
    if fmt is not None:
        missing = missing_model_files(client, run_id, fmt, experiment_id=run.info.experiment_id)
        if missing is None:
            return False
        print(
            f"{run.data.tags.get(TAG_KEY, run.info.run_name)}: the model of MLflow run {run_id} "
            f"lost its files ({missing}); logged again and registered as a new version",
            file=sys.stderr,
            flush=True,
        )
    model, example = load()
    log_torch_model(run_id, model, example)
    return True


def missing_model_files(
    client: MlflowClient,
    run_id: str,
    fmt: str,
    name: str = "model",
    *,
    experiment_id: str | None = None,
) -> str | None:
    """What is missing of the model ``name`` logged to ``run_id`` in format ``fmt``; None when
    its files are all in the artifact store.

    The files that loading needs: ``<name>/settings.json`` of the run for a weightless model
    (``json``); else the run's newest READY logged model ``name``, its ``MLmodel`` and a file
    under its ``data`` folder (the pt2 archive, or the pickle). A local artifact store is
    asked with a stat per file, others with one listing per folder.
    """
    if fmt == "json":
        names = {a.path for a in client.list_artifacts(run_id, name)}
        wanted = f"{name}/settings.json"
        return None if wanted in names else f"{wanted} of the run"
    exp_id = experiment_id or client.get_run(run_id).info.experiment_id
    logged = [
        m
        for m in client.search_logged_models(
            experiment_ids=[exp_id],
            filter_string=f"name = '{name}' AND source_run_id = '{run_id}'",
            max_results=100,
        )
        if m.source_run_id == run_id and str(m.status) == "READY"
    ]  # newest first
    if not logged:
        return f"no logged model {name!r}"
    model = logged[0]
    location = model.artifact_location
    parsed = urlparse(location)
    if parsed.scheme in ("", "file"):
        folder = Path(url2pathname(parsed.path))
        has_data = (folder / "data").is_dir() and any(
            p.is_file() for p in (folder / "data").rglob("*")
        )
        present = (folder / "MLmodel").is_file() and has_data
    else:
        top = {Path(a.path).name for a in client.list_logged_model_artifacts(model.model_id)}
        present = "MLmodel" in top and bool(
            "data" in top and client.list_logged_model_artifacts(model.model_id, "data")
        )
    return None if present else f"{location} lacks MLmodel or data/"


def log_torch_model(
    run_id: str,
    model: Any,
    input_example: Any,
    name: str = "model",
    *,
    registered_model_name: str | None = None,
    register: bool = True,
) -> Any:
    """Log a torch module as an MLflow model with a signature; register it; the ModelInfo.

    Format: MLflow's ``pt2`` (``torch.export``), whose archive holds no pickle, so loading runs
    no stored code and needs no ``simlearn`` import. The batch dimension stays dynamic (the
    example is repeated to 2 rows when it has 1: torch.export pins size-1 dimensions). Cost, on
    the digits convnet: 3.8 s to log against 0.8 s for a pickle (2 shared CPU cores). A model
    that ``torch.export`` cannot trace and that holds no learned tensor (OpenCV's SGBM, Canny +
    HOG) is logged as its settings, ``<name>/settings.json`` (tag ``model_format = json``), and
    not registered: nothing in the registry needs pickled code. One with learned tensors that
    cannot be traced (data-dependent control flow) falls back to a pickle, with a warning and
    the run tag ``model_format = pickle``; see the README's security notes.

    Registered (``register``) under ``registered_model_name``, by default the run's params key,
    so ``mlflow.pytorch.load_model("models:/<key>/latest")`` gives the newest trained network.
    """
    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    client = get_client()
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    model = model.cpu().eval()
    example = np.asarray(input_example)
    if example.shape[0] < 2:
        example = np.concatenate([example, example])
    with torch.no_grad():
        output = model(torch.as_tensor(example)).numpy()
    signature = infer_signature(example, output)
    run = client.get_run(run_id)
    tags = run.data.tags
    if register and registered_model_name is None:
        registered_model_name = tags.get(TAG_KEY)

    def logged_model_id() -> str:
        # created here, in the run's experiment: left to itself, MLflow puts the model in the
        # fluent "active" experiment (Default, artifacts under ./mlruns) when no run is active
        return client.create_logged_model(
            run.info.experiment_id, name=name, source_run_id=run_id, params=run.data.params
        ).model_id

    kwargs = {
        "name": name,
        "signature": signature,
        "input_example": example,
        "run_id": run_id,
        "registered_model_name": registered_model_name if register else None,
    }
    torch_req = f"torch=={torch.__version__.split('+')[0]}"
    export_error = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's hints about integer columns
        try:
            info = mlflow.pytorch.log_model(
                model,
                pip_requirements=[torch_req],
                serialization_format="pt2",
                model_id=logged_model_id(),
                **kwargs,
            )
            fmt = "pt2"
        except Exception as e:  # torch.export could not trace this model
            export_error = e
    if export_error is not None and not _learned_tensors(model):
        # nothing learned to save (OpenCV's SGBM, Canny + HOG): its settings, as JSON, describe
        # it completely, and a pickle would make the registry need pickled code for nothing
        _drop_unfinished_models(client, run_id, name)
        client.log_dict(run_id, _settings(model), f"{name}/settings.json")
        client.set_tag(run_id, TAG_MODEL_FORMAT, "json")
        return None
    if export_error is not None:
        warnings.warn(
            f"torch.export failed ({type(export_error).__name__}: "
            f"{(str(export_error).splitlines() or [''])[0][:200]}); "
            "logging the model as a pickle instead: loading it will run pickled code",
            stacklevel=2,
        )
        _drop_unfinished_models(client, run_id, name)  # else runs:/<id>/<name> finds that one
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            info = mlflow.pytorch.log_model(
                model,
                pip_requirements=[torch_req, "simlearn"],
                serialization_format="pickle",
                model_id=logged_model_id(),
                **kwargs,
            )
        fmt = "pickle"
    client.set_tag(run_id, TAG_MODEL_FORMAT, fmt)
    if register and registered_model_name:
        client.update_registered_model(
            registered_model_name,
            description=(
                f"Networks trained by params experiment `{registered_model_name}` "
                f"(dataset {tags.get('dataset', '?')}, task {tags.get('task', '?')}, "
                f"loss {tags.get('loss', '?')}); one version per training run. Input: float "
                "images in [0, 1], (B, C, H, W); output: embeddings (B, D)."
            ),
        )
    return info


def _learned_tensors(model: Any) -> int:
    """How many numbers the module holds in parameters and buffers (0: nothing was learned)."""
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def _settings(model: Any) -> dict[str, Any]:
    """A weightless module as JSON: its class and its plain attributes (method, sizes, the
    classical algorithm's options), which rebuild it."""
    import json

    plain = {}
    for key, value in vars(model).items():
        if key.startswith("_") or key == "training":
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        plain[key] = value
    cls = type(model)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "settings": plain}


def _drop_unfinished_models(client: MlflowClient, run_id: str, name: str) -> None:
    """Delete the logged models ``name`` of ``run_id`` that never became READY."""
    exp_id = client.get_run(run_id).info.experiment_id
    for m in client.search_logged_models(
        experiment_ids=[exp_id],
        filter_string=f"name = '{name}' AND source_run_id = '{run_id}'",
        max_results=100,
    ):
        if m.source_run_id == run_id and str(m.status) != "READY":
            client.delete_logged_model(m.model_id)
