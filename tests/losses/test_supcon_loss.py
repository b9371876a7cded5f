"""SupConLoss (L_out) against a per-anchor loop and pytorch-metric-learning."""

import pytest
import torch

from simlearn.losses import NTXentLoss, SupConLoss


def _cos(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())


def _bf_loss(z: torch.Tensor, labels: list[int], t: float) -> torch.Tensor:
    b = len(labels)
    terms = []
    for i in range(b):
        positives = [p for p in range(b) if p != i and labels[p] == labels[i]]
        if not positives:
            continue
        den = sum(torch.exp(_cos(z[i], z[a]) / t) for a in range(b) if a != i)
        s = sum(torch.log(torch.exp(_cos(z[i], z[p]) / t) / den) for p in positives)
        terms.append(-s / len(positives))
    return sum(terms) / len(terms)


LABELS = [0, 1, 0, 2, 1, 0, 3, 1]  # class 2 and 3 singletons (skipped as anchors)


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_value_and_gradient_match_loop(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(len(LABELS), 4, generator=g, dtype=torch.float64, requires_grad=True)
    got = SupConLoss(temperature=temperature)(z, torch.tensor(LABELS))
    want = _bf_loss(z, LABELS, temperature)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(torch.autograd.grad(got, z)[0], torch.autograd.grad(want, z)[0])


@pytest.mark.parametrize("multi_view", [False, True])
def test_matches_pytorch_metric_learning(multi_view: bool) -> None:
    # Identical settings: its defaults (CosineSimilarity, AvgNonZeroReducer). The reducer drops
    # anchors whose loss is exactly 0, i.e. those without positives; with random inputs no anchor
    # with positives has a loss of exactly 0, so both average over the same anchors.
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    g = torch.Generator().manual_seed(1)
    if multi_view:  # two views of 5 samples of classes [0, 1, 0, 2, 3]: labels repeat
        labels = torch.tensor([0, 1, 0, 2, 3]).repeat(2)
    else:
        labels = torch.tensor(LABELS)
    z = torch.randn(len(labels), 6, generator=g, dtype=torch.float64, requires_grad=True)
    ours = SupConLoss(temperature=0.2)(z, labels)
    theirs = pml_losses.SupConLoss(temperature=0.2)(z, labels)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(torch.autograd.grad(ours, z)[0], torch.autograd.grad(theirs, z)[0])


def test_two_views_of_distinct_samples_reduce_to_nt_xent() -> None:
    # With one positive per anchor (the other view), L_out is exactly NT-Xent.
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    z2 = torch.randn(4, 3, generator=g, dtype=torch.float64)
    got = SupConLoss(temperature=0.3)(torch.cat([z1, z2]), torch.arange(4).repeat(2))
    torch.testing.assert_close(got, NTXentLoss(temperature=0.3)(z1, z2))


def test_scale_invariant_and_connected_zero_without_positives() -> None:
    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(SupConLoss()(5.0 * z, labels), SupConLoss()(z, labels))
    z.requires_grad_(True)
    out = SupConLoss()(z, torch.arange(6))
    assert out.item() == 0.0 and out.grad_fn is not None


def test_param_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"temperature=0 is not allowed; expected a finite "
        r"number > 0",
    ):
        SupConLoss(temperature=0)
    with pytest.raises(ValueError, match=r"emb must have shape \(N, D\)"):
        SupConLoss()(torch.zeros(4), torch.zeros(4))
