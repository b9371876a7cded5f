"""TripletMarginLoss against a per-triplet loop and pytorch-metric-learning."""

import math

import pytest
import torch

from simlearn.losses import TripletMarginLoss


def _bf_distance(x: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    if name == "euclidean":
        return torch.sqrt(sum((x[k] - y[k]) ** 2 for k in range(len(x))))
    if name == "squared_euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x)))
    return sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())


def _bf_loss(
    a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: float, name: str, soft: bool
) -> torch.Tensor:
    total = 0.0
    for t in range(a.shape[0]):
        ap, an = _bf_distance(a[t], p[t], name), _bf_distance(a[t], n[t], name)
        gap = an - ap if name == "dot" else ap - an  # > 0: the negative is the closer one
        if soft:
            total = total + torch.log(1.0 + torch.exp(gap))
        else:
            total = total + torch.clamp(gap + margin, min=0.0)
    return total / a.shape[0]


def _inputs(seed: int, t: int = 9, d: int = 3) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    return tuple(
        torch.randn(t, d, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)
    )


CASES = [
    (name, soft) for name in ("euclidean", "squared_euclidean", "dot") for soft in (False, True)
]


@pytest.mark.parametrize(("distance", "soft"), CASES)
def test_value_and_gradient_match_loop(distance: str, soft: bool) -> None:
    a, p, n = _inputs(0)
    margin = 0.5
    got = TripletMarginLoss(margin=margin, distance=distance, soft=soft)(a, p, n)
    want = _bf_loss(a, p, n, margin, distance, soft)
    assert 0.0 < want.item()  # the random triplets include violating ones
    torch.testing.assert_close(got, want)
    for x, y in zip(
        torch.autograd.grad(got, (a, p, n)), torch.autograd.grad(want, (a, p, n)), strict=True
    ):
        torch.testing.assert_close(x, y)


@pytest.mark.parametrize(("distance", "soft"), CASES)
def test_matches_pytorch_metric_learning(distance: str, soft: bool) -> None:
    # Identical settings: unnormalised LpDistance (power 1 or 2) or CosineSimilarity, an explicit
    # (a, p, n) indices_tuple, MeanReducer (its default AvgNonZeroReducer drops zero terms), and
    # for the soft margin smooth_loss=True with margin=0 (it computes softplus(gap + margin)).
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
    pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")
    a, p, n = _inputs(1)
    margin = 0.3
    if distance == "dot":
        dist = pml_distances.CosineSimilarity()
    else:
        power = 2 if distance == "squared_euclidean" else 1
        dist = pml_distances.LpDistance(normalize_embeddings=False, p=2, power=power)
    pml = pml_losses.TripletMarginLoss(
        margin=0.0 if soft else margin,
        smooth_loss=soft,
        distance=dist,
        reducer=pml_reducers.MeanReducer(),
    )
    t = torch.arange(a.shape[0])
    theirs = pml(torch.cat([a, p, n]), indices_tuple=(t, t + len(t), t + 2 * len(t)))
    ours = TripletMarginLoss(margin=margin, distance=distance, soft=soft)(a, p, n)
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(
        torch.autograd.grad(ours, (a, p, n)), torch.autograd.grad(theirs, (a, p, n)), strict=True
    ):
        torch.testing.assert_close(x, y)


def test_worked_example_and_margin_ignored_when_soft() -> None:
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)  # d_ap = 1, 2
    n = torch.tensor([[0.0, 1.5], [0.0, 1.0]], dtype=torch.float64)  # d_an = 1.5, 1
    # hinge, alpha = 1: max(0, 1 - 1.5 + 1) = 0.5 and max(0, 2 - 1 + 1) = 2 -> mean 1.25
    torch.testing.assert_close(
        TripletMarginLoss(margin=1.0)(a, p, n), torch.tensor(1.25, dtype=torch.float64)
    )
    # soft: (log(1 + e^-0.5) + log(1 + e^1)) / 2, whatever the margin
    want = (math.log1p(math.exp(-0.5)) + math.log1p(math.exp(1.0))) / 2
    for margin in (0.0, 5.0):
        got = TripletMarginLoss(margin=margin, soft=True)(a, p, n)
        assert got.item() == pytest.approx(want, rel=1e-12)


def test_satisfied_triplets_cost_nothing() -> None:
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([[2.0, 0.1]], dtype=torch.float64)  # same direction: s_ap ~ 1
    n = torch.tensor([[-1.0, 0.0]], dtype=torch.float64)  # opposite: s_an = -1
    assert TripletMarginLoss(margin=0.5, distance="dot")(a, p, n).item() == 0.0
    # swapped roles violate by s_an - s_ap + alpha = ~1 - (-1) + 0.5
    got = TripletMarginLoss(margin=0.5, distance="dot")(a, n, p).item()
    assert got == pytest.approx(2.0 / math.sqrt(4.01) + 1.0 + 0.5, rel=1e-12)


def test_no_triplets_gives_a_connected_zero() -> None:
    x = torch.zeros(0, 4, requires_grad=True)
    loss = TripletMarginLoss()(x, x, x)
    assert loss.item() == 0.0 and loss.grad_fn is not None


def test_param_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"margin=-0\.1 is not allowed; expected a finite "
        r"number >= 0",
    ):
        TripletMarginLoss(margin=-0.1)
    with pytest.raises(
        ValueError,
        match=r"distance='l1' is not supported; allowed: "
        r"'euclidean', 'squared_euclidean', 'dot'",
    ):
        TripletMarginLoss(distance="l1")
    with pytest.raises(ValueError, match=r"soft='yes' is not allowed; expected True or False"):
        TripletMarginLoss(soft="yes")
    with pytest.raises(ValueError, match=r"anchor, positive, negative must have the same shape"):
        TripletMarginLoss()(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(3, 3))
