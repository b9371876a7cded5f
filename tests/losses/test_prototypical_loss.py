"""The prototypical loss against a loop over queries, a worked example and easyfsl."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from simlearn.losses.prototypical_loss import PrototypicalLoss


def _episode(n=4, k=3, q=5, d=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n, 1, d, generator=g, dtype=dtype)
    support = centres + 0.7 * torch.randn(n, k, d, generator=g, dtype=dtype)
    query = centres + 0.7 * torch.randn(n, q, d, generator=g, dtype=dtype)
    return support, query


def _loop(support, query, distance: str, t: float) -> torch.Tensor:
    """One query at a time: prototypes as sums, the distance written out, log-sum-exp by hand."""
    n, k, _ = support.shape
    protos = [sum(support[c, i] for i in range(k)) / k for c in range(n)]

    def logit(x, c):
        if distance == "squared_euclidean":
            return -float(((x - c) ** 2).sum()) / t
        if distance == "euclidean":
            return -math.sqrt(float(((x - c) ** 2).sum())) / t
        return float((x @ c) / (x.norm() * c.norm())) / t  # dot: cosine similarity

    total, count = 0.0, 0
    for c in range(n):
        for x in query[c]:
            logits = [logit(x, p) for p in protos]
            top = max(logits)
            log_z = top + math.log(sum(math.exp(v - top) for v in logits))
            total += log_z - logits[c]
            count += 1
    return torch.tensor(total / count, dtype=torch.float64)


@pytest.mark.parametrize("distance", ["squared_euclidean", "euclidean", "dot"])
@pytest.mark.parametrize("t", [1.0, 0.1])
def test_loss_equals_a_loop_over_queries(distance, t):
    support, query = _episode(seed=3)
    got = PrototypicalLoss(distance, t)(support, query)
    torch.testing.assert_close(got, _loop(support, query, distance, t), rtol=1e-10, atol=1e-10)


def test_a_worked_two_way_one_shot_episode():
    # prototypes 0 and 2 on a line, one query at 0 of class 0 and one at 3 of class 1:
    # squared distances (0, 4) and (9, 1): losses log(1 + e^-4) and log(1 + e^-8)
    support = torch.tensor([[[0.0]], [[2.0]]], dtype=torch.float64)
    query = torch.tensor([[[0.0]], [[3.0]]], dtype=torch.float64)
    want = (math.log1p(math.exp(-4)) + math.log1p(math.exp(-8))) / 2
    assert PrototypicalLoss()(support, query).item() == pytest.approx(want, rel=1e-12)


def test_loss_equals_cross_entropy_of_easyfsl_prototypical_scores():
    easyfsl = pytest.importorskip("easyfsl.methods")
    support, query = _episode(n=5, k=5, q=7, d=16, seed=1, dtype=torch.float32)
    net = easyfsl.PrototypicalNetworks(torch.nn.Identity())
    net.process_support_set(support.reshape(25, 16), torch.arange(5).repeat_interleave(5))
    scores = net(query.reshape(35, 16))  # -||q - c||: easyfsl's logits
    want = F.cross_entropy(scores, torch.arange(5).repeat_interleave(7))
    got = PrototypicalLoss("euclidean", 1.0)(support, query)
    assert abs(got.item() - want.item()) < 1e-6


def test_gradients_match_finite_differences_and_reach_support_and_query():
    support, query = _episode(n=3, k=2, q=2, d=3, seed=5)
    support.requires_grad_(True)
    query.requires_grad_(True)
    loss = PrototypicalLoss(temperature=0.5)
    assert torch.autograd.gradcheck(loss, (support, query))
    loss(support, query).backward()
    assert support.grad.abs().sum() > 0 and query.grad.abs().sum() > 0


def test_bad_arguments_name_what_is_wrong():
    with pytest.raises(ValueError, match="temperature=0"):
        PrototypicalLoss(temperature=0)
    with pytest.raises(ValueError, match="distance='manhattan'"):
        PrototypicalLoss("manhattan")
    support, query = _episode()
    with pytest.raises(ValueError, match=r"same N classes"):
        PrototypicalLoss()(support, query[:2])
