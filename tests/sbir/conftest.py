"""Fixtures: a tiny tree in the true Sketchy layout and its canonical dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.sbir.sketchy_tree import make_sketchy_tree


@pytest.fixture
def sketchy_tree(tmp_path: Path) -> Path:
    return make_sketchy_tree(tmp_path / "downloads")


@pytest.fixture
def sketchy_data(sketchy_tree: Path, tmp_path: Path) -> Path:
    """The tree canonicalised by the ``sketchy`` source (validated on the way)."""
    from simlearn.data.sources import DatasetConfig, build_dataset

    out = tmp_path / "data" / "sketchy"
    cfg = DatasetConfig(source="sketchy", val_fraction=0.25, test_fraction=0.25)
    build_dataset("sketchy", cfg, out, downloads_dir=sketchy_tree)
    return out
