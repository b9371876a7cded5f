"""Stereo inference and training speed: MC-CNN fast costs, winner-takes-all, post-processing.

Figures, each the median of ``--repeat`` runs after a warm-up:

- inference on one pair without post-processing (embed both views + cost volume + WTA) and with
  it (+ SGM, left-right check and fill, sub-pixel, median), split into its parts;
- OpenCV StereoSGBM on the same pair (CPU), for reference;
- training throughput: triplet steps of the patch network, in patches/s (3 per triplet), as
  separate 9x9 patches (``sampler.rows_per_step: 0``) and as 9-row strips of both views
  (``rows_per_step: --rows``), where every column of a strip is one patch's embedding.

Pairs: the whole Middlebury motorcycle pair shipped by scikit-image (500x741, 68 disparities), or
``--synthetic``: a random 375x1242 pair with 228 disparities (the KITTI size, for the GPU figures).
The network is freshly initialised (``--model`` loads a trained ``model.pt``): speed does not
depend on the weights.

Run: ``python benchmarks/bench_stereo.py [--device cuda] [--synthetic] [--threads 2]
[--dtype bfloat16|float32] [--json PATH]``. Imports neither matplotlib, MLflow nor DVC.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT / "src", ROOT / "benchmarks"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from suite_results import append  # noqa: E402

from simlearn.models.patchnet import PatchNet  # noqa: E402
from simlearn.stereo.matcher import (  # noqa: E402
    PostProcessing,
    StereoMatcher,
    image_tensor,
    num_disparities,
    predict,
)


def _timed(fn: Callable[[], object], device: torch.device, repeat: int) -> float:
    """Median seconds of ``fn`` over ``repeat`` runs after one warm-up."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _pair(synthetic: bool) -> tuple[np.ndarray, np.ndarray, float, str]:
    if synthetic:
        rng = np.random.default_rng(0)
        right = rng.integers(0, 256, (375, 1242, 3), dtype=np.uint8)
        left = np.roll(right, 20, axis=1)
        return left, right, 227.0, "synthetic 375x1242, 228 disparities"
    from skimage.data import stereo_motorcycle

    left, right, _ = stereo_motorcycle()
    return left, right, 270 * 741 / 2964, "motorcycle 500x741, 68 disparities"


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--synthetic", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    p.add_argument("--colour", action="store_true")
    p.add_argument("--paths", type=int, default=4, choices=[4, 8])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--train-steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=256, help="triplets per training step")
    p.add_argument("--rows", type=int, default=2, help="rows per strip training step")
    p.add_argument("--model", type=Path, default=None, help="a trained models/<exp>/model.pt")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    left, right, max_disp, what = _pair(args.synthetic)
    n = num_disparities(max_disp)
    torch.manual_seed(0)
    net = PatchNet(3, colour=args.colour)
    if args.model is not None:
        blob = torch.load(args.model, map_location="cpu", weights_only=True)
        net = PatchNet(3, colour=blob["spec"]["colour"], batch_norm=blob["spec"]["batch_norm"])
        net.load_state_dict(
            {k[4:]: v for k, v in blob["state_dict"].items() if k.startswith("net.")}
        )
    matcher = StereoMatcher("learned", net.to(device), n, dtype=getattr(torch, args.dtype))
    raw = PostProcessing(sgm=False, lr_check=False, subpixel=False, median=1)
    full = PostProcessing(paths=args.paths)
    lt, rt = image_tensor(left, device), image_tensor(right, device)
    fl, fr = matcher.embed(lt), matcher.embed(rt)
    cost = matcher.costs(lt, rt, n)

    from simlearn.stereo.cost_volume import similarity_volume
    from simlearn.stereo.sgm import sgm

    figures = {
        "embed_both_s": _timed(lambda: (matcher.embed(lt), matcher.embed(rt)), device, args.repeat),
        "cost_volume_s": _timed(lambda: similarity_volume(fl, fr, n), device, args.repeat),
        "sgm_s": _timed(lambda: sgm(cost, full.p1, full.p2, full.paths), device, args.repeat),
        "without_post_s": _timed(
            lambda: predict(matcher, left, right, max_disp, raw, device), device, args.repeat
        ),
        "with_post_s": _timed(
            lambda: predict(matcher, left, right, max_disp, full, device), device, args.repeat
        ),
    }
    if device.type == "cpu":
        from importlib.util import find_spec

        if find_spec("cv2") is None:  # the GPU machine's image (and gpu_suite.sh --cpu) lacks it
            print("opencv_sgbm_s: skipped, OpenCV (cv2) is not installed", file=sys.stderr)
        else:
            from simlearn.stereo.sgbm import sgbm_disparity

            figures["opencv_sgbm_s"] = _timed(
                lambda: sgbm_disparity(left, right, max_disp), device, args.repeat
            )

    # training throughput: triplet steps of the patch network on random 9x9 patches
    from simlearn.losses import TripletMarginLoss

    train_net = PatchNet(3, colour=args.colour).to(device).train()
    opt = torch.optim.AdamW(train_net.parameters(), lr=1e-3)
    loss_fn = TripletMarginLoss(margin=0.2, distance="dot")
    c = 3 if args.colour else 1
    x = torch.randn(3 * args.batch, c, 9, 9, device=device)

    def step() -> None:
        e = train_net.embed_patches(x).flatten(1)
        loss = loss_fn(e[: args.batch], e[args.batch : 2 * args.batch], e[2 * args.batch :])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    per_step = (
        _timed(lambda: [step() for _ in range(args.train_steps)], device, 1) / args.train_steps
    )
    figures["train_patches_per_s"] = 3 * args.batch / per_step

    # the same network on whole-row strips (both views): one embedding per column and strip
    width = left.shape[1]
    strips = torch.randn(2 * args.rows, c, 9, width, device=device)
    cols = torch.arange(20, width - 8 - 20, device=device)

    def strip_step() -> None:
        e = train_net.embed_patches(strips)[:, :, 0]  # (2R, F, W - 8)
        a, r = e[: args.rows, :, cols], e[args.rows :]
        pos, neg = r[:, :, cols - 10], r[:, :, cols - 4]  # a positive and a negative column each
        loss = loss_fn(*(t.permute(0, 2, 1).flatten(0, 1) for t in (a, pos, neg)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    per_step = (
        _timed(lambda: [strip_step() for _ in range(args.train_steps)], device, 1)
        / args.train_steps
    )
    figures["train_strip_patches_per_s"] = 2 * args.rows * (width - 8) / per_step

    threads = torch.get_num_threads() if device.type == "cpu" else 0
    print(f"stereo on {device} ({what}; network {args.dtype}; {args.paths} SGM paths; "
          f"{threads or '-'} CPU threads)")  # fmt: skip
    for k, v in figures.items():
        unit = "patches/s" if k.endswith("per_s") else "s"
        print(f"  {k:26s} {v:10.3f} {unit}")
        append(args.json, "stereo", f"{k} ({what}, {device.type})", v, unit)
    return figures


if __name__ == "__main__":
    main()
