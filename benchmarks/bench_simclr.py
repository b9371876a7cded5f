"""SimCLR training throughput: torchvision ResNet-18 with the CIFAR stem at 32x32, batch 512,
two views per image, counted in images/s; and the share of the step spent making the views.

The step is the simclr task's: a random batch of uint8 images already on the device, two views
(:func:`simlearn.augment.random_view`, the paper's CIFAR recipe: crop, flip, colour jitter
s = 0.5 with p = 0.8, greyscale p = 0.2), ``SimCLRModel`` (f = ResNet-18 CIFAR stem behind the
input normalisation, g = the 2-layer projection head to 128-d) on both views in one pass, NT-Xent
at temperature 0.5, SGD with Nesterov momentum (the engine's ``sgd``). Variants:

- ``eager-fp32``: no autocast, NCHW;
- ``eager-bf16``: bf16 autocast (the engine's ``amp``), NCHW;
- ``eager-bf16-cl``: bf16, channels-last model and inputs;
- ``compiled-bf16-cl``: the same under ``torch.compile`` (model forward and backward);
- ``eager-bf16-cl-det``: bf16 channels-last with ``torch.use_deterministic_algorithms`` (what
  the engine's default ``train.deterministic: true`` costs).

The fast variants let cuDNN pick its kernels (``cudnn.benchmark``). Each variant: ``--warmup``
steps, then ``--steps`` timed steps (synchronised once at the end). Augmentation share:
the two views of ``--steps`` batches timed alone, divided by the step time; and, as a check,
``1 - (step on fixed views) / (step)``. The ``-ahead`` variant makes each batch's views during the
previous step on a side CUDA stream (the simclr task's
:class:`~simlearn.training.simclr.ViewsAhead`); its share is what the views still add to the
step, ``1 - (step on fixed views) / (step)``.

Reference: lightly's SimCLR benchmark (ResNet-18, batch 512, CIFAR-10, 200 epochs in 87 min on
an RTX A6000) is about 1,900 images/s. Goal on an H100/H200: >= 10,000 images/s with
augmentation < 15% of the step.

Run: ``python benchmarks/bench_simclr.py --device cuda`` (all variants but ``compiled``), add
``--variants compiled-bf16-cl`` for the compiled one. ``--json PATH`` appends the figures (see
``benchmarks/suite_results.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # for the deterministic variant

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT / "src", ROOT / "benchmarks"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from suite_results import append  # noqa: E402

from simlearn.augment import random_view  # noqa: E402
from simlearn.losses import NTXentLoss  # noqa: E402
from simlearn.models.embedder import Embedder  # noqa: E402
from simlearn.models.projection import SimCLRModel  # noqa: E402
from simlearn.models.resnet import ResNetEmbedding  # noqa: E402
from simlearn.training.simclr import ViewsAhead  # noqa: E402

VARIANTS = (
    "eager-fp32",
    "eager-bf16",
    "eager-bf16-cl",
    "eager-bf16-cl-ahead",
    "compiled-bf16-cl",
    "eager-bf16-cl-det",
)
DEFAULT_VARIANTS = (
    "eager-fp32",
    "eager-bf16",
    "eager-bf16-cl",
    "eager-bf16-cl-ahead",
    "eager-bf16-cl-det",
)
REFERENCE_IMAGES_S = 1900.0  # lightly, ResNet-18 batch 512 on an RTX A6000
GOAL_IMAGES_S, GOAL_AUG_SHARE = 10_000.0, 0.15  # the goal on an H100 / H200
#: the paper's CIFAR views (Chen et al. 2020, appendix B.9): no rotation, no blur
CIFAR_VIEWS = {
    "degrees": 0.0,
    "translate": 0.0,
    "scale_range": (1.0, 1.0),
    "crop_scale": (0.08, 1.0),
    "flip_p": 0.5,
    "jitter": 0.5,
    "jitter_p": 0.8,
    "grey_p": 0.2,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """Data on the device, the model, and one training step."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.device, self.batch = device, args.batch
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (args.n_images, 3, args.size, args.size), generator=g)
        self.images = images.to(torch.uint8).to(device)  # (N, 3, H, W), as DeviceImages keeps
        self.criterion = NTXentLoss(temperature=0.5)
        self.step_no = 0

    def new_model(self, channels_last: bool) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        encoder = ResNetEmbedding(3, 512, normalize=False, arch="resnet18")
        model = SimCLRModel(Embedder(encoder, [0.5] * 3, [0.25] * 3), 512, 128).to(self.device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(
            model.parameters(), lr=0.12, momentum=0.9, weight_decay=5e-4, nesterov=True
        )
        return model, opt

    def batch_views(self, seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Two views of a random batch, as the simclr task draws them (a per-batch seed)."""
        if seed is None:
            self.step_no += 1
            seed = self.step_no
        g = torch.Generator().manual_seed(seed)
        rows = torch.randint(0, len(self.images), (self.batch,), generator=g)
        if self.device.type == "cuda":
            rows = rows.pin_memory().to(self.device, non_blocking=True)
        x = self.images[rows].float().div_(255.0)  # (B, 3, H, W) in [0, 1]
        return random_view(x, g, **CIFAR_VIEWS), random_view(x, g, **CIFAR_VIEWS)

    def step_fn(
        self,
        model: torch.nn.Module,
        opt: torch.optim.Optimizer,
        *,
        bf16: bool,
        channels_last: bool,
        fixed: tuple[torch.Tensor, torch.Tensor] | None = None,
        ahead: bool = False,
    ) -> Callable[[], None]:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        amp = bf16 and self.device.type == "cuda"
        # -ahead: the simclr task's ViewsAhead makes the next batch's views on a side stream
        maker = None
        if ahead and self.device.type == "cuda":
            maker = ViewsAhead(lambda b: self.batch_views(int(b[1])), self.device)

        def views() -> tuple[torch.Tensor, torch.Tensor]:
            if fixed is not None:
                return fixed
            if maker is None:
                return self.batch_views()
            self.step_no += 1
            now, nxt = self.step_no, self.step_no + 1
            return maker.get((np.array([now]), now), (np.array([nxt]), nxt))

        def step() -> None:
            v1, v2 = views()
            x = torch.cat([v1, v2]).contiguous(memory_format=fmt)  # (2B, 3, H, W)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                z = model(x).float()  # (2B, 128)
                loss = self.criterion(z[: self.batch], z[self.batch :])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step


def timed(fn: Callable[[], object], n: int, device: torch.device) -> float:
    """Seconds per call of ``fn``, over ``n`` calls synchronised once at the end."""
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync(device)
    return (time.perf_counter() - t0) / n


def run_variant(b: Bench, name: str, args: argparse.Namespace) -> dict[str, float]:
    compiled, det = name.startswith("compiled"), name.endswith("-det")
    bf16, cl, ahead = "bf16" in name, "-cl" in name, name.endswith("-ahead")
    torch.use_deterministic_algorithms(det, warn_only=True)
    torch.backends.cudnn.benchmark = not det
    model, opt = b.new_model(cl)
    run_model: torch.nn.Module = torch.compile(model) if compiled else model  # type: ignore[assignment]
    step = b.step_fn(run_model, opt, bf16=bf16, channels_last=cl, ahead=ahead)
    t0 = time.perf_counter()
    for _ in range(args.warmup):  # allocator, cuDNN autotuning, compilation
        step()
    sync(b.device)
    warmup_s = time.perf_counter() - t0
    t_step = timed(step, args.steps, b.device)
    fixed = b.batch_views()
    t_fixed = timed(
        b.step_fn(run_model, opt, bf16=bf16, channels_last=cl, fixed=fixed), args.steps, b.device
    )
    torch.use_deterministic_algorithms(False)
    return {"step_s": t_step, "fixed_views_step_s": t_fixed, "warmup_s": warmup_s}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--n-images", type=int, default=50_000, help="images kept on the device")
    ap.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compile: more)")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS), help=", ".join(VARIANTS))
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's)")
    ap.add_argument("--json", type=Path, default=None, help="append the figures (JSON lines)")
    ap.add_argument("--step-name", default="simclr", help="the suite step the figures belong to")
    args = ap.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = sorted(set(variants) - set(VARIANTS))
    if bad:
        ap.error(f"unknown variants {bad}; allowed: {', '.join(VARIANTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(
        f"SimCLR step: ResNet-18 (CIFAR stem) + projection 128, {args.size}x{args.size}, "
        f"batch {args.batch} (x2 views), {device} ({where}), torch {torch.__version__}"
    )
    b = Bench(args, device)
    # the views alone: two per batch, as in a step
    for _ in range(2):
        b.batch_views()
    t_aug = timed(b.batch_views, args.steps, device)
    print(f"  views alone (2 x {args.batch}): {1000 * t_aug:8.2f} ms per batch")
    append(args.json, args.step_name, f"views alone, 2 x {args.batch}", 1000 * t_aug, "ms/batch")
    for name in variants:
        try:
            r = run_variant(b, name, args)
        except Exception as e:  # a compile that fails on this machine: say so, keep going
            msg = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}"
            print(f"  {name:18s} FAILED {msg}")
            append(args.json, args.step_name, f"images/s, {name}", "failed", "", msg)
            continue
        ips = args.batch / r["step_s"]
        share_check = 1.0 - r["fixed_views_step_s"] / r["step_s"]
        # made ahead on a side stream, the views overlap the step: what they still cost the step
        # is the step's time beyond the same step on fixed views
        share = max(share_check, 0.0) if name.endswith("-ahead") else t_aug / r["step_s"]
        goal = ""
        if device.type == "cuda":
            met = ips >= GOAL_IMAGES_S and share < GOAL_AUG_SHARE
            goal = f"; goal >= {GOAL_IMAGES_S:,.0f}/s, aug < 15%: {'met' if met else 'not met'}"
        note = (
            f"{1000 * r['step_s']:.1f} ms/step; aug {100 * share:.1f}% of step "
            f"(1 - fixed-views step: {100 * share_check:.1f}%); x{ips / REFERENCE_IMAGES_S:.2f} "
            f"of lightly's 1,900/s on an A6000; warm-up {r['warmup_s']:.0f} s{goal}"
        )
        print(f"  {name:18s} {ips:10.0f} images/s   {note}")
        append(args.json, args.step_name, f"images/s, {name}", ips, "images/s", note)
        append(
            args.json,
            args.step_name,
            f"augmentation share of the step, {name}",
            100 * share,
            "%",
            (
                "1 - (step on fixed views) / step"
                if name.endswith("-ahead")
                else "views alone / step"
            )
            + f"; 1 - (step on fixed views) / step: {100 * share_check:.1f}%",
        )


if __name__ == "__main__":
    main()
