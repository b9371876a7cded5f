"""Every MLflow call of the project lives here (see DESIGN.md), one idea per module:

- :mod:`~simlearn.tracking.store`: the tracking URI, the store checks that fail fast with the
  fix, and the layout of MLflow experiments (``tracking:`` in params.yaml, :func:`config`);
- :mod:`~simlearn.tracking.runs`: the run of one training, whose state tells the truth
  (:func:`training_run`), its ``run.json``, and what ``train`` logs to it (params, metrics,
  artifacts, tags, the dataset);
- :mod:`~simlearn.tracking.publishing`: what the ``report`` stage adds to a finished run, its
  evaluation and its model (``torch.export``, registered under its params key).

Each module imports only the ones listed above it. Callers use this package's names
(``tracking.training_run(...)``), which are those of the modules.

No network: telemetry is switched off here, before any module of the package imports MLflow.
"""

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from simlearn.tracking.publishing import (  # noqa: E402
    TAG_EVAL_DIGEST,
    TAG_MODEL_FORMAT,
    evaluation_files,
    log_torch_model,
    publish_evaluation,
    publish_model,
)
from simlearn.tracking.runs import (  # noqa: E402
    TAG_ERROR,
    TAG_HOST,
    TAG_KEY,
    TAG_LATEST,
    TAG_PID,
    TAG_PID_START,
    UNCLOSED_FILE,
    Terminated,
    close_unclosed_runs,
    fail_run,
    finish_run,
    git_state,
    log_artifact,
    log_artifacts,
    log_dataset,
    log_metrics,
    log_missing_epochs,
    params_hash,
    read_run_file,
    resume_run,
    run_in_store,
    run_status,
    set_tags,
    start_run,
    stored_run,
    training_run,
    write_run_file,
)
from simlearn.tracking.store import (  # noqa: E402
    EXPERIMENT_KIND,
    LAYOUTS,
    STORE_TIMEOUT_S,
    UI_RUNS_VIEW,
    TrackingConfig,
    TrackingStoreError,
    check_store,
    config,
    configure,
    experiment_name,
    repo_root,
    tracking_uri,
    ui_links,
    ui_url,
)

__all__ = [
    "EXPERIMENT_KIND",
    "LAYOUTS",
    "STORE_TIMEOUT_S",
    "TAG_ERROR",
    "TAG_EVAL_DIGEST",
    "TAG_HOST",
    "TAG_KEY",
    "TAG_LATEST",
    "TAG_MODEL_FORMAT",
    "TAG_PID",
    "TAG_PID_START",
    "UI_RUNS_VIEW",
    "UNCLOSED_FILE",
    "Terminated",
    "TrackingConfig",
    "TrackingStoreError",
    "check_store",
    "config",
    "close_unclosed_runs",
    "configure",
    "evaluation_files",
    "experiment_name",
    "fail_run",
    "finish_run",
    "git_state",
    "log_artifact",
    "log_artifacts",
    "log_dataset",
    "log_metrics",
    "log_missing_epochs",
    "log_torch_model",
    "params_hash",
    "publish_evaluation",
    "publish_model",
    "read_run_file",
    "repo_root",
    "resume_run",
    "run_in_store",
    "run_status",
    "set_tags",
    "start_run",
    "stored_run",
    "tracking_uri",
    "training_run",
    "ui_links",
    "ui_url",
    "write_run_file",
]
