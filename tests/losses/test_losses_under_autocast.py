"""Under mixed precision every loss computes in float32 from half-precision embeddings."""

from collections.abc import Callable

import pytest
import torch

from simlearn.losses import (
    BatchHardTripletLoss,
    ContrastiveLoss,
    NPairLoss,
    NTXentLoss,
    SoftNearestNeighborLoss,
    SupConLoss,
    TripletMarginLoss,
)

LABELS = torch.tensor([0, 1, 2, 3] * 4)

# Each case: a loss applied to one (16, 32) embedding batch.
CASES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "contrastive": lambda e: ContrastiveLoss(margin=8.0)(e[:8], e[8:], LABELS[:8] == LABELS[8:]),
    "triplet": lambda e: TripletMarginLoss(margin=1.0)(e[:5], e[5:10], e[10:15]),
    "triplet_dot": lambda e: TripletMarginLoss(0.5, "dot")(e[:5], e[5:10], e[10:15]),
    "batch_hard": lambda e: BatchHardTripletLoss(margin=1.0)(e, LABELS.to(e.device)),
    "n_pair": lambda e: NPairLoss(l2_reg=0.01)(e[:8], e[8:]),
    "soft_nn": lambda e: SoftNearestNeighborLoss(temperature=50.0)(e, LABELS.to(e.device)),
    "supcon": lambda e: SupConLoss(temperature=0.1)(e, LABELS.to(e.device)),
    "nt_xent": lambda e: NTXentLoss(temperature=0.1)(e[:8], e[8:]),
}

DEVICES = [
    pytest.param("cpu", torch.bfloat16, id="cpu-bf16"),
    pytest.param(
        "cuda",
        torch.float16,
        id="cuda-fp16",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]


@pytest.mark.parametrize(("device", "dtype"), DEVICES)
@pytest.mark.parametrize("name", sorted(CASES))
def test_half_inputs_give_float32_loss_close_to_float64(
    name: str, device: str, dtype: torch.dtype
) -> None:
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(16, 32, generator=g).to(dtype)  # what an autocast model hands the loss
    want = CASES[name](emb.double())  # same rounded inputs, float64 arithmetic
    emb = emb.to(device).requires_grad_(True)
    with torch.autocast(device, dtype=dtype):
        got = CASES[name](emb)
    assert got.dtype == torch.float32
    # Half-precision arithmetic would be off by ~1e-2 relative; float32 by ~1e-6.
    torch.testing.assert_close(got.double().cpu(), want, rtol=1e-4, atol=1e-5)
    (grad,) = torch.autograd.grad(got, emb)
    assert torch.isfinite(grad.float()).all()
