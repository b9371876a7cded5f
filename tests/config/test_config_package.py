"""The config package: one home per section, a leaf of the import graph, and the repo's own
params.yaml loads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import simlearn.config as config
from simlearn.config import load_params
from simlearn.tasks import experiment_config

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(statement: str) -> list[str]:
    """Every module ``statement`` imports in a fresh interpreter (``python -X importtime``)."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
        check=True,
    )
    # lines: "import time: self [us] | cumulative | imported package"
    return [
        line.rsplit("|", 1)[1].strip()
        for line in out.stderr.splitlines()
        if line.startswith("import time:") and "imported package" not in line
    ]


def test_import_simlearn_config_loads_no_task_and_no_torch():
    modules = imported_modules("import simlearn.config")
    assert {"simlearn.config", "simlearn.config.schema", "simlearn.config.metric"} <= set(modules)
    ours = {m for m in modules if m == "simlearn" or m.startswith("simlearn.")}
    above = {m for m in ours if not m.startswith(("simlearn.config", "simlearn.distances"))}
    assert above == {"simlearn"}, f"simlearn.config imports modules above it: {sorted(above)}"
    assert "torch" not in modules and "yaml" not in modules


def test_each_task_config_module_is_a_leaf_too():
    modules = imported_modules("import simlearn.config.stereo, simlearn.config.sbir")
    assert not [m for m in modules if m.startswith(("simlearn.tasks", "simlearn.data"))]


def test_the_task_modules_use_the_config_home():
    from simlearn.config import sbir, stereo
    from simlearn.tasks import metric, simclr
    from simlearn.tasks import sbir as sbir_task
    from simlearn.tasks import stereo as stereo_task

    assert stereo_task.Config is stereo.Config and sbir_task.Config is sbir.Config
    assert metric.Config is simclr.Config is config.ExperimentConfig
    assert config.TrainConfig is stereo.TrainConfig is sbir.TrainConfig


def test_repo_params_load_and_validate():
    p = load_params(ROOT / "params.yaml")
    for name in p["experiments"]:
        experiment_config(p, name)
