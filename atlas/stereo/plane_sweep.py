"""Plane-sweep stereo for one reference view against a few neighbours.

Depth hypotheses of the reference camera induce the warp
``p_src ~ K_s (R K_r^-1 p + t / d)`` (R, t: reference -> source camera). The coarse
sweep tests fronto-parallel planes spaced evenly in inverse depth, the same for every
pixel; a refinement tests per-pixel hypotheses around a coarse depth (see
:func:`refine_depth`). Every neighbour is warped onto every hypothesis at once with
``grid_sample``; the matching cost is 1 - NCC over a square window (box filters); per
hypothesis the best ``top_k`` neighbour costs are averaged (robust to occlusion);
optionally the volume is regularised by semi-global aggregation
(:mod:`atlas.stereo.sgm`); the winner takes all, refined to sub-plane precision by a
parabola through its neighbours' costs.

Confidence is the probability mass within one hypothesis of the winner under a softmax
of the negative aggregated cost (temperature ``cfg.temperature``): near 1 for a sharp,
unique minimum, near 3 / D for a flat cost curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from atlas.stereo.sgm import semi_global

INVALID_COST = 2.0  # 1 - NCC lies in [0, 2]


@dataclass
class SweepConfig:
    """n_planes: planes between min_depth and max_depth (metres), even in inverse depth;
    window: NCC window side in pixels (odd); top_k: neighbour costs averaged per plane;
    max_cost: best cost above it is rejected; max_ratio: best cost over the best cost
    outside +-2 planes of it, above it the match is ambiguous; min_std: reference
    window intensity standard deviation (0-1 scale) below it is too flat to match;
    sgm: regularise the cost volume by semi-global aggregation with penalties
    sgm_p1 (one-plane steps) and sgm_p2 (larger jumps, halved at an intensity step of
    sgm_edge); temperature: softmax temperature of the confidence (cost units);
    min_confidence: confidence below it is rejected."""

    n_planes: int = 64
    min_depth: float = 0.3
    max_depth: float = 5.0
    window: int = 9
    top_k: int = 2
    max_cost: float = 0.8
    max_ratio: float = 0.97
    min_std: float = 0.01
    sgm: bool = False
    sgm_p1: float = 0.03
    sgm_p2: float = 0.3
    sgm_edge: float = 0.05
    temperature: float = 0.05
    min_confidence: float = 0.0


@dataclass
class SweepResult:
    """depth: (H, W) metres (0 where rejected); cost: (H, W) best aggregated cost;
    confidence: (H, W) in [0, 1] (0 where rejected); raw_depth: (H, W) unfiltered."""

    depth: torch.Tensor
    cost: torch.Tensor
    confidence: torch.Tensor
    raw_depth: torch.Tensor


def _window_sum(x: torch.Tensor, window: int, dim: int) -> torch.Tensor:
    """Sum over the ``window`` (odd) consecutive entries centred on each one along
    ``dim`` (zero outside), from one cumulative sum: O(1) per entry whatever the window,
    and no padded copy of ``x``."""
    half = window // 2
    n = x.shape[dim]
    if n <= half:  # every window spans the whole axis
        return x.sum(dim, keepdim=True).expand_as(x).clone()
    c = torch.cumsum(x, dim=dim)
    out = torch.empty_like(x)
    # out[i] = c[min(i + half, n - 1)] - c[i - half - 1], the latter 0 for i <= half
    out.narrow(dim, 0, n - half).copy_(c.narrow(dim, half, n - half))
    out.narrow(dim, n - half, half).copy_(
        c.narrow(dim, n - 1, 1).expand_as(out.narrow(dim, n - half, half))
    )
    if n > half + 1:
        out.narrow(dim, half + 1, n - half - 1).sub_(c.narrow(dim, 0, n - half - 1))
    return out


def _sums(x: torch.Tensor, window: int) -> torch.Tensor:
    """Sum over a ``window`` square around each pixel, clipped at the image borders;
    x: (N, 1, H, W)."""
    return _window_sum(_window_sum(x, window, -1), window, -2)


def _window_inside(inside: torch.Tensor, window: int) -> torch.Tensor:
    """(N, H, W) bool: the whole ``window`` square around the pixel (clipped at the
    reference image's borders) warped from inside the source image, given where each
    pixel did (``inside``, (N, H, W) bool). A homography maps the square to a convex
    quadrilateral, inside the (convex) image exactly when its four corners are."""
    half = window // 2
    # edge replication: a corner off the image is the clipped window's corner
    padded = F.pad(inside[:, None].float(), (half,) * 4, mode="replicate")[:, 0] > 0.5
    h, w = inside.shape[-2:]
    out = torch.ones_like(inside)
    for dv in (0, 2 * half):
        for du in (0, 2 * half):
            out &= padded[:, dv : dv + h, du : du + w]
    return out


def _mean_of_smallest(cost: torch.Tensor, k: int) -> torch.Tensor:
    """Mean of the ``k`` smallest entries along the first axis of ``cost`` (M, ...), k <=
    M: each entry is inserted into a running sorted list of the k smallest by
    elementwise min and max (2k - 1 passes over one entry's block, no copy of ``cost``,
    several times faster than ``topk`` or min-and-remove for the few neighbours
    matched)."""
    smallest = [torch.full_like(cost[0], torch.inf) for _ in range(k)]  # ascending
    for entry in cost:
        for j in range(k - 1, 0, -1):
            torch.minimum(smallest[j], torch.maximum(smallest[j - 1], entry), out=smallest[j])
        torch.minimum(smallest[0], entry, out=smallest[0])
    total = torch.zeros_like(cost[0])
    for low in smallest:
        total += low
    return total / k


# Entries (neighbours x hypotheses x pixels) of the cost volume computed at once: the
# volume is built in blocks of hypotheses this size, whose intermediates stay in cache
# (docs/benchmarks.md, stereo speed).
BLOCK_ENTRIES = 1 << 20


def matching_costs(
    ref: torch.Tensor,
    srcs: torch.Tensor,
    K: torch.Tensor,
    ref_pose: torch.Tensor,
    src_poses: torch.Tensor,
    inv_depths: torch.Tensor,
    window: int,
    top_k: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Aggregated matching cost of every depth hypothesis.

    ref: (H, W) grey in [0, 1]; srcs: (M, H, W); K: (3, 3) for that size (all views);
    ref_pose: (4, 4) and src_poses: (M, 4, 4) camera-to-world; inv_depths: (D,) the same
    for every pixel, or (D, H, W) per pixel, 1/metres. Returns the mean of the best
    ``top_k`` neighbours' 1 - NCC, (D, H, W) in [0, 2] (2 where no neighbour's window
    lies wholly inside its image), and the reference windows' intensity variance (H, W).
    The hypotheses are matched in blocks of about :data:`BLOCK_ENTRIES` entries.
    """
    h, w = ref.shape
    m = srcs.shape[0]
    n_hyp = inv_depths.shape[0]
    dev, dt = ref.device, ref.dtype
    rel = torch.linalg.inv(src_poses.double()) @ ref_pose.double()  # ref cam -> src cam
    Kd = K.double()
    A = (Kd @ rel[:, :3, :3] @ torch.linalg.inv(Kd)).to(dt)  # (M, 3, 3)
    c = (Kd @ rel[:, :3, 3:]).to(dt)  # (M, 3, 1)
    v, u = torch.meshgrid(
        torch.arange(h, device=dev, dtype=dt), torch.arange(w, device=dev, dtype=dt), indexing="ij"
    )
    pix = torch.stack([u.reshape(-1), v.reshape(-1), torch.ones_like(u).reshape(-1)])
    base = A @ pix  # (M, 3, HW): the warp's part that does not depend on depth
    inv = inv_depths.reshape(1, n_hyp, -1)  # (1, D, 1) or (1, D, HW)
    r = ref[None, None]
    ref_sums = _ReferenceSums(r, window)
    agg = torch.empty(n_hyp, h, w, device=dev, dtype=dt)
    block = max(1, BLOCK_ENTRIES // (m * h * w))
    for first in range(0, n_hyp, block):
        inv_block = inv[:, first : first + block]
        cost = _neighbour_costs(srcs, base, c, inv_block, ref_sums, window)
        agg[first : first + block] = _mean_of_smallest(cost, min(top_k, m))
    var_r = ref_sums.var / (ref_sums.n * ref_sums.n)
    return agg, var_r[0, 0]


class _ReferenceSums:
    """Window sums of a reference image r (1, 1, H, W): n, the window's pixel count
    inside the image; sr, the sum of r; var, n^2 times the intensity variance."""

    def __init__(self, r: torch.Tensor, window: int) -> None:
        self.r = r
        self.n = _sums(torch.ones_like(r), window)
        self.sr = _sums(r, window)
        self.var = (self.n * _sums(r * r, window) - self.sr * self.sr).clamp_min(0)


def _neighbour_costs(
    srcs: torch.Tensor,
    base: torch.Tensor,
    c: torch.Tensor,
    inv: torch.Tensor,
    ref: _ReferenceSums,
    window: int,
) -> torch.Tensor:
    """(M, B, H, W) 1 - NCC of each of the M neighbours ``srcs`` (M, H, W) warped onto
    B hypotheses ``inv`` (1, B, 1) or (1, B, HW) 1/metres, by the warp
    ``base + c * inv`` (base: (M, 3, HW), c: (M, 3, 1)); INVALID_COST where the window
    is not wholly inside the neighbour."""
    m, h, w = srcs.shape
    n_hyp = inv.shape[1]
    z = base[:, None, 2] + c[:, None, 2] * inv  # (M, B, HW)
    in_front = z > 1e-6
    scale = torch.where(in_front, z, torch.ones_like(z)).reciprocal_()
    grid = torch.empty(m, n_hyp, h * w, 2, device=srcs.device, dtype=srcs.dtype)
    gx, gy = grid[..., 0], grid[..., 1]  # normalised (x, y)
    torch.mul(base[:, None, 0] + c[:, None, 0] * inv, scale, out=gx)
    torch.mul(base[:, None, 1] + c[:, None, 1] * inv, scale, out=gy)
    gx.mul_(2 / (w - 1)).sub_(1)
    gy.mul_(2 / (h - 1)).sub_(1)
    inside = in_front & (gx.abs() <= 1) & (gy.abs() <= 1)
    warped = F.grid_sample(
        srcs[:, None],
        grid.reshape(m, n_hyp * h, w, 2),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    ).reshape(m * n_hyp, 1, h, w)

    # NCC from window sums: (n Srs - Sr Ss) / sqrt((n Srr - Sr^2)(n Sss - Ss^2)) (in
    # place: the block is the largest thing in memory)
    n = ref.n
    ss, sss = _sums(warped, window), _sums(warped * warped, window)
    srs = _sums(warped.mul_(ref.r), window)
    var_s = sss.mul_(n).sub_(ss * ss).clamp_min_(0)
    covariance = srs.mul_(n).sub_(ss.mul_(ref.sr))
    norm = var_s.mul_(ref.var).add_(1e-8 * n**4).sqrt_()
    cost = covariance.div_(norm).neg_().add_(1)  # 1 - NCC
    full = _window_inside(inside.reshape(m * n_hyp, h, w), window)[:, None]
    return cost.masked_fill_(~full, INVALID_COST).reshape(m, n_hyp, h, w)


@dataclass
class Winner:
    """index: (H, W) best hypothesis; offset: (H, W) sub-hypothesis shift in [-0.5, 0.5];
    cost: (H, W) the best cost; interior: (H, W) a parabola could be fitted;
    confidence: (H, W) softmax mass within one hypothesis of the best."""

    index: torch.Tensor
    offset: torch.Tensor
    cost: torch.Tensor
    interior: torch.Tensor
    confidence: torch.Tensor


def winner_take_all(cost: torch.Tensor, temperature: float) -> Winner:
    """The best hypothesis of each pixel of a cost volume (D, H, W), with a parabola's
    sub-hypothesis offset through its neighbours' costs."""
    n = cost.shape[0]
    best = cost.argmin(0)
    c0 = cost.gather(0, best[None])[0]
    lo = cost.gather(0, (best - 1).clamp_min(0)[None])[0]
    hi = cost.gather(0, (best + 1).clamp_max(n - 1)[None])[0]
    curv = lo - 2 * c0 + hi
    interior = (best > 0) & (best < n - 1) & (curv > 1e-6)
    offset = torch.where(
        interior, (lo - hi) / (2 * curv.clamp_min(1e-6)), torch.zeros_like(c0)
    ).clamp(-0.5, 0.5)
    # softmax of -cost / temperature, shifted by the best cost; only its total is a volume
    total = (cost - c0).div_(-temperature).exp_().sum(0)
    near = 1 + sum(
        torch.where(has, ((c - c0) / -temperature).exp(), 0.0)
        for c, has in ((lo, best > 0), (hi, best < n - 1))
    )
    confidence = near / total
    return Winner(best, offset, c0, interior, confidence)


def plane_sweep(
    ref: torch.Tensor,
    srcs: torch.Tensor,
    K: torch.Tensor,
    ref_pose: torch.Tensor,
    src_poses: torch.Tensor,
    cfg: SweepConfig,
) -> SweepResult:
    """Depth of the reference view.

    ref: (H, W) grey in [0, 1]; srcs: (M, H, W); K: (3, 3) for that size (all views);
    ref_pose: (4, 4) and src_poses: (M, 4, 4) camera-to-world. float32, any device.
    """
    dev, dt = ref.device, ref.dtype
    inv_depths = torch.linspace(
        1 / cfg.min_depth, 1 / cfg.max_depth, cfg.n_planes, device=dev, dtype=dt
    )
    agg, var_r = matching_costs(
        ref, srcs, K, ref_pose, src_poses, inv_depths, cfg.window, cfg.top_k
    )
    matched = agg
    if cfg.sgm:
        agg = semi_global(agg, ref, cfg.sgm_p1, cfg.sgm_p2, cfg.sgm_edge)
    win = winner_take_all(agg, cfg.temperature)
    match_cost = matched.gather(0, win.index[None])[0]
    step = inv_depths[1] - inv_depths[0]
    depth = 1 / (inv_depths[win.index] + win.offset * step)

    # Uniqueness: the best cost away from the winner (outside +-2 planes).
    near = (win.index[None] + torch.arange(-2, 3, device=dev)[:, None, None]).clamp(
        0, cfg.n_planes - 1
    )
    second = agg.scatter(0, near, INVALID_COST).amin(0)
    ratio = win.cost / second.clamp_min(1e-6)
    keep = (
        (match_cost < cfg.max_cost)
        & (ratio < cfg.max_ratio)
        & (torch.sqrt(var_r) > cfg.min_std)
        & win.interior
        & (win.confidence >= cfg.min_confidence)
    )
    zero = torch.zeros_like(depth)
    confidence = torch.where(keep, win.confidence, zero)
    return SweepResult(torch.where(keep, depth, zero), match_cost, confidence, depth)


def refine_depth(
    ref: torch.Tensor,
    srcs: torch.Tensor,
    K: torch.Tensor,
    ref_pose: torch.Tensor,
    src_poses: torch.Tensor,
    inv_depth: torch.Tensor,
    step: float,
    n_hypotheses: int,
    window: int,
    top_k: int,
    temperature: float,
) -> SweepResult:
    """A finer search around a coarse depth, per pixel.

    ref: (H, W) grey in [0, 1] at the fine size; srcs: (M, H, W); K: (3, 3) for that
    size; poses camera-to-world as in :func:`plane_sweep`; inv_depth: (H, W) the coarse
    inverse depth (1/metres, > 0) upsampled to this size; step: spacing of the
    ``n_hypotheses`` hypotheses, centred on ``inv_depth``, in 1/metres. Returns the
    winner's depth (0 where it lies on the range's end: the coarse depth was more than
    the range away), its matching cost and confidence; nothing else is filtered.
    """
    offsets = (
        torch.arange(n_hypotheses, device=ref.device, dtype=ref.dtype) - (n_hypotheses - 1) / 2
    ) * step
    hyp = (inv_depth[None] + offsets[:, None, None]).clamp_min(1e-3)  # (D, H, W)
    agg, _ = matching_costs(ref, srcs, K, ref_pose, src_poses, hyp, window, top_k)
    win = winner_take_all(agg, temperature)
    inv = hyp.gather(0, win.index[None])[0] + win.offset * step
    depth = 1 / inv
    zero = torch.zeros_like(depth)
    ok = win.interior & (win.cost < INVALID_COST)
    return SweepResult(
        torch.where(ok, depth, zero), win.cost, torch.where(ok, win.confidence, zero), depth
    )
