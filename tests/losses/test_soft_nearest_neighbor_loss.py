"""SoftNearestNeighborLoss against the paper's ratio of sums as a loop, and its stability."""

import math

import pytest
import torch

from simlearn.losses import SoftNearestNeighborLoss


def _bf_loss(x: torch.Tensor, labels: list[int], temperature: float) -> torch.Tensor:
    terms = []
    for i in range(len(labels)):
        num, den = 0.0, 0.0
        for j in range(len(labels)):
            if j == i:
                continue
            w = torch.exp(-sum((x[i, k] - x[j, k]) ** 2 for k in range(x.shape[1])) / temperature)
            den = den + w
            if labels[j] == labels[i]:
                num = num + w
        if any(labels[j] == labels[i] for j in range(len(labels)) if j != i):
            terms.append(-torch.log(num / den))
    return sum(terms) / len(terms)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0])
def test_value_and_gradient_match_loop(temperature: float) -> None:
    labels = [0, 1, 0, 2, 1, 1, 3]  # class 2 and 3 are singletons: those anchors are skipped
    g = torch.Generator().manual_seed(0)
    x = torch.randn(len(labels), 3, generator=g, dtype=torch.float64, requires_grad=True)
    got = SoftNearestNeighborLoss(temperature=temperature)(x, torch.tensor(labels))
    want = _bf_loss(x, labels, temperature)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, x)[0], torch.autograd.grad(want, x)[0])


def test_stable_where_every_exponential_underflows() -> None:
    # 1-D: class 0 at 0 and 10, class 1 at -10. With T = 0.01 every weight is exp(-10^4) or
    # smaller (0 in float64), so the plain ratio is 0/0. Exact values:
    # anchor 0: positive at d^2 = 100, others at 100 and 100 -> -log(1/2) = log 2
    # anchor 10: positive at d^2 = 100, others at 100 and 400 -> log(1 + e^-30000) = 0
    # anchor -10: no positive, skipped. Mean over 2 anchors: log(2) / 2.
    x = torch.tensor([[0.0], [10.0], [-10.0]], dtype=torch.float64, requires_grad=True)
    loss = SoftNearestNeighborLoss(temperature=0.01)(x, torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx(math.log(2) / 2, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(grad).all()


def test_separated_classes_cost_nothing_and_mixed_ones_cost_log_ratio() -> None:
    x = torch.tensor([[0.0], [0.1], [100.0], [100.1]], dtype=torch.float64)
    loss = SoftNearestNeighborLoss(temperature=1.0)
    assert loss(x, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(0.0, abs=1e-12)
    # All points coincide: the positive share of every anchor is (n_pos) / (B - 1) = 1/3.
    same = torch.zeros(4, 2, dtype=torch.float64)
    assert loss(same, torch.tensor([0, 0, 1, 1])).item() == pytest.approx(math.log(3), rel=1e-9)


def test_no_anchor_with_a_positive_gives_a_connected_zero() -> None:
    x = torch.randn(3, 2, requires_grad=True)
    out = SoftNearestNeighborLoss()(x, torch.tensor([0, 1, 2]))
    assert out.item() == 0.0 and out.grad_fn is not None


def test_param_validation() -> None:
    for bad in (0.0, -1.0):
        with pytest.raises(
            ValueError,
            match=rf"temperature={bad!r} is not allowed; expected a "
            r"finite number > 0",
        ):
            SoftNearestNeighborLoss(temperature=bad)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        SoftNearestNeighborLoss()(torch.zeros(3, 2), torch.zeros(3, 1))
