"""map_at_k against scikit-learn's average precision of the top K, a loop over the list, and a
worked example."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from simlearn.evaluation.map_at_k import map_at_k


def _loop(rel: np.ndarray, d: np.ndarray) -> float:
    """Precision at each relevant item, taken at the end of its group of equal distances (a tie
    is one threshold), averaged over the relevant items of the list; 0 without any."""
    k = len(rel)
    if not rel.any():
        return 0.0
    total = 0.0
    for i in range(k):
        if rel[i]:
            end = i
            while end + 1 < k and d[end + 1] == d[i]:
                end += 1
            total += rel[: end + 1].sum() / (end + 1)
    return total / rel.sum()


def test_map_at_k_equals_sklearn_and_a_loop_on_the_top_k_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(50):
        k = int(rng.integers(1, 12))
        d = np.sort(rng.integers(0, 5, size=k)).astype(np.float64)  # many ties
        rel = rng.random(k) < 0.4
        got = map_at_k(rel[None], d[None])[0]
        want = average_precision_score(rel, -d) if rel.any() else 0.0
        assert got == pytest.approx(want, abs=1e-12)
        assert got == pytest.approx(_loop(rel, d), abs=1e-12)


def test_rows_are_queries_and_a_worked_example():
    rel = np.array([[1, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=bool)
    d = np.array([[0.1, 0.2, 0.3], [0.1, 0.1, 0.2], [0.0, 0.0, 1.0]])
    got = map_at_k(rel, d)
    assert got.dtype == np.float64 and got.shape == (3,)
    want = [
        (1 / 1 + 2 / 3) / 2,  # hits at ranks 1 and 3, no ties
        (1 / 2 + 2 / 3) / 2,  # rank 1 ties with the miss at rank 2: its precision is 1/2
        0.0,  # nothing relevant in the top K: 0, and it still counts in the mean
    ]
    np.testing.assert_allclose(got, want, atol=1e-15)


def test_an_empty_top_list_scores_zero():
    assert map_at_k(np.zeros((3, 0), bool), np.zeros((3, 0))).tolist() == [0.0, 0.0, 0.0]
