"""cross_domain_triplets against brute-force enumeration of (sketch, photo, photo) triplets."""

import itertools

import pytest
import torch

from simlearn.losses.cross_domain_mining import cross_domain_triplets

Y = [0, 0, 1, 1, 2, 2, 0, 3]


def _bf_distance(x: torch.Tensor, y: torch.Tensor, name: str) -> float:
    if name == "euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x))).item() ** 0.5
    if name == "squared_euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x))).item()
    return (sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())).item()


def _bf_triplets(es, ep, y, strategy, margin, name):
    """Every (sketch a, photo p, photo n) with y_p = y_a != y_n that ``strategy`` keeps."""
    want = set()
    for a, p, n in itertools.product(range(len(y)), repeat=3):
        if y[p] != y[a] or y[n] == y[a]:
            continue
        ap, an = _bf_distance(es[a], ep[p], name), _bf_distance(es[a], ep[n], name)
        if name == "dot":  # similarity: larger is closer, so the inequalities flip
            hard, semihard = an > ap, ap > an > ap - margin
        else:
            hard, semihard = an < ap, ap < an < ap + margin
        keep = {"all": True, "hard": hard, "semihard": semihard}[strategy]
        if keep:
            want.add((a, p, n))
    return want


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "dot"])
@pytest.mark.parametrize("strategy", ["all", "hard", "semihard"])
def test_in_batch_strategies_match_a_brute_force_loop(strategy, distance):
    g = torch.Generator().manual_seed(0)
    es = torch.randn(len(Y), 3, generator=g, dtype=torch.float64)
    ep = torch.randn(len(Y), 3, generator=g, dtype=torch.float64)
    y = torch.tensor(Y)
    margin = 0.4 if distance == "dot" else 1.0
    a, p, n = cross_domain_triplets(es, ep, y, strategy, margin, distance)
    got = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    assert len(got) == len(set(got))  # no triplet twice
    want = _bf_triplets(es, ep, Y, strategy, margin, distance)
    assert want and set(got) == want


def test_own_pairs_each_sketch_with_its_photo_and_a_random_other_category():
    es, ep = torch.randn(8, 3), torch.randn(8, 3)
    y = torch.tensor(Y)
    a, p, n = cross_domain_triplets(es, ep, y, "own", 0.2, "euclidean")
    assert a.tolist() == p.tolist() == list(range(8))
    assert bool((y[n] != y[a]).all())
    # the negatives: for each row, the argmax of uniform scores over the other categories' rows
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(8, 8, generator=g)
    for i in range(8):
        allowed = [j for j in range(8) if Y[j] != Y[i]]
        assert int(n[i]) == max(allowed, key=lambda j: float(scores[i, j]))
    # another generator, other negatives (still of another category)
    a2, _, n2 = cross_domain_triplets(
        es, ep, y, "own", 0.2, "euclidean", generator=torch.Generator().manual_seed(5)
    )
    assert a2.tolist() == a.tolist() and n2.tolist() != n.tolist()
    assert bool((y[n2] != y[a2]).all())


def test_own_leaves_out_a_sketch_whose_category_fills_the_batch():
    es, ep = torch.randn(3, 2), torch.randn(3, 2)
    a, p, n = cross_domain_triplets(es, ep, torch.tensor([4, 4, 4]), "own", 0.2, "euclidean")
    assert len(a) == len(p) == len(n) == 0


def test_mining_builds_no_graph():
    es = torch.randn(8, 3, requires_grad=True)
    ep = torch.randn(8, 3, requires_grad=True)
    for strategy in ("all", "own"):
        out = cross_domain_triplets(es, ep, torch.tensor(Y), strategy, 0.2, "euclidean")
        assert all(not t.requires_grad for t in out)
