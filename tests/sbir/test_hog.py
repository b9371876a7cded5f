"""hog_batch equals skimage.feature.hog image by image, bit for bit."""

import numpy as np
import pytest
from skimage.feature import hog

from simlearn.models.two_tower import hog_batch


def _skimage(images, orientations, cell):
    return np.stack(
        [
            hog(
                img,
                orientations=orientations,
                pixels_per_cell=(cell, cell),
                cells_per_block=(2, 2),
                block_norm="L2-Hys",
                feature_vector=True,
            )
            for img in images
        ]  # fmt: skip
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("size", "orientations", "cell"), [(48, 9, 8), (45, 7, 7), (30, 9, 6)])
def test_hog_batch_is_skimage_s_hog(dtype, size, orientations, cell):
    rng = np.random.default_rng(size + cell)
    images = rng.random((24, size, size)).astype(dtype)
    images[:8] = images[:8] > 0.85  # binary, like Canny edge maps
    images[8] = 0  # blank: every block normalises a zero histogram
    images[9, :, size // 2 :] = 1  # one vertical step edge: angles exactly 0
    images[10] = np.triu(np.ones((size, size)))  # a diagonal edge: angles exactly 45 and 135
    expected = _skimage(images, orientations, cell)
    got = hog_batch(images, orientations=orientations, cell=cell)
    assert got.dtype == expected.dtype == dtype
    assert got.shape == expected.shape == (24, (size // cell - 1) ** 2 * 4 * orientations)
    np.testing.assert_array_equal(got, expected)


def test_hog_batch_names_an_image_too_small_for_one_block():
    with pytest.raises(ValueError, match="no block of 2x2 cells of 8 px"):
        hog_batch(np.zeros((2, 15, 40)), cell=8)
