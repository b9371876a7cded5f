"""SGM against a naive single-path dynamic programme, path by path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simlearn.stereo.sgm import DIRECTIONS, sgm


def _naive_path(cost: np.ndarray, dy: int, dx: int, p1: float, p2: float) -> np.ndarray:
    """L_r by the textbook recurrence, pixel by pixel, in path order."""
    n, h, w = cost.shape
    out = np.zeros_like(cost)
    ys = range(h) if dy >= 0 else range(h - 1, -1, -1)
    xs = list(range(w)) if dx >= 0 else list(range(w - 1, -1, -1))
    for y in ys:
        for x in xs:
            py, px = y - dy, x - dx
            if not (0 <= py < h and 0 <= px < w) or (dy == 0 and dx == 0):
                out[:, y, x] = cost[:, y, x]
                continue
            prev = out[:, py, px]
            m = prev.min()
            for d in range(n):
                cands = [prev[d], m + p2]
                if d > 0:
                    cands.append(prev[d - 1] + p1)
                if d < n - 1:
                    cands.append(prev[d + 1] + p1)
                out[d, y, x] = cost[d, y, x] + min(cands) - m
    return out


@pytest.mark.parametrize("paths", [4, 8])
def test_sgm_equals_the_sum_of_naive_paths(paths):
    rng = np.random.default_rng(0)
    cost = rng.integers(0, 9, size=(5, 4, 6)).astype(np.float64) / 4  # exact in float32
    p1, p2 = 0.25, 1.5
    want = sum(_naive_path(cost, dy, dx, p1, p2) for dy, dx in DIRECTIONS[paths])
    got = sgm(torch.from_numpy(cost).float(), p1, p2, paths).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_sgm_with_huge_penalties_and_no_penalties():
    rng = np.random.default_rng(1)
    cost = torch.from_numpy(rng.random((4, 3, 5))).float()
    # no penalty: every path adds the pixel's own cost minus a constant per pixel, so the winner
    # is the raw winner
    agg = sgm(cost, 0.0, 0.0, 4)
    assert torch.equal(agg.argmin(0), cost.argmin(0))


def test_sgm_rejects_bad_penalties_and_paths():
    cost = torch.zeros(2, 2, 2)
    with pytest.raises(ValueError, match="p1=1.0, p2=0.5"):
        sgm(cost, 1.0, 0.5)
    with pytest.raises(ValueError, match="paths=6"):
        sgm(cost, 0.1, 0.5, paths=6)


@pytest.mark.gpu
def test_sgm_and_cost_volume_on_cuda_equal_cpu():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from simlearn.stereo.cost_volume import similarity_volume

    g = torch.Generator().manual_seed(0)
    left = torch.randint(-3, 4, (8, 20, 50), generator=g).float()
    right = torch.randint(-3, 4, (8, 20, 50), generator=g).float()
    cpu = similarity_volume(left, right, 12)
    gpu = similarity_volume(left.cuda(), right.cuda(), 12).cpu()
    assert torch.equal(torch.isnan(cpu), torch.isnan(gpu))
    assert torch.equal(cpu.nan_to_num(), gpu.nan_to_num())
    cost = torch.rand(12, 20, 50, generator=g)
    for paths in (4, 8):
        a = sgm(cost, 0.05, 0.5, paths)
        b = sgm(cost.cuda(), 0.05, 0.5, paths).cpu()
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
