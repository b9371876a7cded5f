"""NPairLoss against the paper's sum written as a loop, and pytorch-metric-learning."""

import math

import pytest
import torch

from simlearn.losses import NPairLoss


def _dot(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return sum(x[k] * y[k] for k in range(len(x)))


def _bf_loss(f: torch.Tensor, f_pos: torch.Tensor, l2_reg: float) -> torch.Tensor:
    n = f.shape[0]
    total = 0.0
    for i in range(n):
        inner = 0.0
        for j in range(n):
            if j != i:
                inner = inner + torch.exp(_dot(f[i], f_pos[j]) - _dot(f[i], f_pos[i]))
        total = total + torch.log(1.0 + inner)
    sq_norms = sum(_dot(f[i], f[i]) + _dot(f_pos[i], f_pos[i]) for i in range(n))
    return total / n + l2_reg * sq_norms / (2 * n)


@pytest.mark.parametrize("l2_reg", [0.0, 0.25])
def test_value_and_gradient_match_loop(l2_reg: float) -> None:
    g = torch.Generator().manual_seed(0)
    f = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    f_pos = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = NPairLoss(l2_reg=l2_reg)(f, f_pos)
    want = _bf_loss(f, f_pos, l2_reg)
    torch.testing.assert_close(got, want)
    for x, y in zip(
        torch.autograd.grad(got, (f, f_pos)), torch.autograd.grad(want, (f, f_pos)), strict=True
    ):
        torch.testing.assert_close(x, y)


def test_matches_pytorch_metric_learning() -> None:
    # Identical settings: NPairsLoss on [anchors; positives] with labels [0..N-1, 0..N-1] (it keeps
    # the pair (i, N+i) per label, anchor first), DotProductSimilarity without normalisation (its
    # default) and the default MeanReducer; our l2_reg=0 (its regulariser is off by default).
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
    g = torch.Generator().manual_seed(1)
    f = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    f_pos = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    pml = pml_losses.NPairsLoss(
        distance=pml_distances.DotProductSimilarity(normalize_embeddings=False)
    )
    theirs = pml(torch.cat([f, f_pos]), torch.arange(5).repeat(2))
    ours = NPairLoss()(f, f_pos)
    torch.testing.assert_close(ours, theirs)
    for x, y in zip(
        torch.autograd.grad(ours, (f, f_pos)), torch.autograd.grad(theirs, (f, f_pos)), strict=True
    ):
        torch.testing.assert_close(x, y)


def test_worked_example() -> None:
    # Orthonormal pairs: f_i . f+_i = 1, f_i . f+_j = 0 -> each term log(1 + (N-1) e^-1).
    eye = torch.eye(3, dtype=torch.float64)
    got = NPairLoss()(eye, eye)
    assert got.item() == pytest.approx(math.log1p(2 * math.exp(-1.0)), rel=1e-12)
    # every embedding has squared norm 1: the penalty adds exactly l2_reg
    got_reg = NPairLoss(l2_reg=0.5)(eye, eye)
    assert got_reg.item() == pytest.approx(got.item() + 0.5, rel=1e-12)


def test_param_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"l2_reg=-0\.01 is not allowed; expected a finite "
        r"number >= 0",
    ):
        NPairLoss(l2_reg=-0.01)
    with pytest.raises(ValueError, match=r"l2_reg=nan is not allowed"):
        NPairLoss(l2_reg=float("nan"))
    with pytest.raises(ValueError, match=r"anchors, positives must have the same shape"):
        NPairLoss()(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"at least one pair; got N=0"):
        NPairLoss()(torch.zeros(0, 2), torch.zeros(0, 2))
