"""ContrastiveLoss against a per-pair loop, a worked example and pytorch-metric-learning."""

import pytest
import torch

from simlearn.losses import ContrastiveLoss


def _bf_loss(
    a: torch.Tensor, b: torch.Tensor, same: torch.Tensor, margin: float, squared: bool
) -> torch.Tensor:
    total = 0.0
    for k in range(a.shape[0]):
        d2 = sum((a[k, c] - b[k, c]) ** 2 for c in range(a.shape[1]))
        d = d2 if squared else torch.sqrt(d2)
        if same[k]:
            total = total + d**2
        else:
            total = total + torch.clamp(margin - d, min=0.0) ** 2
    return total / a.shape[0]


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    same = torch.tensor([True, False, True, False, False, True, False])
    return a, b, same


@pytest.mark.parametrize(
    ("distance", "margin"), [("euclidean", 1.0), ("euclidean", 2.5), ("squared_euclidean", 4.0)]
)
def test_value_and_gradient_match_loop(distance: str, margin: float) -> None:
    a, b, same = _inputs(0)
    got = ContrastiveLoss(margin=margin, distance=distance)(a, b, same)
    want = _bf_loss(a, b, same, margin, squared=distance == "squared_euclidean")
    torch.testing.assert_close(got, want)
    g_got = torch.autograd.grad(got, (a, b))
    g_want = torch.autograd.grad(want, (a, b))
    for x, y in zip(g_got, g_want, strict=True):
        torch.testing.assert_close(x, y)


def test_worked_example() -> None:
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 4.0], [3.0, 4.0], [0.6, 0.8]], dtype=torch.float64)  # d = 5, 5, 1
    same = torch.tensor([True, False, False])
    # same: 5^2 = 25; different, d = 5 beyond m = 3: 0; different, d = 1: (3 - 1)^2 = 4.
    got = ContrastiveLoss(margin=3.0)(a, b, same)
    torch.testing.assert_close(got, torch.tensor((25.0 + 0.0 + 4.0) / 3, dtype=torch.float64))


def test_positive_term_matches_pytorch_metric_learning() -> None:
    # Identical only on same-class pairs: with LpDistance(power=2) and pos_margin=0 its pair term
    # is relu(d^2 - 0) = d^2, ours too. Its negative term relu(m - d) is not squared, unlike ours,
    # so negatives are checked by the loop above only. AvgNonZeroReducer = mean here (all d > 0).
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ours = ContrastiveLoss(margin=1.0)(a, b, torch.ones(6, dtype=torch.bool))
    pml = pml_losses.ContrastiveLoss(
        pos_margin=0.0,
        neg_margin=1.0,
        distance=pml_distances.LpDistance(normalize_embeddings=False, p=2, power=2),
    )
    idx = torch.arange(6)
    none = torch.empty(0, dtype=torch.long)
    theirs = pml(torch.cat([a, b]), indices_tuple=(idx, idx + 6, none, none))
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(
        torch.autograd.grad(ours, (a, b)), torch.autograd.grad(theirs, (a, b)), strict=True
    ):
        torch.testing.assert_close(x, y)


def test_no_pairs_gives_a_connected_zero() -> None:
    a = torch.zeros(0, 3, requires_grad=True)
    loss = ContrastiveLoss()(a, a, torch.zeros(0, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.grad_fn is not None


def test_param_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"margin=-0\.5 is not allowed; expected a finite "
        r"number >= 0",
    ):
        ContrastiveLoss(margin=-0.5)
    with pytest.raises(
        ValueError,
        match=r"distance='dot' is not supported; allowed: "
        r"'euclidean', 'squared_euclidean'",
    ):
        ContrastiveLoss(distance="dot")
    loss = ContrastiveLoss()
    with pytest.raises(ValueError, match=r"a, b must have the same shape"):
        loss(torch.zeros(3, 2), torch.zeros(4, 2), torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"same must have shape \(3,\)"):
        loss(torch.zeros(3, 2), torch.zeros(3, 2), torch.ones(4, dtype=torch.bool))
