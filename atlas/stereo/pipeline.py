"""Stereo reconstruction of a posed RGB sequence: keyframe depth maps by plane sweep,
filtered by cost, uniqueness and agreement between keyframes, fused into a TSDF."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from atlas.geometry import VoxelGrid, fuse_depth_frames
from atlas.geometry.camera import scale_intrinsics
from atlas.readers.frames import SceneReader
from atlas.stereo.consistency import backproject, consistent_votes
from atlas.stereo.plane_sweep import SweepConfig, SweepResult, plane_sweep, refine_depth
from atlas.stereo.pose_refinement import refine_poses
from atlas.stereo.views import select_keyframes, select_neighbours
from atlas.validate import is_int_at_least

log = logging.getLogger(__name__)


@dataclass
class StereoConfig:
    """Settings of ``method=stereo`` (and of a model's prior). Named presets:
    :mod:`atlas.stereo.presets`.

    - image_size: (width, height) the coarse sweep runs at; sweep: its settings (by
      default regularised, planes from 0.5 m: nearer surfaces are not matched).
    - n_neighbours: views each keyframe is matched against; neighbour_separation: metres
      between any two of them (0: the best ranked, often consecutive frames);
      neighbour_angle_deg: the triangulation angle they are ranked by (closest first) at
      the sweep's middle depth (at most 2 m).
    - keyframe_translation (metres) / keyframe_rotation_deg: pose change between
      keyframes.
    - refine_scale: 1 (no refinement) or k > 1, a second, per-pixel search at k times
      the coarse size around the coarse depth, with refine_hypotheses hypotheses
      spanning +-refine_range coarse planes and NCC windows of refine_window pixels; the
      depth maps are then at the fine size. refine_fallback: where the refinement's
      best match costs sweep.max_cost or more (weak texture at the finer size), the
      pixel keeps its coarse depth and confidence instead of none (a pixel whose
      refined depth leaves the searched range is still dropped).
    - min_support: a depth is dropped unless at least this many of the 24 others in its
      5x5 window lie within consistency_tol of it (speckle removal; 0: off).
    - consistency_views: other keyframes each depth map is checked against;
      min_consistent: how many must agree; consistency_tol: relative depth tolerance.
    - weighted_fusion: each depth weighs its confidence times the cosine of its viewing
      angle in fusion (else 1); min_weight: fused voxels of a lower total weight are
      left unobserved, so no surface is meshed from fewer observations (0: off).
    - voxel_size (metres), trunc_voxels, max_depth (metres): the fused volume.
    - refine_poses: between the coarse sweep and the refinement, the pose of every
      keyframe and neighbour is corrected photometrically from the coarse depths
      (checked between keyframes, :mod:`atlas.stereo.pose_refinement`); the refined
      maps are matched, filtered and fused with the corrected poses, the coarse maps
      keep the given ones (so it does nothing where no map is refined).
    """

    image_size: tuple[int, int] = (160, 120)
    sweep: SweepConfig = field(default_factory=lambda: SweepConfig(sgm=True, min_depth=0.5))
    n_neighbours: int = 5
    neighbour_separation: float = 0.05
    neighbour_angle_deg: float = 8.0
    keyframe_translation: float = 0.1
    keyframe_rotation_deg: float = 10.0
    refine_scale: int = 2
    refine_hypotheses: int = 8
    refine_range: float = 1.5
    refine_window: int = 7
    refine_fallback: bool = True
    min_support: int = 0
    consistency_views: int = 4
    min_consistent: int = 1
    consistency_tol: float = 0.03
    weighted_fusion: bool = False
    min_weight: float = 0.0
    voxel_size: float = 0.04
    trunc_voxels: float = 5.0
    max_depth: float = 3.0
    refine_poses: bool = True


def prior_stereo_config() -> StereoConfig:
    """The stereo settings a model's prior is made with, in preparation and in inference
    alike (keyframes every 15 cm, 7x7 NCC windows, the best 2 of 5 neighbours, not
    spread apart, 64 planes from 0.5 to 5 m without regularisation, a 3-voxel
    truncation band), kept apart from ``method=stereo``'s own defaults. The bundled
    model's history (docs/model_card.md): trained on priors with 11x11 windows, the
    best 3 and planes from 0.3 m, then fine-tuned on 7x7 windows and the best 2, then
    on planes from 0.5 m (:func:`atlas.stereo.presets.unrecorded_prior` is the prior
    before that)."""
    return StereoConfig(
        keyframe_translation=0.15,
        neighbour_separation=0.0,
        trunc_voxels=3.0,
        sweep=SweepConfig(window=7, top_k=2, min_depth=0.5),
        refine_scale=1,
        refine_fallback=False,
        refine_poses=False,
    )


@dataclass
class StereoDepths:
    """keyframes: (N,) frame indices; depths, confidence: (N, H, W) float32 (filtered;
    0 where rejected); K: (3, 3) at the depth maps' size; poses: (N, 4, 4)
    camera-to-world; weights: (N, H, W) float32 fusion weight of each depth, or None
    (all 1); refined: the same keyframes' sweeps refined per pixel at a finer size and
    filtered on their own, when asked for (``refined_scale`` of :func:`stereo_depths`),
    else None; its poses are the refined ones with ``refine_poses``."""

    keyframes: np.ndarray
    depths: torch.Tensor
    confidence: torch.Tensor
    K: torch.Tensor
    poses: torch.Tensor
    weights: torch.Tensor | None = None
    refined: StereoDepths | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the depth maps."""
        return int(self.depths.shape[-1]), int(self.depths.shape[-2])


def grey_images(reader: SceneReader, *sizes: tuple[int, int]) -> list[torch.Tensor]:
    """(N, H, W) uint8 grey images of every frame at each of ``sizes`` (width, height)
    (:meth:`SceneReader.iter_images`: each size the same whatever other sizes are asked;
    zeros for invalid poses), one frame at a time."""
    out = [torch.zeros(len(reader), h, w, dtype=torch.uint8) for w, h in sizes]
    indices = np.flatnonzero(reader.valid)
    frames = zip(indices, reader.iter_images(indices, sizes, "L"), strict=True)
    for i, images in tqdm(
        frames, total=len(indices), desc="reading frames", unit="frame", leave=False
    ):
        for grey, image in zip(out, images, strict=True):
            grey[i] = torch.from_numpy(image)
    return out


def neighbour_support(depth: torch.Tensor, radius: int, rel_tol: float) -> torch.Tensor:
    """(H, W) count of the pixels in the (2 radius + 1)^2 window around each pixel
    (itself left out) whose depth is within ``rel_tol`` (relative) of its own; depth:
    (H, W) metres, 0 = none (such pixels count 0 and are never counted)."""
    h, w = depth.shape
    padded = F.pad(depth[None, None], (radius,) * 4)[0, 0]
    count = torch.zeros(h, w, dtype=torch.int64, device=depth.device)
    for dv in range(2 * radius + 1):  # (2 radius + 1)^2 shifted whole-image comparisons
        for du in range(2 * radius + 1):
            if dv == radius and du == radius:
                continue
            other = padded[dv : dv + h, du : du + w]
            count += ((other > 0) & ((other - depth).abs() <= rel_tol * depth)).long()
    return torch.where(depth > 0, count, torch.zeros_like(count))


def viewing_cosine(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(H, W) |cos| of the angle between each pixel's ray and the surface normal of a
    depth map (H, W) metres with intrinsics K (3, 3), from central differences of the
    back-projected points; 0 where a neighbour has no depth."""
    pts = backproject(depth, K, torch.eye(4, dtype=depth.dtype, device=depth.device))
    du = torch.zeros_like(pts)
    dv = torch.zeros_like(pts)
    du[:, 1:-1] = pts[:, 2:] - pts[:, :-2]
    dv[1:-1] = pts[2:] - pts[:-2]
    normal = torch.linalg.cross(du, dv)
    has = depth > 0
    full = torch.zeros_like(has)
    full[1:-1, 1:-1] = (
        has[1:-1, 1:-1] & has[1:-1, 2:] & has[1:-1, :-2] & has[2:, 1:-1] & has[:-2, 1:-1]
    )
    cos = (normal * pts).sum(-1).abs() / (
        torch.linalg.norm(normal, dim=-1) * torch.linalg.norm(pts, dim=-1)
    ).clamp_min(1e-12)
    return torch.where(full, cos, torch.zeros_like(cos))


# (H, W) depth in metres (0: rejected), (H, W) confidence
DepthAndConfidence = tuple[torch.Tensor, torch.Tensor]


def _coarse_sweep(
    kf: int,
    nbrs: np.ndarray,
    grey: torch.Tensor,
    K: torch.Tensor,
    poses: torch.Tensor,
    cfg: StereoConfig,
) -> SweepResult:
    """The coarse sweep of keyframe ``kf`` against ``nbrs`` on ``grey`` (F, H, W) uint8
    with K for that size; poses: (F, 4, 4) camera-to-world."""
    return plane_sweep(
        grey[kf].float() / 255, grey[nbrs].float() / 255, K, poses[kf], poses[nbrs], cfg.sweep
    )


def _refine_keyframe(
    kf: int,
    nbrs: np.ndarray,
    grey: torch.Tensor,
    K: torch.Tensor,
    poses: torch.Tensor,
    coarse: SweepResult,
    cfg: StereoConfig,
) -> DepthAndConfidence:
    """Depth and confidence of keyframe ``kf`` refined per pixel on the finer ``grey``
    (F, h, w) uint8 (K for that size) around its ``coarse`` sweep, with ``cfg``'s
    refinement settings (``refine_fallback``: the coarse depth where the refinement
    matched too poorly); 0 where the coarse sweep or the refinement rejected it."""
    sweep = cfg.sweep
    h, w = grey.shape[-2:]

    def upsampled(x: torch.Tensor, mode: str) -> torch.Tensor:
        return F.interpolate(x[None, None].float(), size=(h, w), mode=mode)[0, 0]

    keep = upsampled(coarse.depth > 0, "nearest") > 0
    inv = upsampled(1 / coarse.raw_depth, "bilinear")
    plane_step = (1 / sweep.min_depth - 1 / sweep.max_depth) / (sweep.n_planes - 1)
    n = cfg.refine_hypotheses
    fine = refine_depth(
        grey[kf].float() / 255,
        grey[nbrs].float() / 255,
        K,
        poses[kf],
        poses[nbrs],
        inv,
        2 * cfg.refine_range * plane_step / (n - 1),
        n,
        cfg.refine_window,
        sweep.top_k,
        sweep.temperature,
    )
    in_range = keep & (fine.depth > 0)
    ok = in_range & (fine.cost < sweep.max_cost)
    zero = torch.zeros_like(fine.depth)
    depth = torch.where(ok, fine.depth, zero)
    confidence = torch.where(ok, fine.confidence, zero)
    if cfg.refine_fallback:
        fallback = in_range & ~ok
        depth = torch.where(fallback, 1 / inv, depth)
        confidence = torch.where(fallback, upsampled(coarse.confidence, "nearest"), confidence)
    return depth, confidence


def stereo_depths(
    reader: SceneReader, cfg: StereoConfig, device: str = "cpu", refined_scale: int = 1
) -> StereoDepths:
    """Filtered depth maps of the keyframes of a sequence: :func:`sweep_keyframes`, then
    :func:`filter_depths`; with ``refined_scale`` > 1 and settings that do not refine
    (``cfg.refine_scale`` 1), their ``refined`` maps are the same sweeps refined at that
    scale (``cfg``'s refinement settings), filtered alike (a model's prior keeps the
    coarse maps it was trained on, its evidence rule takes the finer ones)."""
    swept, checked = sweep_keyframes(reader, cfg, device, refined_scale)
    out = checked if checked is not None else filter_depths(swept, cfg)
    if swept.refined is not None:
        out.refined = filter_depths(swept.refined, cfg)
    return out


def sweep_keyframes(
    reader: SceneReader, cfg: StereoConfig, device: str = "cpu", refined_scale: int = 1
) -> tuple[StereoDepths, StereoDepths | None]:
    """Depth maps of the keyframes of a sequence, each from its own neighbours only
    (not yet checked against other keyframes; no fusion weights); ``refined_scale`` as
    in :func:`stereo_depths`. Also those maps checked by :func:`filter_depths` when the
    pose refinement already did that (coarse maps returned with refined ones), else
    None."""
    check_stereo_config(cfg)
    if not is_int_at_least(refined_scale, 1):
        raise ValueError(f"refined_scale must be an integer >= 1, got {refined_scale!r}")
    poses_np = reader.poses
    valid = reader.valid
    if valid.sum() < 2:
        raise ValueError(
            f"{reader.name}: stereo needs at least two frames with finite "
            f"poses, got {int(valid.sum())}"
        )
    w, h = cfg.image_size
    scale = cfg.refine_scale if cfg.refine_scale > 1 else refined_scale
    sizes = [(w, h)] + ([(w * scale, h * scale)] if scale > 1 else [])
    Ks_np = [
        scale_intrinsics(reader.K_color, sw / reader.color_size[0], sh / reader.color_size[1])
        for sw, sh in sizes
    ]
    Ks = [torch.tensor(k, dtype=torch.float32, device=device) for k in Ks_np]
    poses = torch.tensor(
        np.where(valid[:, None, None], poses_np, np.eye(4)), dtype=torch.float32, device=device
    )
    keys = select_keyframes(poses_np, cfg.keyframe_translation, cfg.keyframe_rotation_deg)
    grey = [g.to(device) for g in grey_images(reader, *sizes)]
    coarse: list[SweepResult] = []
    used, nbr_lists = [], []
    for kf in tqdm(keys, desc="plane sweep", unit="keyframe", leave=False):
        nbrs = select_neighbours(
            poses_np,
            int(kf),
            cfg.n_neighbours,
            _overlap_depth(cfg),
            Ks_np[0],
            cfg.image_size,
            target_angle_deg=cfg.neighbour_angle_deg,
            min_separation=cfg.neighbour_separation,
        )
        if len(nbrs) == 0:
            log.warning(
                "%s: keyframe %d has no neighbour with a baseline; skipped", reader.name, kf
            )
            continue
        coarse.append(_coarse_sweep(int(kf), nbrs, grey[0], Ks[0], poses, cfg))
        used.append(int(kf))
        nbr_lists.append(nbrs)
    if not used:
        raise ValueError(
            f"{reader.name}: no keyframe has a neighbour with a baseline "
            "(all frames at the same position?)"
        )

    def stacked(maps: list[DepthAndConfidence], K: torch.Tensor, at: torch.Tensor) -> StereoDepths:
        depth, confidence = (torch.stack(m) for m in zip(*maps, strict=True))
        return StereoDepths(np.array(used), depth, confidence, K, at[used])

    result = stacked([(c.depth, c.confidence) for c in coarse], Ks[0], poses)
    if scale == 1:
        return result, None
    fine_poses, checked = poses, None
    if cfg.refine_poses:
        checked = filter_depths(result, cfg)
        fine_poses = _refined_poses(checked, grey[1], Ks[1], poses, nbr_lists, reader.name)
    fine = [
        _refine_keyframe(kf, nbrs, grey[1], Ks[1], fine_poses, c, cfg)
        for kf, nbrs, c in tqdm(
            list(zip(used, nbr_lists, coarse, strict=True)),
            desc="refinement",
            unit="keyframe",
            leave=False,
        )
    ]
    if cfg.refine_scale > 1:
        return stacked(fine, Ks[1], fine_poses), None
    result.refined = stacked(fine, Ks[1], fine_poses)
    return result, checked


def _refined_poses(
    checked: StereoDepths,
    grey: torch.Tensor,
    K: torch.Tensor,
    poses: torch.Tensor,
    neighbours: list[np.ndarray],
    name: str,
) -> torch.Tensor:
    """(F, 4, 4) float32 poses corrected by :func:`refine_poses` from the coarse
    sweep's depths ``checked`` between keyframes (used at the finer ``grey``'s size)."""
    h, w = grey.shape[-2:]
    depths = F.interpolate(checked.depths[:, None], size=(h, w), mode="nearest")[:, 0]
    out = refine_poses(grey, K, poses, checked.keyframes, depths, neighbours)
    moved = np.flatnonzero(out.rotation_deg + out.translation_m > 0)
    log.info(
        "%s: poses refined (%d frames; median correction %.2f deg, %.1f cm; "
        "photometric loss %.4f -> %.4f)",
        name,
        len(moved),
        float(np.median(out.rotation_deg[moved])) if len(moved) else 0.0,
        100 * float(np.median(out.translation_m[moved])) if len(moved) else 0.0,
        out.residual_before,
        out.residual_after,
    )
    return torch.tensor(out.poses, dtype=torch.float32, device=poses.device)


def _overlap_depth(cfg: StereoConfig) -> float:
    """Metres ahead at which views are compared for overlap and triangulation angle."""
    return min(0.5 * (cfg.sweep.min_depth + cfg.sweep.max_depth), 2.0)


def filter_depths(result: StereoDepths, cfg: StereoConfig) -> StereoDepths:
    """Keyframe depths with enough like neighbours (``cfg.min_support``), kept where at
    least ``cfg.min_consistent`` of the
    ``cfg.consistency_views`` best overlapping other keyframes agree (within
    ``cfg.consistency_tol``), with fusion weights when ``cfg.weighted_fusion``."""
    poses_np = result.poses.cpu().double().numpy()
    K, K_np = result.K, result.K.cpu().double().numpy()
    depths = result.depths
    if cfg.min_support > 0:
        depths = torch.stack(
            [
                torch.where(neighbour_support(d, 2, cfg.consistency_tol) >= cfg.min_support, d, 0)
                for d in depths
            ]
        )
    filtered = torch.zeros_like(depths)
    for i in range(len(depths)):
        others = select_neighbours(
            poses_np,
            i,
            cfg.consistency_views,
            _overlap_depth(cfg),
            K_np,
            result.image_size,
            min_overlap=0.5,
        )
        if len(others) == 0:
            continue
        votes = consistent_votes(
            depths[i], K, result.poses[i], depths[others], result.poses[others], cfg.consistency_tol
        )
        filtered[i] = torch.where(votes >= cfg.min_consistent, depths[i], 0.0)
    conf = torch.where(filtered > 0, result.confidence, 0.0)
    weights = None
    if cfg.weighted_fusion:
        weights = torch.stack(
            [c * viewing_cosine(d, K) for d, c in zip(filtered, conf, strict=True)]
        )
    return StereoDepths(result.keyframes, filtered, conf, K, result.poses, weights)


def check_stereo_config(cfg: StereoConfig, prefix: str = "stereo.") -> None:
    """``ValueError`` naming the first stereo setting (``prefix`` + its name) that no
    run could use: sizes and counts that must be positive, a depth range upside down."""
    sweep = cfg.sweep
    rules = [
        (
            "image_size",
            cfg.image_size,
            "[width, height] in pixels, each >= 8",
            len(cfg.image_size) == 2 and all(is_int_at_least(v, 8) for v in cfg.image_size),
        ),
        ("n_neighbours", cfg.n_neighbours, "an integer >= 1", is_int_at_least(cfg.n_neighbours, 1)),
        ("neighbour_separation", cfg.neighbour_separation, ">= 0", cfg.neighbour_separation >= 0),
        ("keyframe_translation", cfg.keyframe_translation, ">= 0", cfg.keyframe_translation >= 0),
        (
            "keyframe_rotation_deg",
            cfg.keyframe_rotation_deg,
            ">= 0",
            cfg.keyframe_rotation_deg >= 0,
        ),
        (
            "neighbour_angle_deg",
            cfg.neighbour_angle_deg,
            "in (0, 90)",
            0 < cfg.neighbour_angle_deg < 90,
        ),
        ("refine_scale", cfg.refine_scale, "an integer >= 1", is_int_at_least(cfg.refine_scale, 1)),
        (
            "refine_hypotheses",
            cfg.refine_hypotheses,
            "an integer >= 3",
            is_int_at_least(cfg.refine_hypotheses, 3),
        ),
        ("refine_range", cfg.refine_range, "> 0 (coarse planes)", cfg.refine_range > 0),
        ("refine_poses", cfg.refine_poses, "true or false", isinstance(cfg.refine_poses, bool)),
        (
            "refine_fallback",
            cfg.refine_fallback,
            "true or false",
            isinstance(cfg.refine_fallback, bool),
        ),
        (
            "refine_window",
            cfg.refine_window,
            "an odd integer >= 1 (a window centred on its pixel)",
            is_int_at_least(cfg.refine_window, 1) and cfg.refine_window % 2 == 1,
        ),
        (
            "min_support",
            cfg.min_support,
            "an integer in [0, 24]",
            is_int_at_least(cfg.min_support, 0) and cfg.min_support <= 24,
        ),
        ("min_weight", cfg.min_weight, ">= 0", cfg.min_weight >= 0),
        ("consistency_views", cfg.consistency_views, ">= 0", cfg.consistency_views >= 0),
        ("min_consistent", cfg.min_consistent, ">= 0", cfg.min_consistent >= 0),
        ("consistency_tol", cfg.consistency_tol, "> 0", cfg.consistency_tol > 0),
        ("voxel_size", cfg.voxel_size, "> 0 (metres)", cfg.voxel_size > 0),
        ("trunc_voxels", cfg.trunc_voxels, "> 0", cfg.trunc_voxels > 0),
        ("max_depth", cfg.max_depth, "> 0 (metres)", cfg.max_depth > 0),
        ("sweep.n_planes", sweep.n_planes, "an integer >= 2", is_int_at_least(sweep.n_planes, 2)),
        ("sweep.min_depth", sweep.min_depth, "> 0 (metres)", sweep.min_depth > 0),
        (
            "sweep.max_depth",
            sweep.max_depth,
            f"more than sweep.min_depth ({sweep.min_depth})",
            sweep.max_depth > sweep.min_depth,
        ),
        (
            "sweep.window",
            sweep.window,
            "an odd integer >= 1 (a window centred on its pixel)",
            is_int_at_least(sweep.window, 1) and sweep.window % 2 == 1,
        ),
        ("sweep.top_k", sweep.top_k, "an integer >= 1", is_int_at_least(sweep.top_k, 1)),
        ("sweep.sgm_p1", sweep.sgm_p1, ">= 0", sweep.sgm_p1 >= 0),
        (
            "sweep.sgm_p2",
            sweep.sgm_p2,
            f">= sweep.sgm_p1 ({sweep.sgm_p1})",
            sweep.sgm_p2 >= sweep.sgm_p1,
        ),
        ("sweep.sgm_edge", sweep.sgm_edge, "> 0", sweep.sgm_edge > 0),
        ("sweep.temperature", sweep.temperature, "> 0", sweep.temperature > 0),
    ]
    for name, value, rule, ok in rules:
        if not ok:
            shown = list(value) if isinstance(value, tuple | list) else value
            raise ValueError(f"{prefix}{name} must be {rule}, got {shown!r}")


def fuse_stereo(
    result: StereoDepths,
    cfg: StereoConfig,
    device: str = "cpu",
    voxel_size: float | None = None,
    mode: str = "surface",
) -> VoxelGrid:
    """TSDF of the filtered keyframe depths on a grid covering their frusta, at
    ``voxel_size`` (default ``cfg.voxel_size``; origin a multiple of it) in fusion
    ``mode``; voxels below ``cfg.min_weight`` are reset to unobserved (weight 0, TSDF
    1). Refined depth maps are fused at the coarse size ``cfg.image_size``, each pixel
    the mean of the valid depths of its block (a 320x240 pixel is under 1 cm wide at
    2 m, far below a voxel: averaging lowers the noise and the fusion time)."""
    poses = result.poses.cpu().numpy().astype(np.float64)
    K = result.K.cpu().numpy().astype(np.float64)
    depths, weights = result.depths, result.weights
    size = result.image_size
    factor = size[0] // cfg.image_size[0]
    if factor > 1:
        depths, weights = _pool_valid(depths, weights, factor, cfg.consistency_tol)
        K = scale_intrinsics(K, 1 / factor, 1 / factor)
        size = (size[0] // factor, size[1] // factor)
    weights = weights if weights is not None else [None] * len(depths)
    grid = fuse_depth_frames(
        ((d, None, wt) for d, wt in zip(depths, weights, strict=True)),
        K,
        poses,
        size,
        voxel_size or cfg.voxel_size,
        cfg.max_depth,
        trunc_voxels=cfg.trunc_voxels,
        mode=mode,
        device=device,
    )
    if cfg.min_weight > 0:
        weak = grid.weight < cfg.min_weight
        grid.weight[weak] = 0.0
        grid.tsdf[weak] = 1.0
    return grid


def _pool_valid(
    depths: torch.Tensor, weights: torch.Tensor | None, factor: int, rel_tol: float
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Depths (N, H, W) metres (0 = none) and their weights (or None) averaged over
    ``factor`` x ``factor`` blocks, counting only the valid depths of each block; 0
    where a block has none or its depths spread more than ``rel_tol`` of their mean (a
    depth edge: the mean would float between the two surfaces)."""
    valid = (depths > 0).float()[:, None]
    count = F.avg_pool2d(valid, factor)
    pooled = F.avg_pool2d(depths[:, None] * valid, factor) / count.clamp_min(1e-6)
    high = F.max_pool2d(depths[:, None], factor)
    low = -F.max_pool2d(-torch.where(valid > 0, depths[:, None], torch.inf), factor)
    pooled = torch.where(high - low <= rel_tol * pooled, pooled, 0.0)
    if weights is not None:
        weights = (F.avg_pool2d(weights[:, None] * valid, factor) / count.clamp_min(1e-6))[:, 0]
    return pooled[:, 0], weights


def fuse_prior(
    result: StereoDepths, cfg: StereoConfig, voxel_size: float, device: str = "cpu"
) -> VoxelGrid:
    """The stereo geometry prior for a model: the filtered keyframe depths fused at
    ``voxel_size`` in frustum mode, so space the matched rays crossed is observed as
    free (TSDF 1, weight > 0) and space no matched ray reached stays unobserved
    (weight 0)."""
    return fuse_stereo(result, cfg, device, voxel_size, mode="frustum")
