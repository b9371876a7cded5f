"""class_anchor_loss against a per-row loop and a worked example; the random class anchors."""

import math

import numpy as np
import pytest
import torch

from simlearn.losses.class_anchor_loss import class_anchor_loss, random_class_anchors


def test_class_anchor_loss_matches_a_loop():
    g = torch.Generator().manual_seed(1)
    e, a = torch.randn(5, 4, generator=g), torch.nn.functional.normalize(torch.randn(3, 4), dim=1)
    y = torch.tensor([0, 2, 1, 1, 0])
    want = 0.0
    for i in range(5):
        cos = [float(e[i] @ a[c] / e[i].norm()) / 0.5 for c in range(3)]
        want -= cos[int(y[i])] - np.log(np.sum(np.exp(cos)))
    assert float(class_anchor_loss(e, a, y, 0.5)) == pytest.approx(want / 5, rel=1e-5)


@pytest.mark.parametrize("temperature", [0.1, 1.0])
def test_an_embedding_on_its_class_vector_among_orthogonal_ones(temperature):
    """Orthonormal anchors, each row a scaled copy of its class's anchor: the logits are 1/T for
    the class and 0 for the C - 1 others, so L = log(1 + (C - 1) exp(-1/T)) whatever the scale."""
    c = 4
    anchors = torch.eye(c, 6, dtype=torch.float64)  # (C, D) orthonormal
    y = torch.tensor([3, 0, 2])
    e = anchors[y] * torch.tensor([[0.5], [2.0], [7.0]], dtype=torch.float64)  # any norm
    want = math.log(1 + (c - 1) * math.exp(-1 / temperature))
    assert float(class_anchor_loss(e, anchors, y, temperature)) == pytest.approx(want, rel=1e-9)


def test_the_loss_pulls_each_row_towards_its_class_vector():
    anchors = random_class_anchors(3, 5, seed=0)
    e = torch.randn(6, 5, generator=torch.Generator().manual_seed(2), requires_grad=True)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    class_anchor_loss(e, anchors, y, 0.2).backward()
    with torch.no_grad():
        stepped = e - 0.05 * e.grad
        cos = lambda x: torch.nn.functional.cosine_similarity(x, anchors[y])  # noqa: E731
        assert bool((cos(stepped) > cos(e)).all())


def test_random_class_anchors_are_unit_vectors_fixed_by_the_seed():
    a = random_class_anchors(7, 16, seed=3)
    assert a.shape == (7, 16) and a.dtype == torch.float32
    torch.testing.assert_close(a.norm(dim=1), torch.ones(7))
    torch.rand(3)  # the global generator plays no part
    assert torch.equal(a, random_class_anchors(7, 16, seed=3))
    assert not torch.equal(a, random_class_anchors(7, 16, seed=4))
    # the draw of a standard normal from a generator seeded with the seed, normalised
    g = torch.Generator().manual_seed(3)
    raw = torch.randn(7, 16, generator=g)
    assert torch.equal(a, raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12))
