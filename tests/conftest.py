"""Suite-wide settings, and the reproduced project that several pipeline test modules copy."""

import os
import shutil
from pathlib import Path

import pytest
from tests.projects import DIGITS_PARAMS, copy_project, reproduce

# Stage processes started by the tests hand their work to warm servers (simlearn.warm); the
# pipeline tests' projects share one (their PYTHONPATH holds only project code). It outlives the
# minutes of unit tests between two pipeline tests (no second import of the libraries) and leaves
# 2 minutes after the suite's last stage instead of the interactive 5.
os.environ.setdefault("SIMLEARN_WARM_IDLE", "120")


@pytest.fixture(scope="session")
def reproduced_digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A project with :data:`tests.projects.DIGITS_PARAMS` after ``dvc repro``, committed, and
    DVC's log of that run. A template: tests copy it (``tests.projects.copy_reproduced``). Under
    pytest-xdist the workers share one, built by the first that needs it (a file lock)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: its own temporary folder
        repo = copy_project(tmp_path_factory.mktemp("reproduced") / "digits")
        return repo, reproduce(repo, DIGITS_PARAMS)
    from filelock import FileLock  # torch's dependency

    shared = tmp_path_factory.getbasetemp().parent  # this session's, common to its workers
    repo, log = shared / "reproduced-digits", shared / "reproduced-digits.log"
    with FileLock(str(shared / "reproduced-digits.lock")):
        if not log.exists():
            shutil.rmtree(repo, ignore_errors=True)  # a worker's build that failed
            log.write_text(reproduce(copy_project(repo), DIGITS_PARAMS))
    return repo, log.read_text()


#: The test modules that run whole pipelines, longest first (seconds each under `pytest -n 2`,
#: measured). The suite runs on 2 workers, one file at a time each (``--dist loadfile``, so that
#: a module's fixtures are built once); a worker picks the next file in collection order, so these
#: go first and the many short modules fill in around them, instead of one long module starting
#: last while the other worker idles.
LONGEST_FIRST = (
    "test_pipeline.py",
    "test_own_images_pipeline.py",
    "test_team_mlflow_server.py",
    "test_team_dvc_remote.py",  # builds the digits project test_dvc_edits copies later
    "test_train_devices.py",
    "test_warm.py",
    "test_mlflow_ui.py",
    "test_bench_peers.py",
    "test_engine.py",
    "test_stereo_folder_pipeline.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: others keep order
