"""Semi-global aggregation on hand-made cost volumes, and the refinement sweep on a
rendered slanted plane."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from atlas.stereo import pipeline as stereo_pipeline
from atlas.stereo.pipeline import StereoConfig, _refine_keyframe, viewing_cosine
from atlas.stereo.plane_sweep import (
    SweepConfig,
    _sums,
    matching_costs,
    plane_sweep,
    refine_depth,
)
from atlas.stereo.sgm import semi_global


def _volume_with_minimum(best: torch.Tensor, n_planes: int, noise: float, seed: int = 0):
    """(D, H, W) cost: 1 everywhere, 0.2 at plane ``best`` (H, W), plus uniform noise."""
    g = torch.Generator().manual_seed(seed)
    h, w = best.shape
    cost = torch.ones(n_planes, h, w) + noise * torch.rand(n_planes, h, w, generator=g)
    cost.scatter_(0, best[None], 0.2)
    return cost


def test_staircase_is_recovered_and_edges_kept():
    # three steps of depth planes 10 / 20 / 30 across the image, each step at an image edge
    h, w, d = 12, 30, 40
    best = torch.full((h, w), 10)
    best[:, 10:20] = 20
    best[:, 20:] = 30
    image = torch.zeros(h, w)
    image[:, 10:20] = 0.5
    image[:, 20:] = 1.0
    cost = _volume_with_minimum(best, d, noise=0.3)
    out = semi_global(cost, image, p1=0.05, p2=0.5, edge=0.05)
    assert torch.equal(out.argmin(0), best)


def test_single_noisy_column_does_not_move_its_neighbours():
    h, w, d = 10, 21, 32
    best = torch.full((h, w), 12)
    cost = _volume_with_minimum(best, d, noise=0.0)
    # one column whose matching claims plane 25 even more strongly than the truth
    cost[:, :, 10] = 1.0
    cost[25, :, 10] = 0.0
    image = torch.full((h, w), 0.5)  # no edge: the jump is charged the full P2
    out = semi_global(cost, image, p1=0.05, p2=0.5, edge=0.05).argmin(0)
    expected = best.clone()
    assert torch.equal(out[:, :10], expected[:, :10])
    assert torch.equal(out[:, 11:], expected[:, 11:])
    # without SGM each column keeps its own winner: the volume really disagreed there
    assert (cost.argmin(0)[:, 10] == 25).all()


def test_penalties_are_checked():
    cost = torch.ones(4, 3, 3)
    image = torch.zeros(3, 3)
    with pytest.raises(ValueError, match="p1 <= p2"):
        semi_global(cost, image, p1=0.5, p2=0.1, edge=0.05)
    with pytest.raises(ValueError, match="edge"):
        semi_global(cost, image, p1=0.1, p2=0.2, edge=0.0)


def _render_slanted_plane(w: int, h: int, K: torch.Tensor, pose: torch.Tensor):
    """Grey image (h, w) and depth (h, w) of the plane z = 2 + 0.5 x (metres, world),
    textured by a smooth random pattern of its world (x, y), seen by a camera pose."""
    rng = np.random.default_rng(3)
    freqs = rng.uniform(3, 25, size=(12, 2))
    phases = rng.uniform(0, 2 * math.pi, size=12)
    v, u = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    K = K.double()
    ray_cam = torch.stack(
        [(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1
    )
    R, t = pose[:3, :3].double(), pose[:3, 3].double()
    ray = ray_cam @ R.T
    # plane n.p = 2 with n = (-0.5, 0, 1): (t + s ray).n = 2
    n = torch.tensor([-0.5, 0.0, 1.0], dtype=torch.float64)
    s = (2 - t @ n) / (ray @ n)
    p = t + s[..., None] * ray
    tex = sum(
        torch.sin(f[0] * p[..., 0] + f[1] * p[..., 1] + ph)
        for f, ph in zip(freqs, phases, strict=True)
    )
    grey = (0.5 + 0.04 * tex).clamp(0, 1).float()
    return grey, (s * ray_cam[..., 2]).float()


def test_slanted_plane_recovered_within_one_percent_at_320x240():
    w, h = 320, 240
    K = torch.tensor([[250.0, 0, 159.5], [0, 250.0, 119.5], [0, 0, 1]])
    ref_pose = torch.eye(4)
    src_poses = torch.eye(4).repeat(4, 1, 1)
    src_poses[:, :3, 3] = torch.tensor([[0.15, 0, 0], [-0.15, 0, 0], [0, 0.12, 0], [0, -0.12, 0]])
    ref, gt = _render_slanted_plane(w, h, K, ref_pose)
    srcs = torch.stack([_render_slanted_plane(w, h, K, p)[0] for p in src_poses])
    # the coarse sweep at half the size, then the per-pixel refinement at full size
    cfg = SweepConfig(sgm=True)
    Kc = K.clone()
    Kc[:2] *= 0.5
    Kc[:2, 2] = torch.tensor([79.5, 59.5])
    half = torch.nn.functional.avg_pool2d
    coarse = plane_sweep(half(ref[None], 2)[0], half(srcs, 2), Kc, ref_pose, src_poses, cfg)
    inv = torch.nn.functional.interpolate(
        (1 / coarse.raw_depth)[None, None], size=(h, w), mode="bilinear"
    )[0, 0]
    step = (1 / cfg.min_depth - 1 / cfg.max_depth) / (cfg.n_planes - 1)
    fine = refine_depth(ref, srcs, K, ref_pose, src_poses, inv, 3 * step / 7, 8, 7, 2, 0.05)
    border = torch.zeros(h, w, dtype=torch.bool)
    border[20:-20, 20:-20] = True
    ok = (fine.depth > 0) & border
    assert ok.float().sum() / border.sum() > 0.8
    rel = ((fine.depth - gt).abs() / gt)[ok]
    assert rel.median() < 0.01
    coarse_rel = (coarse.raw_depth - half(gt[None], 2)[0]).abs() / half(gt[None], 2)[0]
    assert rel.median() < coarse_rel[10:-10, 10:-10].median()  # refinement sharpens


def test_refinement_falls_back_to_the_coarse_depth_where_it_matches_poorly(monkeypatch):
    """Where the refinement's best match costs sweep.max_cost or more (here a patch whose
    refined costs are raised after matching), refine_fallback keeps the coarse depth and
    confidence there, and well matched pixels keep their refined depth; without it the
    patch has no depth."""
    w, h = 160, 120
    K = torch.tensor([[125.0, 0, 79.5], [0, 125.0, 59.5], [0, 0, 1]])
    poses = torch.eye(4).repeat(5, 1, 1)
    poses[1:, :3, 3] = torch.tensor([[0.15, 0, 0], [-0.15, 0, 0], [0, 0.12, 0], [0, -0.12, 0]])
    images = [_render_slanted_plane(w, h, K, p) for p in poses]
    grey = torch.stack([g for g, _ in images])
    gt = images[0][1]
    Kc = K.clone()
    Kc[:2] *= 0.5
    Kc[:2, 2] = torch.tensor([39.5, 29.5])
    half = torch.nn.functional.avg_pool2d(grey[:, None], 2)[:, 0]
    cfg = StereoConfig(image_size=(80, 60))
    coarse = plane_sweep(half[0], half[1:], Kc, poses[0], poses[1:], cfg.sweep)
    inside = torch.zeros(h, w, dtype=torch.bool)
    inside[40:80, 60:100] = True

    def poorly_matched_patch(*args, **kwargs):
        fine = refine_depth(*args, **kwargs)
        fine.cost = torch.where(inside, 0.9, fine.cost)  # max_cost is 0.8
        return fine

    monkeypatch.setattr(stereo_pipeline, "refine_depth", poorly_matched_patch)
    fine_grey = (grey * 255).round().to(torch.uint8)
    nbrs = np.arange(1, 5)
    depth, confidence = _refine_keyframe(0, nbrs, fine_grey, K, poses, coarse, cfg)
    off = dataclasses.replace(cfg, refine_fallback=False)
    depth_off, confidence_off = _refine_keyframe(0, nbrs, fine_grey, K, poses, coarse, off)
    assert not (depth_off[inside] > 0).any()
    kept = (depth > 0) & inside
    assert kept.sum() > 0.8 * inside.sum()
    assert ((depth - gt).abs() / gt)[kept].median() < 0.02  # the coarse depth, upsampled
    coarse_conf = torch.nn.functional.interpolate(coarse.confidence[None, None], size=(h, w))
    torch.testing.assert_close(confidence[kept], coarse_conf[0, 0][kept], rtol=0, atol=0)
    matched = depth_off > 0  # a refined depth that matched well is never replaced
    assert matched[~inside].float().mean() > 0.8
    assert torch.equal(depth[matched], depth_off[matched])
    assert torch.equal(confidence[matched], confidence_off[matched])


def test_textureless_wall_has_low_confidence_even_with_sgm():
    h, w = 60, 80
    K = torch.tensor([[60.0, 0, 39.5], [0, 60.0, 29.5], [0, 0, 1]])
    flat = torch.full((h, w), 0.5)
    src_poses = torch.eye(4).repeat(3, 1, 1)
    src_poses[:, 0, 3] = torch.tensor([0.1, 0.2, -0.1])
    res = plane_sweep(flat, flat.repeat(3, 1, 1), K, torch.eye(4), src_poses, SweepConfig(sgm=True))
    assert (res.depth > 0).sum() == 0
    assert res.confidence.max() == 0


def test_viewing_cosine_of_a_tilted_plane():
    # a plane facing the camera gives 1 at the centre; tilted by 60 degrees, 0.5
    h, w = 41, 41
    K = torch.tensor([[40.0, 0, 20.0], [0, 40.0, 20.0], [0, 0, 1]], dtype=torch.float64)
    flat = torch.full((h, w), 2.0, dtype=torch.float64)
    assert viewing_cosine(flat, K)[20, 20] == pytest.approx(1.0, abs=1e-9)
    # plane z = 2 + tan(60deg) x: depth along each ray
    u = torch.arange(w, dtype=torch.float64)
    x_over_z = ((u - 20) / 40).expand(h, w)
    tilted = 2 / (1 - math.tan(math.radians(60)) * x_over_z)
    cos = viewing_cosine(tilted, K)
    assert cos[20, 20] == pytest.approx(0.5, abs=1e-6)
    assert cos[0].max() == 0  # the border has no central difference


def test_speckles_lack_support_and_surfaces_have_it():
    from atlas.stereo.pipeline import neighbour_support

    depth = torch.zeros(9, 9)
    depth[1:8, 1:8] = 2.0  # a patch of one surface
    depth[4, 4] = 2.5  # an outlier inside it
    depth[0, 8] = 1.0  # an isolated depth
    support = neighbour_support(depth, 2, 0.03)
    assert support[4, 4] == 0 and support[0, 8] == 0
    assert support[3, 3] == 23  # all 24 others in its 5x5 window but the outlier
    assert support[1, 1] == 8  # a corner of the patch: its 3x3 quarter of the window
    assert support[0, 0] == 0  # no depth, no support


def test_refined_depths_are_fused_as_block_means_except_across_edges():
    from atlas.stereo.pipeline import _pool_valid

    depth = torch.tensor(
        [[[2.0, 2.02, 0, 0], [0, 2.04, 0, 0], [1.0, 3.0, 1.0, 1.0], [0, 0, 1.0, 1.0]]]
    )
    weight = torch.tensor([[[1.0, 0.5, 9, 9], [9, 0.0, 9, 9], [1, 1, 0.2, 0.2], [9, 9, 0.2, 0.2]]])
    pooled, pooled_weight = _pool_valid(depth, weight, 2, 0.03)
    # top left: the mean of its three depths; top right: none; bottom left: 1 m and 3 m
    # are two surfaces, not one at 2 m; bottom right: one surface
    torch.testing.assert_close(pooled, torch.tensor([[[2.02, 0.0], [0.0, 1.0]]]))
    torch.testing.assert_close(pooled_weight[0, 0, 0], torch.tensor(0.5))
    torch.testing.assert_close(pooled_weight[0, 1, 1], torch.tensor(0.2))


def test_window_sums_equal_brute_force_sums():
    """Box sums by cumulative sums, against summing each clipped window directly: every
    odd window up to longer than the axis, and a non-contiguous input."""
    torch.manual_seed(0)
    for h, w in ((1, 1), (2, 5), (3, 4), (7, 11)):
        x = torch.rand(2, 1, h, w, dtype=torch.float64)
        for window in (1, 3, 5, 9, 15):
            half = window // 2
            want = torch.zeros_like(x)
            for v in range(h):
                for u in range(w):
                    block = x[..., max(0, v - half) : v + half + 1, max(0, u - half) : u + half + 1]
                    want[..., v, u] = block.sum((-1, -2))
            torch.testing.assert_close(_sums(x, window), want)
    t = torch.rand(1, 1, 9, 6, dtype=torch.float64).transpose(-1, -2)  # non-contiguous
    torch.testing.assert_close(_sums(t, 3), _sums(t.contiguous(), 3))


def test_matching_costs_leave_their_inputs_alone():
    """The cost volume is built in place: the images and hypotheses passed in are not."""
    torch.manual_seed(0)
    ref, srcs = torch.rand(24, 32), torch.rand(2, 24, 32)
    K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    poses = torch.eye(4).repeat(2, 1, 1)
    poses[:, 0, 3] = torch.tensor([0.1, -0.1])
    inv = torch.linspace(2.0, 0.5, 6)
    kept = (ref.clone(), srcs.clone(), inv.clone())
    cost, _ = matching_costs(ref, srcs, K, torch.eye(4), poses, inv, 5, 1)
    assert cost.shape == (6, 24, 32) and torch.isfinite(cost).all()
    for before, after in zip(kept, (ref, srcs, inv), strict=True):
        assert torch.equal(before, after)


def test_matching_costs_blocks_change_nothing(monkeypatch):
    """The volume built a few hypotheses at a time equals the volume built at once, for
    planes shared by every pixel and for per-pixel hypotheses, with a block size that
    does not divide the hypothesis count."""
    import atlas.stereo.plane_sweep as sweep

    torch.manual_seed(0)
    ref, srcs = torch.rand(24, 32), torch.rand(3, 24, 32)
    K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 11.5], [0, 0, 1]])
    poses = torch.eye(4).repeat(3, 1, 1)
    poses[:, 0, 3] = torch.tensor([0.1, -0.1, 0.2])
    planes = torch.linspace(2.0, 0.5, 7)
    per_pixel = planes[:, None, None] + 0.05 * torch.rand(7, 24, 32)
    for inv in (planes, per_pixel):
        whole = matching_costs(ref, srcs, K, torch.eye(4), poses, inv, 5, 2)
        monkeypatch.setattr(sweep, "BLOCK_ENTRIES", 2 * 3 * 24 * 32)  # blocks of 2 of 7
        blocks = matching_costs(ref, srcs, K, torch.eye(4), poses, inv, 5, 2)
        monkeypatch.undo()
        assert torch.equal(whole[0], blocks[0]) and torch.equal(whole[1], blocks[1])
        assert (whole[0] < sweep.INVALID_COST).any()
