"""Random views: the warp geometry against exact pixel operations, and the randomness."""

import numpy as np
import pytest
import torch

from simlearn.augment import AffineParams, affine_theta, random_view, sample_affine, warp


def params(angle=0.0, scale=1.0, tx=0.0, ty=0.0, n=3):
    return AffineParams(
        *(torch.full((n,), float(v), dtype=torch.float64) for v in (angle, scale, tx, ty))
    )


@pytest.fixture
def images():
    return torch.rand(3, 2, 6, 8, generator=torch.Generator().manual_seed(0))


def test_identity_parameters_leave_images_unchanged(images):
    out = warp(images, affine_theta(params(), 6, 8))
    torch.testing.assert_close(out, images, atol=1e-6, rtol=0)


def test_a_shift_of_one_pixel_moves_every_pixel_right_and_down(images):
    right = warp(images, affine_theta(params(tx=1 / 8), 6, 8))
    torch.testing.assert_close(right[..., 1:], images[..., :-1], atol=1e-6, rtol=0)
    assert right[..., 0].abs().max() < 1e-6  # zeros enter from the left
    down = warp(images, affine_theta(params(ty=2 / 6), 6, 8))
    torch.testing.assert_close(down[..., 2:, :], images[..., :-2, :], atol=1e-6, rtol=0)


def test_a_quarter_turn_equals_rot90_counter_clockwise():
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    out = warp(x, affine_theta(params(angle=90.0, n=2), 6, 6))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)), atol=1e-6, rtol=0)


def test_zoom_by_two_reads_the_centre_pixels():
    # one bright pixel at the top-left of the central 2x2 block of an 8x8 image: zooming by 2
    # about the centre spreads it over the 2x2 block at the top-left of the central 4x4
    x = torch.zeros(1, 1, 8, 8)
    x[0, 0, 3, 3] = 1.0
    out = warp(x, affine_theta(params(scale=2.0, n=1), 8, 8))
    # output pixel (2, 2) reads input (2.75, 2.75): bilinear weight of (3, 3) is 0.75 * 0.75
    assert out[0, 0, 2, 2].item() == pytest.approx(0.5625, abs=1e-6)
    assert out[0, 0, 3, 3].item() == pytest.approx(0.5625, abs=1e-6)  # reads (3.25, 3.25)
    assert out.sum().item() == pytest.approx(4.0, abs=1e-5)  # area x4, so the mass x4


def test_parameters_are_per_sample_within_the_ranges():
    g = torch.Generator().manual_seed(0)
    p = sample_affine(5000, 10.0, 0.1, (0.9, 1.2), g)
    ranges = ((p.angle, -10, 10), (p.scale, 0.9, 1.2), (p.tx, -0.1, 0.1), (p.ty, -0.1, 0.1))
    for v, lo, hi in ranges:
        assert v.min() >= lo and v.max() <= hi
        assert v.std() > 0.2 * (hi - lo) / np.sqrt(12)  # spread, not one value for the batch
    assert not torch.equal(p.tx, p.ty)


def test_views_depend_on_the_generator_seed_alone(images):
    a = random_view(images, torch.Generator().manual_seed(7), flip_p=0.5, brightness=0.2)
    b = random_view(images, torch.Generator().manual_seed(7), flip_p=0.5, brightness=0.2)
    c = random_view(images, torch.Generator().manual_seed(8), flip_p=0.5, brightness=0.2)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == images.shape and a.min() >= 0 and a.max() <= 1
    # each image of the batch gets its own warp
    assert not torch.allclose(a[0] - images[0], a[1] - images[1])


def test_flip_with_probability_one_is_a_mirror(images):
    out = random_view(
        images,
        torch.Generator().manual_seed(0),
        degrees=0,
        translate=0,
        scale_range=(1, 1),
        flip_p=1.0,
    )
    torch.testing.assert_close(out, images.flip(-1), atol=1e-6, rtol=0)


def test_contrast_and_brightness_follow_their_formula():
    x = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.25
    g = torch.Generator().manual_seed(5)
    out = random_view(
        x, g, degrees=0, translate=0, scale_range=(1, 1), brightness=0.1, contrast=0.2
    )
    # redraw the same numbers: affine (4 draws of 4), then shift, then factor
    g = torch.Generator().manual_seed(5)
    sample_affine(4, 0, 0, (1, 1), g)
    shift = (2 * torch.rand(4, generator=g) - 1) * 0.1
    factor = 1 + (2 * torch.rand(4, generator=g) - 1) * 0.2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    want = ((x - mean) * factor.view(-1, 1, 1, 1) + mean + shift.view(-1, 1, 1, 1)).clamp(0, 1)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
