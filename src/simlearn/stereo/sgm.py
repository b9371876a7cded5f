"""Semi-global matching over any cost volume, vectorised in torch (CPU and GPU).

H. Hirschmueller, "Stereo Processing by Semiglobal Matching and Mutual Information", IEEE TPAMI
30(2), 2008. Along each path direction r the aggregated cost is

    L_r(p, d) = C(p, d) + min( L_r(p - r, d),
                               L_r(p - r, d - 1) + P1,
                               L_r(p - r, d + 1) + P1,
                               min_k L_r(p - r, k) + P2 ) - min_k L_r(p - r, k)

and the paths are summed: ``S(p, d) = sum_r L_r(p, d)``. A path starts at the image border with
``L_r(p, d) = C(p, d)``.

Why this file exists: OpenCV's StereoSGBM (and every maintained SGM we know of) computes its own
block costs; none aggregates a given, learned cost volume, and none runs on the GPU from torch.

How it is vectorised: the recurrence is sequential along a path, so the loop runs over the steps
of the paths (columns for the horizontal directions, rows for the others), and each step updates
every path of those directions and every disparity at once: both horizontal directions share one
loop over columns, and the vertical and diagonal directions one loop over rows (a diagonal is a
vertical path whose predecessor is shifted by one column; a path entering from the side starts
from ``L = 0``, which gives ``L_r = C`` at its first pixel, as at the border). On the
motorcycle pair (68 x 500 x 741) the first version, which gathered every step's pixels through an
index table and scattered them back with ``index_add_``, took 19 s on 2 CPU cores; slicing
contiguous rows and columns is what makes it fast (see benchmarks/bench_stereo.py).
"""

from __future__ import annotations

import torch

#: path directions (dy, dx): 4 paths are the horizontal and vertical ones, 8 add the diagonals
DIRECTIONS = {
    4: ((0, 1), (0, -1), (1, 0), (-1, 0)),
    8: ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1)),
}


def _step(prev: torch.Tensor, cost: torch.Tensor, p1: float, p2: float) -> torch.Tensor:
    """One step of the recurrence for a batch of paths: prev, cost (..., D) -> L (..., D)."""
    m = prev.amin(dim=-1, keepdim=True)  # (..., 1)
    best = torch.minimum(prev, m + p2)
    near = prev + p1
    best[..., :-1] = torch.minimum(best[..., :-1], near[..., 1:])  # from d + 1
    best[..., 1:] = torch.minimum(best[..., 1:], near[..., :-1])  # from d - 1
    return cost + best - m


def _shift_columns(prev: torch.Tensor, dx: int) -> torch.Tensor:
    """prev (W, D) of row y - 1 -> the predecessor of each pixel of row y along a path moving dx
    columns per row: column x reads column x - dx; a path entering from the side reads 0."""
    out = torch.zeros_like(prev)
    if dx > 0:
        out[dx:] = prev[:-dx]
    else:
        out[:dx] = prev[-dx:]
    return out


def sgm(cost: torch.Tensor, p1: float, p2: float, paths: int = 4) -> torch.Tensor:
    """Aggregate a cost volume along ``paths`` directions (4 or 8).

    Args:
        cost: (D, H, W) matching costs, finite (see
            :func:`~simlearn.stereo.cost_volume.similarity_to_cost`).
        p1: penalty for a disparity change of one pixel between neighbours.
        p2: penalty for a larger change (``p2 >= p1``).
        paths: 4 (horizontal and vertical) or 8 (and the diagonals).

    Returns:
        (D, H, W) float32 aggregated costs ``sum_r L_r``, on ``cost``'s device.
    """
    if paths not in DIRECTIONS:
        raise ValueError(f"paths={paths}: allowed 4 or 8")
    if not 0 <= p1 <= p2:
        raise ValueError(f"p1={p1}, p2={p2}: need 0 <= p1 <= p2")
    if not torch.isfinite(cost).all():
        raise ValueError("sgm: the cost volume has non-finite entries")
    d, h, w = cost.shape
    c = cost.float()
    threads = torch.get_num_threads()
    if c.device.type == "cpu":
        # each step is a small tensor (2 x H x D): with several OpenMP threads the fork/join per
        # op costs more than it saves (one step: 0.48 ms on 1 thread, 1.8-66 ms on 2 busy cores)
        torch.set_num_threads(1)
    try:
        return _aggregate(c, p1, p2, paths)
    finally:
        torch.set_num_threads(threads)


def _aggregate(c: torch.Tensor, p1: float, p2: float, paths: int) -> torch.Tensor:
    d, h, w = c.shape

    # horizontal: steps are columns; batch = (2 directions, H rows)
    ch = c.permute(2, 1, 0)  # (W, H, D)
    hor = torch.stack([ch, ch.flip(0)], dim=1).contiguous()  # (W, 2, H, D): L->R, R->L
    prev = torch.zeros(2, h, d, device=c.device)
    for x in range(w):
        prev = _step(prev, hor[x], p1, p2)
        hor[x] = prev
    total = (hor[:, 0] + hor[:, 1].flip(0)).permute(2, 1, 0)  # (D, H, W)
    del hor

    # vertical (and diagonal): steps are rows; batch = (directions, W columns)
    down = [dx for dy, dx in DIRECTIONS[paths] if dy == 1]  # 0, then +-1 for the diagonals
    up = [dx for dy, dx in DIRECTIONS[paths] if dy == -1]
    cv = c.permute(1, 2, 0)  # (H, W, D)
    k = len(down)
    ver = torch.cat(
        [cv.unsqueeze(1).expand(h, k, w, d), cv.flip(0).unsqueeze(1).expand(h, k, w, d)], 1
    )
    ver = ver.contiguous()  # (H, 2k, W, D): top->bottom paths, then bottom->top paths
    shifts = down + up
    prev = torch.zeros(2 * k, w, d, device=c.device)
    for y in range(h):
        if any(shifts):
            prev = torch.stack(
                [p if s == 0 else _shift_columns(p, s) for p, s in zip(prev, shifts, strict=True)]
            )
        prev = _step(prev, ver[y], p1, p2)
        ver[y] = prev
    total += (ver[:, :k].sum(1) + ver[:, k:].sum(1).flip(0)).permute(2, 0, 1)
    return total
