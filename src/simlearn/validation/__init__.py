"""Great Expectations suites, one per data kind, over the canonical datasets in `data/<name>/`.

`validate_dataset(data_dir)` picks the suite from meta.json `kind` ("images", "stereo",
"sketch", "files"), recomputes what matters from the files, runs GX on an ephemeral context and
returns a `ValidationReport` (JSON dict, HTML page, readable failure list).
"""

from simlearn.validation.report import ExpectationResult, ValidationReport
from simlearn.validation.runner import KINDS, read_manifest, read_meta, validate_dataset

__all__ = [
    "KINDS",
    "ExpectationResult",
    "ValidationReport",
    "read_manifest",
    "read_meta",
    "validate_dataset",
]
