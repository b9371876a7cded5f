"""Suite-wide settings, and the reproduced project that several pipeline test modules copy."""

import os
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
    DVC's log of that run. A template: tests copy it (``tests.projects.copy_reproduced``)."""
    repo = copy_project(tmp_path_factory.mktemp("reproduced") / "digits")
    return repo, reproduce(repo, DIGITS_PARAMS)
