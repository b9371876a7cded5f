"""Run under ``torchrun --nproc_per_node=2``: the gradient of a batch loss over embeddings
gathered from every rank (``gather_across_ranks``), after DDP's averaging, against the gradient
of one process holding the whole batch. Writes ``<out>.rank<R>`` with the largest differences.

    python -m torch.distributed.run --standalone --nproc_per_node=2 gather_check.py <out.json>
"""

from __future__ import annotations

import copy
import json
import sys

import torch
import torch.distributed as dist
from torch import nn

from simlearn.engine import gather_across_ranks, init_distributed
from simlearn.losses import NTXentLoss, SupConLoss


def grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def main() -> None:
    out = sys.argv[1]
    info = init_distributed("cpu")
    w, r, b = info.world_size, info.rank, 6
    g = torch.Generator().manual_seed(0)  # the same data and weights on every rank
    x1, x2 = torch.randn(w * b, 8, generator=g), torch.randn(w * b, 8, generator=g)
    y = torch.randint(0, 3, (w * b,), generator=g)
    torch.manual_seed(0)
    base = nn.Linear(8, 4)
    mine = slice(r * b, (r + 1) * b)
    result = {"world_size": w}
    cases = {
        "ntxent": (NTXentLoss(0.5), lambda m, s: (m(x1[s]), m(x2[s]))),
        "supcon": (SupConLoss(0.1), lambda m, s: (m(x1[s]), y[s])),
    }
    for name, (loss_fn, inputs) in cases.items():
        ddp = nn.parallel.DistributedDataParallel(copy.deepcopy(base))
        a, c = inputs(ddp, mine)
        c = gather_across_ranks(c)  # embeddings (with grad) or labels (without)
        loss = loss_fn(gather_across_ranks(a), c)
        loss.backward()
        ref = copy.deepcopy(base)
        ra, rc = inputs(ref, slice(None))
        ref_loss = loss_fn(ra, rc)
        ref_loss.backward()
        result[name] = {
            "loss_diff": abs(loss.item() - ref_loss.item()),
            "grad_diff": (grads(ddp.module) - grads(ref)).abs().max().item(),
            "grad_norm": grads(ref).norm().item(),
        }
    with open(f"{out}.rank{r}", "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
