"""Tasks: everything that differs between the kinds of experiment lives in one module each.

An experiment's ``task:`` key names a module of this package (``metric`` -> ``tasks/metric.py``).
The stages call the dispatch below (:func:`train`, :func:`embed`, ...); they never name a task.
Adding a task is adding a module (and a params section that uses it): no stage changes, and
because each stage of an experiment depends in ``dvc.yaml`` on its own task's module alone, the
experiments of the other tasks stay up to date.

A task module is glue: it reads top to bottom as config, check, load, train, embed, evaluate,
report, and calls the rooms below it for the rest: its params dataclass lives in
``simlearn.config`` (``config/sbir.py``, ...), its engine task in ``simlearn.training``, its losses
and miners in ``simlearn.losses``, its metrics in ``simlearn.evaluation``, its augmentations in
``simlearn.augment`` and its figures in ``simlearn.plots``. So every module here is a task, and
the rooms never import a task (``lint-imports`` checks the layers). The interface: a task module
defines, at module level,

``Config``
    the dataclass of one ``experiments.<key>`` section (built and type-checked by
    :func:`simlearn.config.from_dict`; range checks in its ``__post_init__``). It has at least
    ``task``, ``dataset`` and ``seed``, and ``train`` (a :class:`~simlearn.config.TrainConfig`,
    whose ``device`` the stages read). Several tasks may share one dataclass.
``KEY_METRICS``
    tuple of metric names the report shows for this task, most important first.
``describe(cfg) -> dict``
    labels for the report and the MLflow tags: ``model``, ``loss`` (names), ``baseline`` (bool:
    fitted or classical, not trained) and ``unused`` (params sections, ``loss``, or keys,
    ``post.sgm``, the experiment ignores).
``check(cfg) -> None``
    rules across keys (this loss needs that sampler, ...). Raises
    :class:`~simlearn.config.ConfigError` naming the full key. Runs when the params are loaded,
    so before any MLflow run exists.
``load_data(data_dir) -> data``
    reads the canonical dataset this task trains on. ``data.manifest`` is the dataset's
    manifest (a DataFrame), logged to MLflow as the run's dataset input.
``check_data(cfg, data) -> None``
    the checks that need the data (held-out classes exist, ...); before any MLflow run exists.
``train(cfg, data, options: TrainOptions) -> Trained``
    trains with :func:`simlearn.engine.fit` (or fits a baseline) and returns the model to
    export; ``options`` (:class:`TrainOptions`): checkpoint folder, params fingerprint, epoch
    callback, progress bar.
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

The one dispatch: the stages, the CLI, tests and notebooks go through the functions below, never
through a task module's functions directly:

- :func:`experiment_config` builds ``experiments.<key>`` as its task's ``Config`` (every check that
  needs no data);
- :func:`load` reads the task's data and runs the checks that need it;
- :func:`train`, :func:`example_input`, :func:`load_model`, :func:`embed` and :func:`evaluate`
  call the task's own;
- :func:`run` does train, embed and evaluate in one call and returns the metrics (the
  lightning-hydra-template habit: ``metrics = run(cfg, "data/digits", tmp)`` in a test).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from simlearn.config import ConfigError, from_dict, section

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


@dataclass(frozen=True)
class TrainOptions:
    """How a training runs, the same for every task: what :func:`train` hands a task's
    ``train(cfg, data, options)``."""

    checkpoint_dir: Path  # the resumable checkpoint (a fresh folder never resumes)
    fingerprint: str | None = None  # params hash: a checkpoint of other params is not resumed
    on_epoch_end: Callable[[dict[str, float]], None] | None = None  # e.g. log the epoch's row
    progress: bool = False  # a progress bar on stderr
    desc: str = ""  # the progress bar's label (default: the task's name)


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
        raise ConfigError(f"task={name!r}: unknown task; allowed: {', '.join(available())}")
    return importlib.import_module(f"{__name__}.{name}")


def section_config(data: Any, name: str) -> Any:
    """An experiment's section (the mapping under ``experiments.<name>``) as its task's
    ``Config``, after every check that needs neither the data nor the rest of params.yaml:
    types and ranges, and the task's rules across keys. Errors carry the full key."""
    prefix = f"experiments.{name}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}={data!r}: expected a mapping of experiment keys")
    if "task" not in data:
        raise ConfigError(f"{prefix}.task: required key is missing; tasks: {available()}")
    try:
        module = get(data["task"])
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e}") from None
    cfg = from_dict(module.Config, data, prefix)
    try:
        module.check(cfg)
    except ConfigError as e:
        raise ConfigError(f"{prefix}.{e}") from None
    return cfg


def experiment_config(params: Mapping[str, Any], name: str) -> Any:
    """``experiments.<name>`` of ``params`` as its task's ``Config``, after every check that
    needs no data: :func:`section_config`'s, and that its dataset is declared."""
    cfg = section_config(section(params, "experiments", name), name)
    datasets = params.get("datasets") or {}
    if cfg.dataset not in datasets:
        raise ConfigError(
            f"experiments.{name}.dataset={cfg.dataset!r} is not a dataset in params.yaml; "
            f"defined datasets: {', '.join(sorted(datasets)) or '(none)'}. Add it under "
            f"`datasets:` (e.g. `{cfg.dataset}: {{source: {cfg.dataset}}}`)."
        )
    return cfg


#: what ``train@<exp>`` writes beside the model: the params it was trained with
TRAINED_CONFIG = "experiment.json"


def write_trained_config(model_dir: str | Path, params: Mapping[str, Any], name: str) -> Path:
    """``<model_dir>/experiment.json``: ``experiments.<name>`` of ``params`` as the model was
    trained with it, for :func:`trained_config`.

    Why a file: ``embed@`` and ``evaluate@`` read the experiment's params from here, not from
    params.yaml, and DVC tracks the file (an output of ``train@``) instead of listing the
    section again for each of them in dvc.lock. What they run with is then exactly what their
    dependencies hold, and dvc.lock, which DVC re-reads and rewrites after every stage it runs,
    holds each section once instead of three times (``benchmarks/bench_pipeline.py`` prints
    the lock's size and the seconds of one rewrite).
    """
    import json

    path = Path(model_dir) / TRAINED_CONFIG
    data = {"experiment": name, "params": section(params, "experiments", name)}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return path


def trained_config(path: str | Path, name: str) -> Any:
    """The ``Config`` of experiment ``name`` from what :func:`write_trained_config` wrote at
    ``path``, after :func:`section_config`'s checks (that its dataset is declared is
    :func:`experiment_config`'s check, which training ran). Fails in one message naming the fix
    when the file is missing or belongs to another experiment."""
    import json

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: it is written by training; run `dvc repro train@{name}`"
        )
    data = json.loads(path.read_text())
    if data.get("experiment") != name:
        raise ConfigError(
            f"{path} holds the params of experiment {data.get('experiment')!r}, not {name!r}; "
            f"run `dvc repro train@{name}`"
        )
    return section_config(data["params"], name)


def load(cfg: Any, data_dir: str | Path, *, check: bool = True) -> Any:
    """The data of ``cfg.task`` read from ``data_dir`` and, with ``check``, checked against
    ``cfg`` (held-out classes exist, ...): the checks that need the data, which ``train@`` runs
    before any MLflow run exists (``embed@`` and ``evaluate@`` come after it and skip them)."""
    task = get(cfg.task)
    data = task.load_data(Path(data_dir))
    if check:
        task.check_data(cfg, data)
    return data


def train(
    cfg: Any,
    data: Any,
    *,
    checkpoint_dir: str | Path,
    fingerprint: str | None = None,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    progress: bool = False,
    desc: str = "",
) -> Trained:
    """Train ``cfg`` (or fit its baseline): the model, its spec and the history. ``data`` is what
    :func:`load` returns, or a data folder, which is loaded and checked first.
    ``checkpoint_dir`` holds the resumable checkpoint (a fresh folder never resumes)."""
    if isinstance(data, str | Path):
        data = load(cfg, data)
    options = TrainOptions(Path(checkpoint_dir), fingerprint, on_epoch_end, progress, desc)
    return get(cfg.task).train(cfg, data, options)


def example_input(cfg: Any, data: Any) -> Any:
    """A small batch in the exported model's input form (the MLflow model signature)."""
    return get(cfg.task).example_input(data)


def load_model(cfg: Any, model_dir: str | Path) -> tuple[Any, dict[str, Any]]:
    """The model ``train`` exported to ``model_dir``, and its spec."""
    return get(cfg.task).load_model(Path(model_dir))


def embed(cfg: Any, model: Any, data: Any, device: Any) -> dict[str, Any]:
    """What the ``embed`` stage writes: the task's arrays (embeddings, disparity maps, ...)."""
    return get(cfg.task).embed(cfg, model, data, device)


def evaluate(
    cfg: Any, arrays: Mapping[str, Any], data: Any, figures_dir: str | Path, name: str
) -> Evaluation:
    """Metrics, curves and figures of experiment ``name`` from what :func:`embed` wrote."""
    return get(cfg.task).evaluate(cfg, dict(arrays), data, Path(figures_dir), name)


def run(
    cfg: Any,
    data_dir: str | Path,
    workdir: str | Path,
    *,
    name: str = "experiment",
    progress: bool = False,
) -> dict[str, float]:
    """Train, embed and evaluate ``cfg`` on ``data_dir`` in one call; return the metrics.

    The stages' path without DVC or MLflow: the model is saved to ``<workdir>/model/model.pt``
    and loaded back the way the ``embed`` stage loads it, so the metrics are those the pipeline
    computes for the same config; figures go to ``<workdir>/figures``. For tests and notebooks.
    """
    from simlearn.engine import pick_device
    from simlearn.models import save_model

    workdir = Path(workdir)
    data = load(cfg, data_dir)
    trained = train(cfg, data, checkpoint_dir=workdir / "checkpoint", progress=progress, desc=name)
    model_dir = workdir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    save_model(model_dir / "model.pt", trained.model, trained.spec)
    model, _ = load_model(cfg, model_dir)
    arrays = embed(cfg, model, data, pick_device(cfg.train.device))
    figures = workdir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    return evaluate(cfg, arrays, data, figures, name).metrics


def fit_embedder_task(task: Any, cfg: Any, options: TrainOptions) -> Trained:
    """Run the one engine on an engine ``Task`` whose ``embedder`` and ``spec`` are exported."""
    from simlearn.engine import fit

    result = fit(
        task,
        cfg.train,
        seed=cfg.seed,
        checkpoint_dir=options.checkpoint_dir,
        fingerprint=options.fingerprint or "",
        on_epoch_end=options.on_epoch_end,
        progress=options.progress,
        desc=options.desc or cfg.task,
    )
    return Trained(task.embedder, task.spec, result.history, result.device, result.samples_per_s)


@contextlib.contextmanager
def one_message(stage: str) -> Iterator[None]:
    """Run a stage's body; what the user can fix (a bad param, a damaged or misplaced data file,
    a checkpoint that cannot be written, a second trainer, an unusable MLflow store) ends it with
    one message on stderr and exit status 1, never a traceback. Anything else is a bug and keeps
    its traceback."""
    from simlearn.data.errors import DataError
    from simlearn.engine import CheckpointError, TrainerBusyError

    try:
        yield
    except (ConfigError, DataError, CheckpointError, TrainerBusyError) as e:
        print(f"{stage} failed:\n{e}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as e:
        # the store's error, without importing MLflow here: its module is loaded if it raised
        store = sys.modules.get("simlearn.tracking.store")
        said = None if store is None else store.as_store_error(e)
        if said is None:
            raise
        print(f"{stage} failed:\n{said}", file=sys.stderr)
        raise SystemExit(1) from None
