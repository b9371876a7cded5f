"""Tasks: everything that differs between the kinds of experiment lives in one module each.

An experiment's ``task:`` key names a module of this package (``metric`` -> ``tasks/metric.py``).
The stages look the module up with :func:`get` and call it; they never name a task. Adding a task
is adding a module (and a params section that uses it): no stage changes, and because each stage
of an experiment depends in ``dvc.yaml`` on its own task's module alone, the experiments of the
other tasks stay up to date.

Code that several tasks share lives outside this package (``models/``, ``data/``,
``evaluation/``), so that every module here is a task. The interface: a task module defines, at
module level,

``Config``
    the dataclass of one ``experiments.<key>`` section (built and type-checked by
    :func:`simlearn.config.from_dict`; range checks in its ``__post_init__``). It has at least
    ``task``, ``dataset`` and ``seed``, and ``train`` (a :class:`~simlearn.config.TrainConfig`,
    whose ``device`` the stages read). Several tasks may share one dataclass.
``KEY_METRICS``
    tuple of metric names the report shows for this task, most important first.
``describe(cfg) -> dict``
    labels for the report and the MLflow tags: ``model``, ``loss`` (names), ``baseline`` (bool:
    fitted or classical, not trained) and ``unused`` (params sections the experiment ignores).
``check(cfg) -> None``
    rules across keys (this loss needs that sampler, ...). Raises
    :class:`~simlearn.config.ConfigError` naming the full key. Runs when the params are loaded,
    so before any MLflow run exists.
``load_data(data_dir) -> data``
    reads the canonical dataset this task trains on. ``data.manifest`` is the dataset's
    manifest (a DataFrame), logged to MLflow as the run's dataset input.
``check_data(cfg, data) -> None``
    the checks that need the data (held-out classes exist, ...); before any MLflow run exists.
``train(cfg, data, *, checkpoint_dir, fingerprint, on_epoch_end, progress, desc) -> Trained``
    trains with :func:`simlearn.engine.fit` (or fits a baseline) and returns the model to export.
``example_input(data) -> np.ndarray``
    a small batch in the exported model's input form, for the MLflow model signature; ``train``
    saves it as ``<model_dir>/example.npy``, and the ``report`` stage logs the model with it.
``load_model(model_dir) -> (model, spec)``
    the exported model, as :func:`save_model` wrote it.
``embed(cfg, model, data, device) -> dict[str, np.ndarray]``
    what the ``embed`` stage writes to ``data/embeddings/<exp>.npz``: embeddings with labels,
    ids, split and holdout for the image tasks; disparity maps for stereo; two domains for SBIR.
``evaluate(cfg, arrays, data, figures_dir, name) -> Evaluation``
    metrics (written to ``metrics.json``), curves (tables with columns ``x`` and ``y``, written
    to ``reports/curves/<name>/<kind>.csv`` for ``dvc plots``) and figures (PNGs written under
    ``figures_dir``, titled with the experiment ``name``), from what ``embed`` wrote.

Optional: ``report_section(experiments) -> str | None``, a markdown section the report appends,
given ``{key: (cfg, metrics)}`` of this task's experiments (the stereo ablation table, say).

:func:`train` runs a whole training from a config and a data folder, without the stage: tests
and benchmarks use it, so there is one dispatch only.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

_REGISTERED: dict[str, ModuleType] = {}


@dataclass
class Trained:
    """What a training returns: the model to export and how the training went."""

    model: Any  # torch.nn.Module, or any object the task's save/load understands
    spec: dict[str, Any]  # everything needed to rebuild ``model`` (saved in model.pt)
    history: list[dict[str, float]]  # one row per epoch: epoch, loss, lr, seconds, samples, ...
    device: str = "cpu"
    samples_per_s: float = 0.0

    @classmethod
    def fitted(
        cls, model: Any, spec: dict[str, Any], seconds: float = 0.0, **extra: float
    ) -> Trained:
        """A baseline fitted (or built) in closed form: one history row, epoch 0, no loss;
        ``extra`` adds figures to that row (e.g. validation retrieval)."""
        row = {"epoch": 0, "loss": float("nan"), "lr": 0.0, "seconds": seconds, "samples": 0,
               "samples_per_s": 0.0, **extra}  # fmt: skip
        return cls(model, spec, [row], "cpu", 0.0)


@dataclass
class Evaluation:
    """What ``evaluate`` returns for one experiment."""

    metrics: dict[str, float]
    curves: dict[str, Any] = field(default_factory=dict)  # kind -> pandas DataFrame
    figures: list[Path] = field(default_factory=list)  # PNGs written under figures_dir
    summary: tuple[str, ...] = ()  # metric names the stage prints


def available() -> list[str]:
    """Names of every task: the modules of this package, and any registered at run time."""
    here = Path(__file__).parent
    found = {m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_")}
    return sorted(found | set(_REGISTERED))


def register(name: str, module: ModuleType) -> None:
    """Make ``module`` the task ``name`` (for tests, and for tasks kept outside this package)."""
    _REGISTERED[name] = module


def unregister(name: str) -> None:
    _REGISTERED.pop(name, None)


def get(name: str) -> ModuleType:
    """The module of task ``name``; an unknown name raises ConfigError listing the tasks."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name not in available():
        from simlearn.config import ConfigError

        raise ConfigError(f"task={name!r}: unknown task; allowed: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")


def train(
    cfg: Any,
    data_dir: str | Path,
    *,
    checkpoint_dir: str | Path,
    fingerprint: str | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    progress: bool = False,
    desc: str = "",
) -> Trained:
    """Load the data of ``cfg.task``, check it against ``cfg``, and train: the model, its spec
    and the history. ``checkpoint_dir`` holds the resumable checkpoint (a fresh folder never
    resumes)."""
    task = get(cfg.task)
    data = task.load_data(Path(data_dir))
    task.check_data(cfg, data)
    return task.train(
        cfg,
        data,
        checkpoint_dir=Path(checkpoint_dir),
        fingerprint=fingerprint,
        on_epoch_end=on_epoch_end,
        progress=progress,
        desc=desc,
    )


def fit_embedder_task(
    task: Any,
    cfg: Any,
    checkpoint_dir: Path,
    fingerprint: str | None,
    on_epoch_end: Callable[[dict[str, float]], None] | None,
    progress: bool,
    desc: str,
) -> Trained:
    """Run the one engine on an engine ``Task`` whose ``embedder`` and ``spec`` are exported."""
    from simlearn.engine import fit

    result = fit(
        task,
        cfg.train,
        seed=cfg.seed,
        checkpoint_dir=checkpoint_dir,
        fingerprint=fingerprint or "",
        on_epoch_end=on_epoch_end,
        progress=progress,
        desc=desc or cfg.task,
    )
    return Trained(task.embedder, task.spec, result.history, result.device, result.samples_per_s)
