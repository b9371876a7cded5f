"""The distance x normalisation table: every cell is retrieval_metrics under that distance object
and normalisation, rows are named by the objects' labels, and the stage writes both files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from simlearn.distances import COSINE, DISTANCES, NORMALIZATIONS, get, normalize_embeddings
from simlearn.evaluation import retrieval_metrics
from simlearn.evaluation.distance_table import distance_table, distance_table_markdown

ROOT = Path(__file__).resolve().parents[2]


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "embeddings": rng.normal(size=(80, 6)).astype(np.float32),
        "labels": rng.integers(0, 4, 80),
        "split": np.where(np.arange(80) % 2 == 0, "test", "train"),
    }


def test_every_cell_is_the_retrieval_map_of_its_distance_and_normalisation() -> None:
    a = arrays()
    table = distance_table(a)
    assert list(zip(table["distance"], table["normalize"], strict=True)) == [
        (d, n) for n in NORMALIZATIONS for d in DISTANCES
    ]
    test = a["split"] == "test"
    for row in table.itertuples():
        x = normalize_embeddings(a["embeddings"], row.normalize)[test]
        want = retrieval_metrics(x, a["labels"][test], distance=row.distance, ks=(1,)).summary()
        assert row.map == want["map"] and row.precision_at_1 == want["precision_at_1"]
        assert row.n_queries == 40


def test_objects_and_aliases_name_the_same_rows() -> None:
    a = arrays(1)
    by_obj = distance_table(a, distances=[COSINE, "l1"], normalizations=["l2"])
    assert list(by_obj["distance"]) == ["cosine", "manhattan"]
    by_name = distance_table(a, distances=["cosine", "manhattan"], normalizations=["l2"])
    np.testing.assert_array_equal(by_obj["map"], by_name["map"])
    with pytest.raises(ValueError, match="distance='hamming' is not supported"):
        distance_table(a, distances=["hamming"])


def test_markdown_rows_carry_the_labels_and_the_best_cell_in_bold() -> None:
    table = distance_table(arrays(2))
    md = distance_table_markdown({"exp": table})
    for name in DISTANCES:
        assert f"| {get(name).label} |" in md
    best = f"**{table['map'].max():.4f}**"
    assert best in md


def test_stage_writes_the_table_and_its_csv(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("stage_distances", ROOT / "stages/distances.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    npz = tmp_path / "exp.npz"
    np.savez(npz, **arrays(3))
    df = stage.main([str(tmp_path / "out" / "distances"), str(npz)])
    assert (tmp_path / "out" / "distances.md").read_text().startswith("# Distances")
    assert len(df) == len(DISTANCES) * len(NORMALIZATIONS)
    assert (tmp_path / "out" / "distances.csv").read_text().startswith("experiment,distance")
