"""Suite-wide settings."""

import os

# Stage processes started by the tests hand their work to warm servers (simlearn.warm); a server
# the suite started leaves 20 s after its last stage instead of the interactive 300 s.
os.environ.setdefault("SIMLEARN_WARM_IDLE", "20")
