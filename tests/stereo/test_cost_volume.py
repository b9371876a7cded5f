"""The cost volume against a naive loop; NCC as an embedding against its formula."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simlearn.stereo.cost_volume import (
    ncc_embedding,
    similarity_to_cost,
    similarity_volume,
    winner_takes_all,
)


def _naive(left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    c, h, w = left.shape
    out = np.full((n, h, w), np.nan)
    for d in range(n):
        for y in range(h):
            for x in range(d, w):
                out[d, y, x] = left[:, y, x] @ right[:, y, x - d]
    return out


@pytest.mark.parametrize(("w", "n", "tile", "max_elements"), [(13, 5, None, 2**26), (20, 7, 4, 50)])
def test_similarity_volume_equals_a_loop(w, n, tile, max_elements):
    g = torch.Generator().manual_seed(0)
    # integer embeddings: the dot products are exact, so equality is exact
    left = torch.randint(-3, 4, (3, 4, w), generator=g).float()
    right = torch.randint(-3, 4, (3, 4, w), generator=g).float()
    got = similarity_volume(left, right, n, tile=tile, max_elements=max_elements).numpy()
    want = _naive(left.numpy(), right.numpy(), n)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[~np.isnan(got)], want[~np.isnan(want)])


def test_cost_and_winner_recover_a_known_shift():
    g = torch.Generator().manual_seed(1)
    right = torch.nn.functional.normalize(torch.randn(8, 6, 30, generator=g), dim=0)
    left = torch.zeros_like(right)
    left[:, :, 3:] = right[:, :, :-3]  # left pixel x matches right pixel x - 3
    left[:, :, :3] = right[:, :, :3]
    cost = similarity_to_cost(similarity_volume(left, right, 6))
    assert torch.isfinite(cost).all()
    assert (winner_takes_all(cost)[:, 3:] == 3).all()
    # entries with no right pixel get the worst cost of the volume
    assert cost[5, 0, 0] == cost.max()


def test_ncc_embedding_dot_is_normalised_cross_correlation():
    g = torch.Generator().manual_seed(2)
    a = torch.rand(1, 1, 7, 7, generator=g)
    b = torch.rand(1, 1, 7, 7, generator=g)
    ea, eb = ncc_embedding(a, 3), ncc_embedding(b, 3)
    y, x = 3, 4
    pa = a[0, 0, y - 1 : y + 2, x - 1 : x + 2].flatten().double()
    pb = b[0, 0, y - 1 : y + 2, x - 1 : x + 2].flatten().double()
    pa, pb = pa - pa.mean(), pb - pb.mean()
    ncc = float((pa @ pb) / (pa.norm() * pb.norm()))
    assert float(ea[0, :, y, x] @ eb[0, :, y, x]) == pytest.approx(ncc, abs=1e-5)
