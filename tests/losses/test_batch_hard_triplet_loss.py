"""BatchHardTripletLoss against a per-anchor search loop and pytorch-metric-learning."""

import pytest
import torch

from simlearn.losses import BatchHardTripletLoss


def _bf_distance(x: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    if name == "euclidean":
        return torch.sqrt(sum((x[k] - y[k]) ** 2 for k in range(len(x))))
    if name == "squared_euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x)))
    return sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())


def _bf_loss(
    emb: torch.Tensor, labels: list[int], margin: float, name: str, soft: bool
) -> torch.Tensor:
    closer = (lambda u, v: u > v) if name == "dot" else (lambda u, v: u < v)
    terms = []
    for i in range(len(labels)):
        hardest_pos = hardest_neg = None
        for j in range(len(labels)):
            if j == i:
                continue
            d = _bf_distance(emb[i], emb[j], name)
            if labels[j] == labels[i]:
                if hardest_pos is None or closer(hardest_pos, d):  # farthest positive
                    hardest_pos = d
            elif hardest_neg is None or closer(d, hardest_neg):  # closest negative
                hardest_neg = d
        if hardest_pos is None or hardest_neg is None:
            continue  # anchor skipped
        gap = hardest_neg - hardest_pos if name == "dot" else hardest_pos - hardest_neg
        terms.append(torch.log(1 + torch.exp(gap)) if soft else torch.clamp(gap + margin, min=0))
    return sum(terms) / len(terms)


# class 3 is a singleton: that anchor has no positive and is skipped
LABELS = [0, 1, 0, 2, 1, 0, 2, 3, 1]
CASES = [
    (name, soft) for name in ("euclidean", "squared_euclidean", "dot") for soft in (False, True)
]


@pytest.mark.parametrize(("distance", "soft"), CASES)
def test_value_and_gradient_match_loop(distance: str, soft: bool) -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(len(LABELS), 3, generator=g, dtype=torch.float64, requires_grad=True)
    got = BatchHardTripletLoss(margin=0.3, distance=distance, soft=soft)(emb, torch.tensor(LABELS))
    want = _bf_loss(emb, LABELS, 0.3, distance, soft)
    torch.testing.assert_close(got, want)
    (g_got,) = torch.autograd.grad(got, emb)
    (g_want,) = torch.autograd.grad(want, emb)
    torch.testing.assert_close(g_got, g_want)
    assert g_got[LABELS.index(3)].abs().sum() > 0  # the skipped anchor still serves as negative


@pytest.mark.parametrize(("distance", "soft"), CASES)
def test_matches_pytorch_metric_learning(distance: str, soft: bool) -> None:
    # Identical settings: BatchHardMiner (hardest positive and negative per anchor, anchors
    # lacking either dropped) with the same distance (unnormalised LpDistance of power 1 or 2, or
    # CosineSimilarity) feeding TripletMarginLoss with MeanReducer; soft = smooth_loss with
    # margin 0 (it computes softplus(gap + margin)).
    pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
    pml_miners = pytest.importorskip("pytorch_metric_learning.miners")
    pml_distances = pytest.importorskip("pytorch_metric_learning.distances")
    pml_reducers = pytest.importorskip("pytorch_metric_learning.reducers")
    if distance == "dot":
        dist = pml_distances.CosineSimilarity()
    else:
        power = 2 if distance == "squared_euclidean" else 1
        dist = pml_distances.LpDistance(normalize_embeddings=False, p=2, power=power)
    g = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1, 2, 3] * 4 + [4])
    emb = torch.randn(len(labels), 5, generator=g, dtype=torch.float64, requires_grad=True)
    triplets = pml_miners.BatchHardMiner(distance=dist)(emb, labels)
    pml = pml_losses.TripletMarginLoss(
        margin=0.0 if soft else 0.2,
        smooth_loss=soft,
        distance=dist,
        reducer=pml_reducers.MeanReducer(),
    )
    theirs = pml(emb, labels, indices_tuple=triplets)
    ours = BatchHardTripletLoss(margin=0.2, distance=distance, soft=soft)(emb, labels)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(
        torch.autograd.grad(ours, emb)[0], torch.autograd.grad(theirs, emb)[0]
    )


def test_worked_example() -> None:
    # 1-D points: class 0 at 0 and 1, class 1 at 3 and 5. Hardest pairs per anchor:
    # x=0: pos 1, neg 3 -> 1 - 3 + 1 = -1 -> 0;  x=1: pos 1, neg 2 -> 1 - 2 + 1 = 0
    # x=3: pos 2, neg 2 -> 2 - 2 + 1 = 1;        x=5: pos 2, neg 4 -> 2 - 4 + 1 = -1 -> 0
    emb = torch.tensor([[0.0], [1.0], [3.0], [5.0]], dtype=torch.float64)
    got = BatchHardTripletLoss(margin=1.0)(emb, torch.tensor([0, 0, 1, 1]))
    torch.testing.assert_close(got, torch.tensor(0.25, dtype=torch.float64))


@pytest.mark.parametrize("labels", [[4, 4, 4, 4], [0, 1, 2, 3]])
def test_no_valid_anchor_gives_a_connected_zero(labels: list[int]) -> None:
    emb = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    loss = BatchHardTripletLoss()(emb, torch.tensor(labels))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    (grad,) = torch.autograd.grad(loss, emb)
    assert torch.equal(grad, torch.zeros_like(emb))


def test_param_validation() -> None:
    with pytest.raises(
        ValueError,
        match=r"margin=-1 is not allowed; expected a finite "
        r"number >= 0",
    ):
        BatchHardTripletLoss(margin=-1)
    with pytest.raises(
        ValueError,
        match=r"distance='cos' is not supported; allowed: "
        r"'euclidean', 'squared_euclidean', 'dot'",
    ):
        BatchHardTripletLoss(distance="cos")
    with pytest.raises(ValueError, match=r"soft=1 is not allowed; expected True or False"):
        BatchHardTripletLoss(soft=1)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        BatchHardTripletLoss()(torch.zeros(4, 2), torch.zeros(3))
