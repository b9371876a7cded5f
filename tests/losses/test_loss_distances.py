"""Losses and miners take their distance as a simlearn.distances object (or a loss name): the
object and its name give the same bits, any distance object works against a brute-force loop,
and a loss rejects a distance its formula cannot use."""

from __future__ import annotations

import itertools

import pytest
import torch

from simlearn.distances import CHEBYSHEV, COSINE, DOT, EUCLIDEAN, MANHATTAN, SQUARED_L2
from simlearn.losses import (
    BatchHardTripletLoss,
    ContrastiveLoss,
    NPairLoss,
    NTXentLoss,
    SoftNearestNeighborLoss,
    SupConLoss,
    TripletMarginLoss,
    mine_triplets,
)

LABELS = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])


def _emb(seed: int, n: int = 8, d: int = 5) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize(
    ("name", "obj"), [("euclidean", EUCLIDEAN), ("squared_euclidean", SQUARED_L2), ("dot", COSINE)]
)
def test_a_loss_name_and_its_object_give_the_same_bits(name: str, obj) -> None:
    e = _emb(0)
    a, p, n = e[:3], e[3:6], e[5:8]
    for make in (TripletMarginLoss, BatchHardTripletLoss):
        by_name, by_obj = make(margin=0.3, distance=name), make(margin=0.3, distance=obj)
        assert by_name.distance is obj
        args = (a, p, n) if make is TripletMarginLoss else (e, LABELS)
        assert torch.equal(by_name(*args), by_obj(*args))
    for strategy in ("all", "hard", "semihard"):
        t_name = mine_triplets(e, LABELS, strategy, 0.3, name)
        t_obj = mine_triplets(e, LABELS, strategy, 0.3, obj)
        assert all(torch.equal(u, v) for u, v in zip(t_name, t_obj, strict=True))


def test_defaults_are_the_papers_distances() -> None:
    assert NPairLoss().distance is DOT  # Sohn: the raw dot product
    assert NTXentLoss().distance is COSINE and SupConLoss().distance is COSINE
    assert SoftNearestNeighborLoss().distance is SQUARED_L2
    e = _emb(1)
    assert torch.equal(SupConLoss(0.2)(e, LABELS), SupConLoss(0.2, distance="dot")(e, LABELS))
    assert torch.equal(NTXentLoss(0.4)(e[:4], e[4:]), NTXentLoss(0.4, COSINE)(e[:4], e[4:]))


def test_npair_with_cosine_is_npair_on_unit_vectors() -> None:
    a, p = _emb(2, 4), _emb(3, 4)
    unit = NPairLoss()(a / a.norm(dim=1, keepdim=True), p / p.norm(dim=1, keepdim=True))
    torch.testing.assert_close(NPairLoss(distance=COSINE)(a, p), unit)


@pytest.mark.parametrize("dist", [MANHATTAN, CHEBYSHEV, DOT], ids=str)
def test_triplet_loss_with_any_distance_object_matches_a_loop(dist) -> None:
    a, p, n = _emb(4, 6), _emb(5, 6), _emb(6, 6)

    def value(x: torch.Tensor, y: torch.Tensor) -> float:
        diff = [abs(float(u - v)) for u, v in zip(x, y, strict=True)]
        if dist is MANHATTAN:
            return sum(diff)
        if dist is CHEBYSHEV:
            return max(diff)
        return sum(float(u * v) for u, v in zip(x, y, strict=True))

    terms = []
    for t in range(6):
        ap, an = value(a[t], p[t]), value(a[t], n[t])
        violation = an - ap if dist.is_similarity else ap - an
        terms.append(max(0.0, violation + 0.5))
    got = TripletMarginLoss(margin=0.5, distance=dist)(a, p, n)
    assert got.item() == pytest.approx(sum(terms) / 6, rel=1e-12)


def test_miner_with_a_distance_object_matches_enumeration() -> None:
    e = _emb(7)
    d = torch.cdist(e, e, p=1.0)  # the brute force's own L1 distances
    want = [
        (x, y, z)
        for x, y, z in itertools.product(range(8), repeat=3)
        if x != y and LABELS[x] == LABELS[y] and LABELS[z] != LABELS[x] and d[x, z] < d[x, y]
    ]
    got = mine_triplets(e, LABELS, "hard", distance=MANHATTAN)
    assert list(zip(*(t.tolist() for t in got), strict=True)) == want


def test_contrastive_loss_rejects_a_similarity_object() -> None:
    with pytest.raises(ValueError, match=r"distance='cosine' is a similarity"):
        ContrastiveLoss(distance=COSINE)
    assert ContrastiveLoss(distance=MANHATTAN).distance is MANHATTAN
    with pytest.raises(ValueError, match=r"distance='l1' is not supported; allowed: 'euclidean'"):
        ContrastiveLoss(distance="l1")
