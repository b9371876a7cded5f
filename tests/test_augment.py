"""Random views: the warp geometry against exact pixel operations, the colour operations against
torchvision image by image, and the randomness; the sbir views (flip and shift, recolour) against
a per-image loop over the same draws."""

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from simlearn.augment import (
    AffineParams,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    affine_theta,
    blur_kernel_size,
    crop_theta,
    flip_and_shift,
    gaussian_blur,
    gaussian_kernels,
    random_view,
    recolour,
    rgb_to_grey,
    sample_affine,
    sample_crop,
    view_kwargs,
    warp,
)


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


# ----------------------------------------------------------------------------- digits views


def test_digits_views_are_those_of_before_the_colour_operations():
    # pinned from the module as it was before crop, jitter, greyscale and blur existed: a new
    # option that is off must draw no random number and change no pixel
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    v = random_view(x, torch.Generator().manual_seed(3))
    assert v.double().sum().item() == pytest.approx(104.25687035731971, abs=1e-4)
    want = [0.0999976396560669, 0.4006887972354889, 0.32502129673957825, 0.13964295387268066]
    assert v[1, 0, 4, :4].tolist() == pytest.approx(want, abs=1e-6)
    xc = torch.rand(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    w = random_view(
        xc,
        torch.Generator().manual_seed(4),
        degrees=30,
        translate=0.1,
        scale_range=(0.8, 1.3),
        flip_p=0.5,
        brightness=0.2,
        contrast=0.3,
    )
    assert w.double().sum().item() == pytest.approx(67.5244550332427, abs=1e-4)
    assert w[0, 2, 2, :3].tolist() == pytest.approx(
        [0.0, 0.6930173635482788, 0.0978017374873161], abs=1e-6
    )


def test_view_kwargs_of_the_default_config_give_the_default_views(images):
    from simlearn.config import AugmentConfig

    a = random_view(images, torch.Generator().manual_seed(2), **view_kwargs(AugmentConfig()))
    b = random_view(images, torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


# ----------------------------------------------------------------------------- colour views

NO_AFFINE = {"degrees": 0.0, "translate": 0.0, "scale_range": (1.0, 1.0)}
CIFAR = {**NO_AFFINE, "crop_scale": (0.08, 1.0), "flip_p": 0.5, "jitter": 0.5, "grey_p": 0.2}


@pytest.fixture
def rgb():
    return torch.rand(6, 3, 9, 11, generator=torch.Generator().manual_seed(0))


def per_image(fn, x, values):
    return torch.stack([fn(x[i], float(values[i])) for i in range(len(x))])


@pytest.mark.parametrize(
    ("ours", "theirs", "values"),
    [
        (adjust_brightness, TF.adjust_brightness, [0.0, 0.3, 0.7, 1.0, 1.4, 1.9]),
        (adjust_contrast, TF.adjust_contrast, [0.0, 0.3, 0.7, 1.0, 1.4, 1.9]),
        (adjust_saturation, TF.adjust_saturation, [0.0, 0.3, 0.7, 1.0, 1.4, 1.9]),
        (adjust_hue, TF.adjust_hue, [-0.5, -0.2, 0.0, 0.1, 0.3, 0.5]),
    ],
    ids=["brightness", "contrast", "saturation", "hue"],
)
def test_colour_operations_match_torchvision_image_by_image(rgb, ours, theirs, values):
    got = ours(rgb, torch.tensor(values))
    torch.testing.assert_close(got, per_image(theirs, rgb, values), atol=2e-6, rtol=0)


def test_grey_and_blur_match_torchvision(rgb):
    torch.testing.assert_close(rgb_to_grey(rgb), TF.rgb_to_grayscale(rgb), atol=1e-6, rtol=0)
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.7], dtype=torch.float64)
    got = gaussian_blur(rgb, gaussian_kernels(sigma, 5))
    want = torch.stack(
        [TF.gaussian_blur(rgb[i], [5, 5], [float(sigma[i])] * 2) for i in range(len(rgb))]
    )
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_each_operation_at_its_identity_setting_is_the_identity(rgb):
    n = len(rgb)
    ones, zeros = torch.ones(n), torch.zeros(n)
    for op in (adjust_brightness, adjust_contrast, adjust_saturation):
        assert torch.equal(op(rgb, ones), rgb)
    torch.testing.assert_close(adjust_hue(rgb, zeros), rgb, atol=1e-6, rtol=0)
    assert torch.equal(gaussian_blur(rgb, gaussian_kernels(zeros.double(), 3)), rgb)
    whole = torch.tensor([[0.0, 0.0, 1.0, 1.0]] * n, dtype=torch.float64)
    torch.testing.assert_close(warp(rgb, crop_theta(whole), "border"), rgb, atol=1e-6, rtol=0)
    # and through random_view: a crop of the whole image (scale 1, the image's own ratio),
    # jitter never applied, blur of sigma 0 always applied
    out = random_view(
        rgb,
        torch.Generator().manual_seed(0),
        **NO_AFFINE,
        crop_scale=(1.0, 1.0),
        crop_ratio=(11 / 9, 11 / 9),
        jitter=0.5,
        jitter_p=0.0,
        blur_p=1.0,
        blur_sigma=(0.0, 0.0),
    )
    torch.testing.assert_close(out, rgb, atol=1e-6, rtol=0)


def test_greyscale_gives_equal_channels(rgb):
    out = random_view(rgb, torch.Generator().manual_seed(0), **NO_AFFINE, grey_p=1.0)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    torch.testing.assert_close(out[:, :1], rgb_to_grey(rgb), atol=1e-6, rtol=0)
    # with p = 0.5, some images are grey and the others untouched
    out = random_view(rgb, torch.Generator().manual_seed(1), **NO_AFFINE, grey_p=0.5)
    is_grey = [bool((o[0] == o[1]).all() and (o[1] == o[2]).all()) for o in out]
    assert 0 < sum(is_grey) < len(out)
    for o, x, g in zip(out, rgb, is_grey, strict=True):
        if not g:
            torch.testing.assert_close(o, x, atol=1e-6, rtol=0)


def test_hue_by_a_whole_turn_is_the_identity_and_a_third_turns_red_to_green(rgb):
    torch.testing.assert_close(adjust_hue(rgb, torch.ones(len(rgb))), rgb, atol=1e-5, rtol=0)
    torch.testing.assert_close(adjust_hue(rgb, -torch.ones(len(rgb))), rgb, atol=1e-5, rtol=0)
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 0.8
    green = adjust_hue(red, torch.tensor([1 / 3]))
    torch.testing.assert_close(green[0, :, 0, 0], torch.tensor([0.0, 0.8, 0.0]), atol=1e-6, rtol=0)


def test_crop_boxes_are_per_sample_inside_the_image_and_within_the_ranges():
    g = torch.Generator().manual_seed(0)
    boxes = sample_crop(4000, (0.08, 1.0), (3 / 4, 4 / 3), 32, 40, g)
    x0, y0, w, h = boxes.unbind(1)
    assert (x0 >= 0).all() and (y0 >= 0).all()
    assert (x0 + w <= 1 + 1e-12).all() and (y0 + h <= 1 + 1e-12).all()
    area, ratio = w * h, (w * 40) / (h * 32)
    assert area.min() >= 0.08 - 1e-12 and area.max() <= 1 + 1e-12
    assert ratio.min() >= 3 / 4 - 1e-9 and ratio.max() <= 4 / 3 + 1e-9
    assert area.std() > 0.2 and x0.std() > 0.05  # spread, not one box for the batch
    # no draw fits (area 1 at ratio 2 on a square image): the centred box narrowed to ratio 2
    fallback = sample_crop(3, (1.0, 1.0), (2.0, 3.0), 10, 10, torch.Generator().manual_seed(0))
    want = torch.tensor([[0.0, 0.25, 1.0, 0.5]] * 3, dtype=torch.float64)
    torch.testing.assert_close(fallback, want)


def test_crop_reads_the_box_as_torchvisions_resized_crop():
    x = torch.rand(3, 3, 9, 11, generator=torch.Generator().manual_seed(0))
    boxes_px = [(1, 2, 5, 4), (0, 0, 9, 11), (3, 4, 6, 7)]  # top, left, height, width
    boxes = torch.tensor([[lt / 11, t / 9, w / 11, hh / 9] for t, lt, hh, w in boxes_px])
    out = warp(x, crop_theta(boxes.double()), "border")
    for i, (t, lt, hh, w) in enumerate(boxes_px):
        want = TF.resized_crop(x[i], t, lt, hh, w, [9, 11], antialias=False)
        # torchvision clamps at the box edge, grid_sample reads the pixel beyond it: equal
        # wherever the source point lies between the box's outer pixel centres
        ys = t + (torch.arange(9) + 0.5) * hh / 9 - 0.5
        xs = lt + (torch.arange(11) + 0.5) * w / 11 - 0.5
        inside = ((ys >= t) & (ys <= t + hh - 1)).view(-1, 1) & ((xs >= lt) & (xs <= lt + w - 1))
        assert inside.sum() >= 20
        torch.testing.assert_close(out[i][:, inside], want[:, inside], atol=1e-5, rtol=0)


def test_jitter_equals_torchvision_applied_in_each_images_own_order():
    x = torch.rand(40, 3, 5, 5, generator=torch.Generator().manual_seed(2))
    s, p = 0.5, 0.8
    out = random_view(x, torch.Generator().manual_seed(9), **NO_AFFINE, jitter=s)
    # redraw the numbers in the documented order: affine, then apply, factors, order keys
    g = torch.Generator().manual_seed(9)
    sample_affine(40, 0, 0, (1, 1), g)
    apply = torch.rand(40, generator=g) < p
    u = torch.rand(40, 4, generator=g, dtype=torch.float64)
    order = torch.argsort(torch.rand(40, 4, generator=g), dim=1)
    lo = 1 - 0.8 * s
    ops = [
        lambda im, v: TF.adjust_brightness(im, lo + (1.6 * s) * v),
        lambda im, v: TF.adjust_contrast(im, lo + (1.6 * s) * v),
        lambda im, v: TF.adjust_saturation(im, lo + (1.6 * s) * v),
        lambda im, v: TF.adjust_hue(im, (2 * v - 1) * 0.2 * s),
    ]
    orders = set()
    for i in range(40):
        want = x[i]
        if apply[i]:
            orders.add(tuple(order[i].tolist()))
            for op in order[i].tolist():
                want = ops[op](want, float(u[i, op]))
        torch.testing.assert_close(out[i], want, atol=2e-6, rtol=0)
    assert 0 < int(apply.sum()) < 40 and len(orders) > 5  # per-image coin and order


def test_blur_equals_torchvision_image_by_image():
    x = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    out = random_view(x, torch.Generator().manual_seed(5), **NO_AFFINE, blur_p=0.5)
    g = torch.Generator().manual_seed(5)
    sample_affine(12, 0, 0, (1, 1), g)
    blurred = torch.rand(12, generator=g) < 0.5
    sigma = 0.1 + 1.9 * torch.rand(12, generator=g, dtype=torch.float64)
    assert blur_kernel_size(32, 32) == 3 and blur_kernel_size(224, 224) == 23
    for i in range(12):
        want = TF.gaussian_blur(x[i], [3, 3], [float(sigma[i])] * 2) if blurred[i] else x[i]
        torch.testing.assert_close(out[i], want, atol=1e-6, rtol=0)
    assert 0 < int(blurred.sum()) < 12


def test_views_within_one_batch_differ_in_their_parameters():
    # one image repeated: any two views that differ got different parameters
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)).expand(16, -1, -1, -1)
    out = random_view(x.contiguous(), torch.Generator().manual_seed(1), **CIFAR)
    flat = out.flatten(1)
    diff = (flat[:, None] - flat[None]).abs().amax(-1)  # (16, 16)
    assert (diff + torch.eye(16) > 1e-3).all()


def test_the_same_seed_gives_the_same_colour_views(rgb):
    kw = {**CIFAR, "blur_p": 0.5}
    a = random_view(rgb, torch.Generator().manual_seed(7), **kw)
    b = random_view(rgb, torch.Generator().manual_seed(7), **kw)
    c = random_view(rgb, torch.Generator().manual_seed(8), **kw)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == rgb.shape and a.min() >= 0 and a.max() <= 1


def test_colour_operations_need_rgb(images):
    with pytest.raises(ValueError, match="need RGB images"):
        random_view(images, torch.Generator().manual_seed(0), jitter=0.5)


# ----------------------------------------------------------------------------- sbir views


def test_flip_and_shift_is_a_replicate_padded_crop_of_each_image_or_its_mirror():
    """Per image, from the same draws in the same order (B flips, B row shifts, B column
    shifts): the image, mirrored when its flip is set, edge-padded by pad = max(1, H // 16) and
    cropped at (dy, dx)."""
    x = torch.rand(8, 2, 20, 12, generator=torch.Generator().manual_seed(0))
    out = flip_and_shift(x, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    flip = torch.rand(8, generator=g) < 0.5
    pad = 1  # max(1, 20 // 16)
    dy = torch.randint(0, 2 * pad + 1, (8,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (8,), generator=g)
    assert out.shape == x.shape
    for i in range(8):
        img = x[i].numpy()[:, :, ::-1] if flip[i] else x[i].numpy()
        padded = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), mode="edge")
        want = padded[:, int(dy[i]) : int(dy[i]) + 20, int(dx[i]) : int(dx[i]) + 12]
        np.testing.assert_array_equal(out[i].numpy(), want)
    assert 0 < int(flip.sum()) < 8 and len(set(zip(dy.tolist(), dx.tolist(), strict=True))) > 1


def test_flip_and_shift_shifts_up_to_a_sixteenth_of_the_side():
    x = torch.zeros(64, 1, 64, 64)
    x[:, :, 32, 20] = 1.0  # one bright pixel away from the border
    out = flip_and_shift(x, torch.Generator().manual_seed(0))
    ys, xs = [], []
    for i in range(64):
        ((y, c),) = torch.nonzero(out[i, 0]).tolist()
        ys.append(y - 32)
        xs.append(min(abs(c - 20), abs(c - 43)))  # 43: the pixel's column in the mirror
    assert set(ys) == set(range(-4, 5))  # pad = 64 // 16 = 4: every shift occurs, none larger
    assert max(xs) <= 4


def test_recolour_permutes_channels_or_negates_each_photo():
    x = torch.rand(16, 3, 4, 4)
    out = recolour(x, torch.Generator().manual_seed(0))
    # the same draws, in the same order: (B, 3) uniforms whose argsort is the permutation, then
    # B coins for the negative
    g = torch.Generator().manual_seed(0)
    perm = torch.argsort(torch.rand(16, 3, generator=g), dim=1)
    neg = torch.rand(16, generator=g) < 0.5
    for i in range(16):
        want = x[i][perm[i]]
        torch.testing.assert_close(out[i], 1.0 - want if neg[i] else want, atol=0, rtol=0)
    assert 0 < int(neg.sum()) < 16  # both kinds occur
    assert len({tuple(p) for p in perm.tolist()}) > 1
