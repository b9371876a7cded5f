"""NTXentLoss against a per-anchor loop and pytorch-metric-learning."""

import math

import pytest
import torch

from simlearn.losses import NTXentLoss


def _cos(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())


def _bf_loss(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    total = 0.0
    for k in range(2 * n):
        pos = k + n if k < n else k - n
        den = sum(torch.exp(_cos(z[k], z[a]) / t) for a in range(2 * n) if a != k)
        total = total - torch.log(torch.exp(_cos(z[k], z[pos]) / t) / den)
    return total / (2 * n)


@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_value_and_gradient_match_loop(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = NTXentLoss(temperature=temperature)(z1, z2)
    want = _bf_loss(z1, z2, temperature)
    torch.testing.assert_close(got, want)
    for x, y in zip(
        torch.autograd.grad(got, (z1, z2)), torch.autograd.grad(want, (z1, z2)), strict=True
    ):
        torch.testing.assert_close(x, y)


def test_matches_pytorch_metric_learning() -> None:
    # Identical settings: its NTXentLoss on [z1; z2] with labels [0..N-1, 0..N-1] and defaults
    # (CosineSimilarity, MeanReducer over its 2N positive pairs (k, k +- N)); its log(x + tiny)
    # guard is below float64 resolution here.
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    ours = NTXentLoss(temperature=0.5)(z1, z2)
    theirs = pml_losses.NTXentLoss(temperature=0.5)(torch.cat([z1, z2]), torch.arange(6).repeat(2))
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(
        torch.autograd.grad(ours, (z1, z2)), torch.autograd.grad(theirs, (z1, z2)), strict=True
    ):
        torch.testing.assert_close(x, y)


def test_worked_examples() -> None:
    # One sample: each view's only candidate is its positive -> log(1) = 0.
    one = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    assert NTXentLoss()(one, -one).item() == pytest.approx(0.0, abs=1e-12)
    # Two samples on orthogonal axes, views identical: for each anchor the positive has cos 1, the
    # two negatives cos 0 -> -log(e^{1/t} / (e^{1/t} + 2)).
    z = torch.eye(2, dtype=torch.float64)
    t = 0.5
    want = -math.log(math.exp(1 / t) / (math.exp(1 / t) + 2))
    assert NTXentLoss(temperature=t)(z, 3.0 * z).item() == pytest.approx(want, rel=1e-12)


def test_param_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"temperature=-0\.5 is not allowed; expected a finite "
        r"number > 0",
    ):
        NTXentLoss(temperature=-0.5)
    with pytest.raises(ValueError, match=r"z1, z2 must have the same shape"):
        NTXentLoss()(torch.zeros(3, 2), torch.zeros(3, 4))
    with pytest.raises(ValueError, match=r"at least one sample; got N=0"):
        NTXentLoss()(torch.zeros(0, 2), torch.zeros(0, 2))
