"""HOG of a batch: ``simlearn.models.two_tower.hog_batch`` against ``skimage.feature.hog`` called
image by image (what ``embed@sbir_edge_hog`` did before), on the same images.

Images: ``--n`` (default 7,680, the size of ``sketch_synthetic``) 48 x 48 images, the
``sbir_edge_hog`` input size: half binary edge maps (as Canny gives for photos), half float32
greyscale (as the inverted sketches are). The two are timed alternately ``--repeat`` times on the
same process, and the medians and their ratio printed; the outputs are checked equal.

Run: ``python benchmarks/bench_hog.py [--n 7680] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from skimage.feature import hog

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from simlearn.models.two_tower import hog_batch  # noqa: E402


def skimage_loop(images: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            hog(
                img,
                orientations=9,
                pixels_per_cell=(8, 8),
                cells_per_block=(2, 2),
                block_norm="L2-Hys",
                feature_vector=True,
            )
            for img in images
        ]  # fmt: skip
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=7680)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    half = args.n // 2
    inputs = {
        "edge maps (float64)": (rng.random((half, 48, 48)) > 0.85).astype(np.float64),
        "greyscale (float32)": rng.random((args.n - half, 48, 48)).astype(np.float32),
    }
    times: dict[str, list[float]] = {"skimage, one image at a time": [], "hog_batch": []}
    for _ in range(args.repeat):
        for name, fn in (("skimage, one image at a time", skimage_loop), ("hog_batch", hog_batch)):
            t0 = time.perf_counter()
            for x in inputs.values():
                fn(x)
            times[name].append(time.perf_counter() - t0)
    for x in inputs.values():  # equal outputs, checked once on every image
        np.testing.assert_array_equal(hog_batch(x), skimage_loop(x))
    print(f"HOG of {args.n} images of 48x48 px (9 orientations, 8 px cells, 2x2 blocks, L2-Hys)")
    med = {k: statistics.median(v) for k, v in times.items()}
    for k, v in times.items():
        print(f"  {k:30s} median {med[k]:6.2f} s  runs " + " ".join(f"{t:.2f}" for t in v))
    ratio = med["skimage, one image at a time"] / med["hog_batch"]
    print(f"  speed-up {ratio:.1f}x; outputs bit-identical")


if __name__ == "__main__":
    main()
