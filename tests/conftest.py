"""Suite-wide settings."""

import os

# Stage processes started by the tests hand their work to warm servers (simlearn.warm); the
# pipeline tests' projects share one (their PYTHONPATH holds only project code). It outlives the
# minutes of unit tests between two pipeline tests (no second import of the libraries) and leaves
# 2 minutes after the suite's last stage instead of the interactive 5.
os.environ.setdefault("SIMLEARN_WARM_IDLE", "120")
