"""OpenCV SGBM's parameters for ``stereo_sgbm``, chosen on the training rows only, and each stereo
method's time for the full pair.

1. The grid (:data:`GRID`): every combination of ``model.sgbm_mode`` x ``block_size`` x
   ``colour`` x ``sgbm_pad`` x ``uniqueness`` x ``speckle_window`` (the other keys as
   ``stereo_sgbm`` sets them: P1, P2 = 8, 32 x channels x block^2 as OpenCV advises,
   disp12MaxDiff 1, speckle range 2). Each runs through the pipeline's own inference
   (:func:`simlearn.stereo.matcher.predict`: OpenCV's map, its holes filled and the median of
   ``stereo_sgbm``'s ``post:``) on the training rows alone: the pair is cropped to the rows that
   hold training pixels (``split``: the rows above the test block, ``row_gap`` rows away), so
   OpenCV never sees a test row. The winner has the best accuracy at 3 px after post-processing,
   then the lowest EPE; it is printed as the params.yaml line to paste.
2. The hole labelling of :func:`simlearn.stereo.sgbm.hole_labels`, on the winner and the
   training rows: OpenCV's holes told apart by the project's left-right check against the right
   view's map (a second SGBM run, on the mirrored pair; shipped), against every hole an
   occlusion and every hole a mismatch.
3. After the choice, on the test rows: OpenCV as the project ran it before (block 5, 5 paths,
   no padding, holes left as holes), the same map filled, and the winner, each winner-takes-all
   (for SGBM: its map, holes filled) and post-processed.
4. Seconds for the full pair on ``--threads`` CPU threads (torch and OpenCV), each method through
   :func:`~simlearn.stereo.matcher.predict` with the post-processing of its experiment and
   without any (``stereo_mccnn``, ``stereo_ncc_sgm``, ``stereo_sgbm``), run alternately,
   ``--repeat`` times after a warm-up, the median. The learned network is freshly initialised
   (its speed does not depend on its weights) at the experiment's ``inference_dtype``.

Run: ``python benchmarks/tune_sgbm.py [--params params.yaml] [--threads 2] [--repeat 5]``
(about 2 minutes on 2 cores); ``--times-only`` runs step 4 alone; ``--quick`` runs one
combination and one repeat (a smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from simlearn import tasks  # noqa: E402
from simlearn.config import dataset_config  # noqa: E402
from simlearn.data.sources import build_dataset  # noqa: E402
from simlearn.evaluation.stereo import disparity_counts  # noqa: E402
from simlearn.stereo.matcher import fill, num_disparities, predict  # noqa: E402
from simlearn.stereo.refine import MISMATCH, OCCLUSION, OK, median_filter  # noqa: E402
from simlearn.stereo.sgbm import hole_labels, sgbm_disparity, sgbm_right_disparity  # noqa: E402
from simlearn.tasks.stereo import TEST, TRAIN, regions  # noqa: E402
from simlearn.training.stereo import build_matcher, model_spec  # noqa: E402

#: model keys searched, and their values
GRID: dict[str, tuple[Any, ...]] = {
    "sgbm_mode": ("sgbm", "3way", "hh"),
    "block_size": (3, 5, 7),
    "colour": (False, True),
    "sgbm_pad": (False, True),
    "uniqueness": (5, 10, 15),
    "speckle_window": (0, 100),
}
#: OpenCV as ``stereo_sgbm`` ran it before this grid (the config's defaults, colour)
BEFORE = {"sgbm_mode": "sgbm", "block_size": 5, "colour": True, "sgbm_pad": False,
          "uniqueness": 10, "speckle_window": 100}  # fmt: skip
#: the experiments whose inference is timed, and their labels
TIMED = {"stereo_mccnn": "MC-CNN fast (learned)", "stereo_ncc_sgm": "raw NCC 9x9",
         "stereo_sgbm": "OpenCV SGBM (tuned)"}  # fmt: skip


def dataset_dir(params: dict, name: str, tmp: Path) -> Path:
    """``data/<name>`` when ``dvc repro`` built it, else the dataset built in ``tmp``."""
    built = ROOT / "data" / name
    if (built / "manifest.parquet").exists():
        return built
    cfg_ds, _ = dataset_config(params, name)
    out = tmp / name
    build_dataset(name, cfg_ds, out, ROOT / "downloads" / cfg_ds.source)
    return out


def with_model(cfg: Any, **keys: Any) -> Any:
    """``cfg`` with ``model`` keys replaced (checked as params.yaml's are)."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, **keys))


def training_crops(cfg: Any, data: Any) -> list[tuple[np.ndarray, np.ndarray, float, np.ndarray]]:
    """(left, right, max_disp, ground truth with NaN outside the training pixels) of every
    evaluated pair with training pixels, cropped to the rows that hold them."""
    out = []
    for r in regions(cfg, data):
        rows = np.flatnonzero((r.codes == TRAIN).any(axis=1))
        if not len(rows):
            continue
        sl = slice(rows.min(), rows.max() + 1)
        pair = data[r.index]
        gt = np.where(r.codes[sl] == TRAIN, pair.disparity[sl], np.nan).astype(np.float32)
        out.append((pair.left[sl], pair.right[sl], pair.max_disp, gt))
    return out


def score(maps: list[np.ndarray], gts: list[np.ndarray]) -> dict[str, float]:
    """The evaluate stage's metrics, pixels pooled over the pairs."""
    counts = [disparity_counts(m, g, np.isfinite(g)) for m, g in zip(maps, gts, strict=True)]
    total = counts[0]
    for c in counts[1:]:
        total = total + c
    return total.metrics()


def run_grid(cfg: Any, data: Any, crops: list, grid: dict) -> list[tuple[dict, dict, dict]]:
    """(combination, post-processed metrics, winner-takes-all metrics) of every combination on
    the training crops."""
    post = tasks.get("stereo").post_processing(cfg)
    results = []
    for values in itertools.product(*grid.values()):
        combo = dict(zip(grid, values, strict=True))
        matcher = build_matcher(model_spec(with_model(cfg, **combo), data))
        maps = [predict(matcher, lt, rt, md, post) for lt, rt, md, _ in crops]
        gts = [c[3] for c in crops]
        results.append(
            (combo, score([m["post"] for m in maps], gts), score([m["wta"] for m in maps], gts))
        )
    return results


def labelling_variants(cfg: Any, data: Any, crops: list) -> dict[str, dict[str, float]]:
    """Post-processed metrics on the training crops of ``cfg``'s SGBM with its holes labelled
    three ways: told apart by the left-right check against the right view's map
    (:func:`hole_labels`, shipped), all occlusions, all mismatches."""
    post = tasks.get("stereo").post_processing(cfg)
    matcher = build_matcher(model_spec(cfg, data))
    found: dict[str, list[np.ndarray]] = {"left-right check": [], "occlusion": [], "mismatch": []}
    for left, right, max_disp, _ in crops:
        kw = {"colour": cfg.model.colour, **matcher.sgbm}
        raw = torch.from_numpy(sgbm_disparity(left, right, max_disp, **kw))
        right_map = torch.from_numpy(sgbm_right_disparity(left, right, max_disp, **kw))
        hole = ~torch.isfinite(raw)
        labellings = {
            "left-right check": hole_labels(raw, right_map),
            "occlusion": torch.where(hole, OCCLUSION, OK),
            "mismatch": torch.where(hole, MISMATCH, OK),
        }
        for name, labels in labellings.items():
            out, _ = fill(raw, labels, num_disparities(max_disp), post)
            found[name].append(median_filter(out, post.median).numpy())
    gts = [c[3] for c in crops]
    return {name: score(maps, gts) for name, maps in found.items()}


def test_figures(cfg: Any, data: Any, post: Any) -> tuple[dict, dict]:
    """(post-processed, winner-takes-all) metrics of ``cfg``'s SGBM on the test pixels."""
    matcher = build_matcher(model_spec(cfg, data))
    maps, gts = {"post": [], "wta": []}, []
    for r in regions(cfg, data):
        if not (r.codes == TEST).any():
            continue
        pair = data[r.index]
        out = predict(matcher, pair.left, pair.right, pair.max_disp, post)
        for k in maps:
            maps[k].append(out[k])
        gts.append(np.where(r.codes == TEST, pair.disparity, np.nan).astype(np.float32))
    return score(maps["post"], gts), score(maps["wta"], gts)


def timings(params: dict, data: Any, repeat: int) -> dict[str, dict[str, float]]:
    """Median seconds for the first pair of each :data:`TIMED` experiment, with its post-processing
    and without any, run alternately after one warm-up each."""
    none = tasks.get("stereo").post_processing(
        tasks.experiment_config(params, "stereo_ncc")
    )  # sgm, lr_check, subpixel off, median 1
    pair = data[0]
    jobs: dict[tuple[str, str], Callable[[], object]] = {}
    for name in TIMED:
        cfg = tasks.experiment_config(params, name)
        matcher = build_matcher(model_spec(cfg, data)).eval()
        for kind, post in (("raw", none), ("post", tasks.get("stereo").post_processing(cfg))):
            jobs[(name, kind)] = lambda m=matcher, p=post: predict(
                m, pair.left, pair.right, pair.max_disp, p
            )
    for job in jobs.values():
        job()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in jobs}
    for _ in range(repeat):
        for key, job in jobs.items():
            t0 = time.perf_counter()
            job()
            times[key].append(time.perf_counter() - t0)
    out: dict[str, dict[str, float]] = {}
    for (name, kind), ts in times.items():
        out.setdefault(name, {})[kind] = statistics.median(ts)
    return out


def print_timings(params: dict, data: Any, args: argparse.Namespace) -> dict:
    repeat = 1 if args.quick else args.repeat
    times = timings(params, data, repeat)
    print(f"seconds for the full pair ({data.ids[0]}, {args.threads} threads, median of "
          f"{repeat}, run alternately):")  # fmt: skip
    for name, t in times.items():
        print(f"  {TIMED[name]:24s} ({name}): without post-processing {t['raw']:.3f} s, "
              f"with its post: {t['post']:.3f} s")  # fmt: skip
    return times


def _line(m: dict[str, float]) -> str:
    return f"acc3 {m['accuracy_3px']:.4f}  acc1 {m['accuracy_1px']:.4f}  EPE {m['epe']:.3f}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    p.add_argument("--experiment", default="stereo_sgbm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--top", type=int, default=10, help="combinations printed")
    p.add_argument("--quick", action="store_true", help="one combination, one repeat")
    p.add_argument("--times-only", action="store_true", help="step 4 alone")
    args = p.parse_args(argv)
    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    params = yaml.safe_load(args.params.read_text())
    cfg = tasks.experiment_config(params, args.experiment)
    if cfg.model.method != "sgbm":
        raise SystemExit(f"{args.experiment}: model.method is {cfg.model.method!r}, not sgbm")
    grid = {k: v[:1] for k, v in GRID.items()} if args.quick else GRID
    with tempfile.TemporaryDirectory() as tmp:
        data = tasks.load(cfg, dataset_dir(params, cfg.dataset, Path(tmp)))
        if args.times_only:
            return {"times": print_timings(params, data, args)}
        crops = training_crops(cfg, data)
        n_px = sum(int(np.isfinite(c[3]).sum()) for c in crops)
        print(
            f"SGBM grid for {args.experiment} on {cfg.dataset}: {len(crops)} pair(s), training "
            f"rows only ({n_px} pixels with ground truth), {args.threads} threads"
        )
        for k, v in grid.items():
            print(f"  model.{k}: {', '.join(map(str, v))}")
        t0 = time.perf_counter()
        results = run_grid(cfg, data, crops, grid)
        seconds = time.perf_counter() - t0
        results.sort(key=lambda r: (-r[1]["accuracy_3px"], r[1]["epe"]))
        print(f"{len(results)} combinations in {seconds:.0f} s; the best {args.top} by accuracy "
              "at 3 px after post-processing, then EPE (training rows):")  # fmt: skip
        for combo, m, w in results[: args.top]:
            print(f"  post {_line(m)} | wta acc3 {w['accuracy_3px']:.4f}  {combo}")
        for combo, m, w in results:
            if combo == BEFORE:
                print(f"  OpenCV's defaults (colour; rank {results.index((combo, m, w)) + 1}): "
                      f"post {_line(m)} | wta acc3 {w['accuracy_3px']:.4f}")  # fmt: skip
        best = results[0][0]
        flow = ", ".join(f"{k}: {str(v).lower()}" for k, v in best.items())
        print(f"winner: model: {{method: sgbm, {flow}}}")

        tuned = with_model(cfg, **best)
        print("hole labelling of the winner's SGBM map (training rows, post-processed):")
        for name, m in labelling_variants(tuned, data, crops).items():
            print(f"  {name:17s} {_line(m)}")

        post = tasks.get("stereo").post_processing(cfg)
        raw_post = dataclasses.replace(post, lr_check=False, median=1)
        print("test rows, after the choice (wta: SGBM's map, holes filled; post: + median):")
        before = with_model(cfg, **BEFORE)
        m, _ = test_figures(before, data, raw_post)
        print(f"  before (OpenCV defaults, colour), holes left  {_line(m)}  density "
              f"{m['density']:.4f}")  # fmt: skip
        for label, c in (("before, holes filled", before), ("winner", tuned)):
            m, w = test_figures(c, data, post)
            print(f"  {label:22s} wta  {_line(w)}")
            print(f"  {label:22s} post {_line(m)}")

        times = print_timings(params, data, args)
    return {"best": best, "results": results, "times": times}


if __name__ == "__main__":
    main()
