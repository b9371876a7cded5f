"""Left-right check, hole filling, sub-pixel refinement and median filter on worked examples."""

from __future__ import annotations

import numpy as np
import torch

from simlearn.stereo.refine import (
    MISMATCH,
    OCCLUSION,
    OK,
    fill_holes,
    left_right_check,
    median_filter,
    out_of_view,
    right_disparity,
    subpixel,
)


def test_right_disparity_is_the_diagonal_search_of_the_left_volume():
    rng = np.random.default_rng(0)
    cost = rng.random((4, 3, 9))
    got = right_disparity(torch.from_numpy(cost)).numpy()
    for y in range(3):
        for xr in range(9):
            cands = [(cost[d, y, xr + d], d) for d in range(4) if xr + d < 9]
            assert got[y, xr] == min(cands)[1]


def test_left_right_check_labels_ok_occlusion_and_mismatch():
    # one row; the right view's disparities
    dr = torch.tensor([[0, 0, 3, 3, 3, 3, 3, 3]])
    dl = torch.tensor([[0, 5, 1, 2, 3, 3, 3, 1]])
    labels = left_right_check(dl, dr)[0].tolist()
    want = []
    for x in range(8):
        d = int(dl[0, x])
        ok = x - d >= 0 and abs(d - int(dr[0, x - d])) <= 1
        if ok:
            want.append(OK)
        elif any(x - k >= 0 and int(dr[0, x - k]) == k for k in range(6)):
            want.append(MISMATCH)
        else:
            want.append(OCCLUSION)
    assert labels == want
    # x=1 looks outside the right image, but d=0 would be consistent: a mismatch; x=3 (d=2)
    # has no consistent disparity at all: an occlusion
    assert labels[1] == MISMATCH and labels[3] == OCCLUSION and labels[0] == OK


def test_fill_holes_takes_left_for_occlusion_and_median_for_mismatch():
    d = torch.tensor(
        [
            [1.0, 1.0, 1.0, 1.0, 1.0],
            [2.0, 9.0, 8.0, 7.0, 6.0],
            [3.0, 3.0, 3.0, 3.0, 3.0],
        ]
    )
    labels = torch.zeros(3, 5, dtype=torch.int64)
    labels[1, 1] = OCCLUSION  # nearest OK on the left: 2
    labels[1, 3] = MISMATCH  # nearest OK: left 8, right 6, up 1, down 3
    out = fill_holes(d, labels)
    assert out[1, 1] == 2.0
    assert out[1, 3] == 3.0  # of (8, 6, 1, 3), torch's nanmedian takes the lower middle value
    keep = labels == OK
    assert torch.equal(out[keep], d[keep])


def test_subpixel_finds_the_vertex_of_a_parabola():
    true = 2.3
    ds = torch.arange(6, dtype=torch.float32)
    cost = ((ds - true) ** 2).view(6, 1, 1).expand(6, 2, 2).contiguous()
    out = subpixel(cost, torch.full((2, 2), 2.0))
    assert torch.allclose(out, torch.full((2, 2), true), atol=1e-5)
    # the ends of the range keep their integer disparity
    assert float(subpixel(cost, torch.zeros(2, 2))[0, 0]) == 0.0


def test_median_filter_matches_numpy_inside_and_skips_nan():
    rng = np.random.default_rng(0)
    img = rng.random((7, 8)).astype(np.float32)
    out = median_filter(torch.from_numpy(img), 3).numpy()
    for y in range(1, 6):
        for x in range(1, 7):
            win = np.sort(img[y - 1 : y + 2, x - 1 : x + 2].ravel())
            assert out[y, x] == win[4]
    img[3, 3] = np.nan
    out = median_filter(torch.from_numpy(img), 3).numpy()
    assert np.isfinite(out).all()


def test_out_of_view_extends_the_first_full_range_disparity_to_the_border():
    # D = 6: columns 0..4 are the band where not every disparity could be searched
    d = torch.tensor(
        [[1.0, 1.0, 2.0, 9.0, 1.0, 4.0, 4.0, 4.0], [0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]]
    )
    labels = torch.zeros(2, 8, dtype=torch.int64)
    labels[0, 5] = MISMATCH  # the first OK pixel outside the band in row 0 is x = 6 (d = 4)
    mask, values = out_of_view(d, labels, num_disp=6)
    # row 0: x + 1 < 4 for x = 0, 1, 2 -> out of view with d = 4
    # row 1: d_R = 2 > x + 1 only at x = 0
    assert mask.tolist() == [[True, True, True, False, False, False, False, False],
                             [True, False, False, False, False, False, False, False]]  # fmt: skip
    assert values[0, 0] == 4.0 and values[1, 0] == 2.0
