"""Distance helper: pairwise and row-wise values against a per-pair loop, ordering, safety."""

import pytest
import torch

from simlearn.losses.distance import DISTANCES, Distance, check_distance


def _bf_distance(x: torch.Tensor, y: torch.Tensor, name: str) -> torch.Tensor:
    """One pair, written out from the definitions."""
    if name == "euclidean":
        return torch.sqrt(sum((x[k] - y[k]) ** 2 for k in range(len(x))))
    if name == "squared_euclidean":
        return sum((x[k] - y[k]) ** 2 for k in range(len(x)))
    return sum(x[k] * y[k] for k in range(len(x))) / (x.norm() * y.norm())


@pytest.mark.parametrize("name", DISTANCES)
def test_pairwise_matches_loop(name: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64)
    got = Distance(name).pairwise(x, y)
    assert got.shape == (5, 4)
    want = torch.stack([torch.stack([_bf_distance(xi, yj, name) for yj in y]) for xi in x])
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", DISTANCES)
def test_rowwise_matches_loop_and_pairwise_diagonal(name: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.randn(6, 4, generator=g, dtype=torch.float64)
    dist = Distance(name)
    got = dist.rowwise(x, y)
    want = torch.stack([_bf_distance(x[i], y[i], name) for i in range(6)])
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got, torch.diagonal(dist.pairwise(x, y)))


def test_dot_is_cosine_similarity_and_scale_invariant() -> None:
    x = torch.tensor([[1.0, 0.0], [3.0, 3.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 2.0], [-5.0, 0.0]], dtype=torch.float64)
    dot = Distance("dot")
    s = 2.0**-0.5
    torch.testing.assert_close(
        dot.pairwise(x, y), torch.tensor([[0.0, -1.0], [s, -s]], dtype=torch.float64)
    )
    torch.testing.assert_close(dot.pairwise(7.0 * x, y), dot.pairwise(x, y))


def test_ordering_notion() -> None:
    assert Distance("dot").is_similarity
    assert not Distance("euclidean").is_similarity
    assert not Distance("squared_euclidean").is_similarity
    pos, neg = torch.tensor([1.0]), torch.tensor([3.0])
    # Distance: the negative (3) is farther than the positive (1): no violation, -2.
    assert Distance("euclidean").violation(pos, neg).item() == -2.0
    # Similarity: the negative (3) is more similar than the positive (1): violation +2.
    assert Distance("dot").violation(pos, neg).item() == 2.0
    assert Distance("dot").as_dissimilarity(pos).item() == -1.0


def test_euclidean_gradient_is_finite_where_points_coincide() -> None:
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    d = Distance("euclidean").pairwise(x, x)  # diagonal and off-diagonal are all coincident
    assert torch.all(d < 1e-5)
    (grad,) = torch.autograd.grad(d.sum(), x)
    assert torch.isfinite(grad).all()
    r = Distance("euclidean").rowwise(x[:1], x[1:])
    (grad,) = torch.autograd.grad(r.sum(), x)
    assert torch.isfinite(grad).all()


def test_half_precision_is_computed_in_float32() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(8, 16, generator=g)
    want = Distance("euclidean").pairwise(x.double(), x.double())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = Distance("euclidean").pairwise(x.bfloat16(), x.bfloat16())
    assert got.dtype == torch.float32
    # Only the bfloat16 rounding of the inputs remains (relative 2^-8), not a bfloat16 matmul.
    torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=5e-2)


def test_unknown_name_is_rejected_with_choices() -> None:
    with pytest.raises(
        ValueError,
        match=r"distance='cosine' is not supported; allowed: "
        r"'euclidean', 'squared_euclidean', 'dot'",
    ):
        Distance("cosine")
    with pytest.raises(ValueError, match=r"distance='dot'.*allowed: 'euclidean'$"):
        check_distance("dot", ("euclidean",))


def test_bad_shapes_are_rejected() -> None:
    dist = Distance("euclidean")
    with pytest.raises(ValueError, match=r"same embedding size D"):
        dist.pairwise(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"same shape"):
        dist.rowwise(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        dist.pairwise(torch.zeros(3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"floating-point"):
        dist.pairwise(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
