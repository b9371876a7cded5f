"""Retrieval on classes never seen in training: trained models against raw pixels and LDA, over
several choices of held-out classes and several seeds.

Run: ``python benchmarks/bench_unseen.py [--dataset digits] [--seeds 2] [--holdouts 789 012 ...]``.

``--dataset`` names an entry of ``datasets:`` in params.yaml (``mnist`` once it is declared there);
``data/<dataset>`` is used when ``dvc repro`` has built it, else it is built in a temporary folder
(remote sources fetch into ``downloads/``, as the download stage does).

For each held-out set, every method is fitted or trained on the other classes of the training
split (the experiments' params, with ``holdout_classes`` set), then the held-out
classes' test images are embedded and ranked among themselves: mAP over those queries, the
``unseen_map`` of ``evaluate``. One line per method, one column per held-out set (mean over
seeds), then the mean and how many held-out sets it wins against raw pixels. Takes about 5 minutes
on 2 CPU cores for digits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from simlearn import tasks  # noqa: E402
from simlearn.config import dataset_config  # noqa: E402
from simlearn.data.image_dataset import load_image_dataset  # noqa: E402
from simlearn.data.sources import build_dataset  # noqa: E402
from simlearn.evaluation import retrieval_metrics  # noqa: E402
from simlearn.models import embed_images  # noqa: E402
from simlearn.tasks import experiment_config  # noqa: E402

#: method -> the experiment in params.yaml whose section it uses
METHODS = {
    "raw pixels": "raw",
    "lda": "lda",
    "mahalanobis": "mahalanobis",
    "batch_hard": "batch_hard",
    "supcon": "supcon",
    "snn": "snn",
    "simclr": "simclr",
}


def section_for(params: dict, method: str, dataset: str) -> dict:
    """The params section a method uses: ``<key>_unseen`` when it is declared for ``dataset``
    (params tuned on that dataset's validation split), else ``<key>``."""
    key = METHODS[method]
    tuned = params["experiments"].get(f"{key}_unseen")
    if tuned and tuned.get("dataset") == dataset:
        return dict(tuned)
    return dict(params["experiments"][key])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--holdouts", nargs="+", default=["789", "012", "345", "169"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = ap.parse_args()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    holdouts = [[int(c) for c in h] for h in args.holdouts]
    with tempfile.TemporaryDirectory() as tmp:
        built = ROOT / "data" / args.dataset
        if not (built / "manifest.parquet").exists():
            cfg_ds, _ = dataset_config(params, args.dataset)
            built = Path(tmp) / args.dataset
            build_dataset(args.dataset, cfg_ds, built, ROOT / "downloads" / cfg_ds.source)
        ds = load_image_dataset(built)
        test = ds.indices("test")
        print(f"unseen-class mAP on {args.dataset} test, mean over {args.seeds} seed(s)")
        print(
            f"{'method':<12}"
            + "".join(f"{'held out ' + h:>14}" for h in args.holdouts)
            + f"{'mean':>8}{'wins vs raw':>13}{'seconds':>9}"
        )
        raw = None
        for method in args.methods:
            t0 = time.perf_counter()
            scores = np.zeros((len(holdouts), args.seeds))
            for i, h in enumerate(holdouts):
                unseen = test[np.isin(ds.labels[test], h)]
                for seed in range(args.seeds):
                    section = section_for(params, method, args.dataset)
                    section.update(seed=seed, holdout_classes=h, dataset=args.dataset)
                    sampler = dict(section.get("sampler", {}))
                    if sampler.get("name", "pk") == "pk":  # P x K batches: P <= seen classes
                        sampler["classes_per_batch"] = min(
                            sampler.get("classes_per_batch", 10), ds.num_classes - len(h)
                        )
                        section["sampler"] = sampler
                    cfg = experiment_config(
                        {"datasets": params["datasets"], "experiments": {"e": section}}, "e"
                    )
                    with tempfile.TemporaryDirectory(dir=tmp) as ck:  # never resume
                        model = tasks.train(cfg, built, checkpoint_dir=ck).model
                    emb = embed_images(model, ds.images[unseen])
                    scores[i, seed] = retrieval_metrics(
                        emb, ds.labels[unseen], distance=cfg.eval.distance
                    ).summary()["map"]
                    if cfg.model.shallow:  # fitted in closed form: seeds change nothing
                        scores[i, seed:] = scores[i, seed]
                        break
            per_set = scores.mean(axis=1)
            raw = per_set if method == "raw pixels" else raw
            wins = (
                ""
                if raw is None or method == "raw pixels"
                else (f"{int((per_set > raw).sum())}/{len(holdouts)}")
            )
            print(
                f"{method:<12}"
                + "".join(f"{v:>14.4f}" for v in per_set)
                + f"{per_set.mean():>8.4f}{wins:>13}{time.perf_counter() - t0:>9.0f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
