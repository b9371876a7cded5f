"""mine_triplets and all_pairs against brute-force enumeration (and pytorch-metric-learning)."""

import itertools

import pytest
import torch

import simlearn.losses.mining as mining
from simlearn.losses import ContrastiveLoss, all_pairs, mine_triplets


def _bf_distance(x: torch.Tensor, y: torch.Tensor, name: str) -> float:
    if name == "euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x))).item() ** 0.5
    if name == "squared_euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x))).item()
    return (sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())).item()


def _bf_triplets(
    emb: torch.Tensor, labels: list[int], strategy: str, margin: float, name: str
) -> list[tuple[int, int, int]]:
    out = []
    for a, p, n in itertools.product(range(len(labels)), repeat=3):
        if a == p or labels[a] != labels[p] or labels[n] == labels[a]:
            continue
        ap, an = _bf_distance(emb[a], emb[p], name), _bf_distance(emb[a], emb[n], name)
        if name == "dot":  # similarity: larger is closer, so the inequalities flip
            hard, semihard = an > ap, ap > an > ap - margin
        else:
            hard, semihard = an < ap, ap < an < ap + margin
        if (
            strategy == "all"
            or (strategy == "hard" and hard)
            or (strategy == "semihard" and semihard)
        ):
            out.append((a, p, n))
    return out


LABELS = [0, 1, 0, 2, 1, 0, 2, 3, 1, 0]
CASES = [
    (s, d) for s in ("all", "hard", "semihard") for d in ("euclidean", "squared_euclidean", "dot")
]


def _emb(seed: int, n: int = len(LABELS)) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g, dtype=torch.float64)


@pytest.mark.parametrize(("strategy", "distance"), CASES)
def test_triplets_match_enumeration(strategy: str, distance: str) -> None:
    emb = _emb(0)
    margin = 0.4 if distance == "dot" else 1.0
    a, p, n = mine_triplets(emb, torch.tensor(LABELS), strategy, margin, distance)
    assert a.dtype == p.dtype == n.dtype == torch.long
    got = list(zip(a.tolist(), p.tolist(), n.tolist(), strict=True))
    want = _bf_triplets(emb, LABELS, strategy, margin, distance)
    assert len(want) > 0
    assert got == want  # same triplets, same (lexicographic) order


def test_chunked_anchors_give_the_same_triplets(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = _emb(1)
    labels = torch.tensor(LABELS)
    whole = mine_triplets(emb, labels, "semihard", 1.0)
    monkeypatch.setattr(mining, "_MAX_MASK_ENTRIES", 3 * len(LABELS) ** 2)  # chunks of 3 anchors
    chunked = mine_triplets(emb, labels, "semihard", 1.0)
    for x, y in zip(whole, chunked, strict=True):
        assert torch.equal(x, y)


def test_strategies_nest_and_margin_zero_empties_semihard() -> None:
    emb, labels = _emb(2), torch.tensor(LABELS)
    every = set(zip(*(t.tolist() for t in mine_triplets(emb, labels, "all")), strict=True))
    hard = set(zip(*(t.tolist() for t in mine_triplets(emb, labels, "hard")), strict=True))
    semi = set(zip(*(t.tolist() for t in mine_triplets(emb, labels, "semihard", 1.0)), strict=True))
    assert hard <= every and semi <= every and not hard & semi
    # 4 classes of sizes 4, 3, 2, 1: sum over anchors of (class size - 1) * (10 - class size)
    assert len(every) == 4 * 3 * 6 + 3 * 2 * 7 + 2 * 1 * 8 + 0
    assert len(mine_triplets(emb, labels, "semihard", 0.0)[0]) == 0


@pytest.mark.parametrize("strategy", ["hard", "semihard"])
def test_agrees_with_pytorch_metric_learning_miner(strategy: str) -> None:
    # Its TripletMarginMiner keeps d_an <= d_ap ("hard") and d_ap < d_an <= d_ap + margin
    # ("semihard"): the same sets as ours except on exact ties, which random inputs do not have.
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
    emb, labels = _emb(3), torch.tensor(LABELS)
    miner = pml_miners.TripletMarginMiner(
        margin=1.0,
        type_of_triplets=strategy,
        distance=pml_distances.LpDistance(normalize_embeddings=False),
    )
    theirs = set(zip(*(t.tolist() for t in miner(emb, labels)), strict=True))
    ours = set(zip(*(t.tolist() for t in mine_triplets(emb, labels, strategy, 1.0)), strict=True))
    assert ours == theirs and ours


def test_mining_does_not_touch_the_graph() -> None:
    emb = _emb(4).requires_grad_(True)
    a, p, n = mine_triplets(emb, torch.tensor(LABELS), "hard")
    assert not a.requires_grad and a.grad_fn is None
    assert emb.grad is None


def test_all_pairs_match_enumeration_and_feed_contrastive() -> None:
    labels = [2, 0, 2, 1, 0]
    i, j, same = all_pairs(torch.tensor(labels))
    want = [(x, y, labels[x] == labels[y]) for x, y in itertools.combinations(range(5), 2)]
    assert list(zip(i.tolist(), j.tolist(), same.tolist(), strict=True)) == want
    assert same.dtype == torch.bool
    emb = _emb(5, n=5)
    loss = ContrastiveLoss(margin=2.0)(emb[i], emb[j], same)
    terms = []
    for x, y, s in want:
        d = _bf_distance(emb[x], emb[y], "euclidean")
        terms.append(d**2 if s else max(0.0, 2.0 - d) ** 2)
    assert loss.item() == pytest.approx(sum(terms) / len(terms), rel=1e-12)
    assert len(all_pairs(torch.tensor([7]))[0]) == 0


def test_param_validation() -> None:
    emb, labels = _emb(6), torch.tensor(LABELS)
    with pytest.raises(
        ValueError,
        match=r"strategy='easy' is not supported; allowed: 'all', "
        r"'hard', 'semihard'",
    ):
        mine_triplets(emb, labels, "easy")
    with pytest.raises(
        ValueError,
        match=r"margin=-0\.2 is not allowed; expected a finite "
        r"number >= 0",
    ):
        mine_triplets(emb, labels, "semihard", margin=-0.2)
    with pytest.raises(ValueError, match=r"distance='manhattan' is not supported"):
        mine_triplets(emb, labels, "hard", distance="manhattan")
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\)"):
        mine_triplets(emb, labels[:4])
    with pytest.raises(ValueError, match=r"labels must have shape \(B,\)"):
        all_pairs(labels[None, :])
