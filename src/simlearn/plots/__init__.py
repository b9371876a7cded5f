"""Figures, one module per family, so that a stage imports (and DVC tracks) only what it draws:

- :mod:`~simlearn.plots.retrieval`: precision-recall, ROC, distance histograms, retrieval grid;
- :mod:`~simlearn.plots.embedding`: the 2-D embedding map (t-SNE or PCA);
- :mod:`~simlearn.plots.training`: training curves;
- :mod:`~simlearn.plots.comparison`: the report's side-by-side figure;
- :mod:`~simlearn.plots.stereo`: disparity maps and their errors;
- :mod:`~simlearn.plots.ood`: out-of-distribution scores, in-distribution against OOD.

Shared pieces (canvas, saving, colours) are in :mod:`~simlearn.plots._common`. ``from
simlearn.plots import plot_roc`` works too: names are looked up in the family modules on first use,
so importing this package imports no plotting code.

Colours come from the colourblind-friendly ``tab10`` palette; where colour carries a meaning
(right/wrong neighbour, bad pixel) a second cue (marker, hatch, legend) carries it too.
"""

from __future__ import annotations

import importlib
from typing import Any

_FAMILIES = ("_common", "retrieval", "embedding", "training", "comparison", "stereo", "ood")


def __getattr__(name: str) -> Any:
    for family in _FAMILIES:
        module = importlib.import_module(f"{__name__}.{family}")
        if name in vars(module):
            return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
