"""Stereo reconstruction of a posed RGB sequence: keyframe depth maps by plane sweep,
filtered by cost, uniqueness and agreement between keyframes, fused into a TSDF."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from atlas.data.frames import SceneReader, check_color_size
from atlas.geometry import VoxelGrid, fuse_depth_frames
from atlas.geometry.camera import scale_intrinsics
from atlas.stereo.consistency import backproject, consistent_votes
from atlas.stereo.plane_sweep import SweepConfig, plane_sweep, refine_depth
from atlas.stereo.views import select_keyframes, select_neighbours

log = logging.getLogger(__name__)


@dataclass
class StereoConfig:
    """image_size: (width, height) the coarse sweep runs at; n_neighbours: views per
    keyframe; neighbour_separation: metres between any two neighbours a keyframe is
    matched against (0: the best ranked, often consecutive frames);
    keyframe_translation (m) / keyframe_rotation_deg: pose change between keyframes;
    refine_scale: 1 (no refinement) or k > 1, a second, per-pixel search at k times the
    coarse size around the coarse depth, with refine_hypotheses hypotheses spanning
    +-refine_range coarse planes and NCC windows of refine_window pixels; the depth maps
    are then at the fine size; consistency_views: other keyframes each depth map is
    checked against; min_consistent: how many must agree; consistency_tol: relative
    depth tolerance; weighted_fusion: each depth weighs its confidence times the cosine
    of its viewing angle in fusion (else 1); voxel_size, trunc_voxels, max_depth: the
    fused volume."""

    image_size: tuple[int, int] = (160, 120)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    n_neighbours: int = 5
    neighbour_separation: float = 0.05
    keyframe_translation: float = 0.05
    keyframe_rotation_deg: float = 10.0
    refine_scale: int = 1
    refine_hypotheses: int = 8
    refine_range: float = 1.5
    refine_window: int = 7
    consistency_views: int = 4
    min_consistent: int = 1
    consistency_tol: float = 0.03
    weighted_fusion: bool = False
    voxel_size: float = 0.04
    trunc_voxels: float = 5.0
    max_depth: float = 3.0


def prior_stereo_config() -> StereoConfig:
    """The stereo settings a model's prior is made with, in preparation and in inference
    alike (keyframes every 15 cm, 7x7 NCC windows, the best 2 of 5 neighbours, not
    spread apart, a 3-voxel truncation band), kept apart from ``method=stereo``'s own
    defaults. The bundled model was first trained on priors with 11x11 windows and the
    best 3; given these at inference it scored higher on held-out scenes (model card:
    F@5cm synthetic 0.670 -> 0.698, 7-Scenes 0.153 -> 0.165), since smaller windows
    smear fewer depth edges, where stereo's outliers are. It was then fine-tuned on
    priors made with these settings."""
    return StereoConfig(
        keyframe_translation=0.15,
        neighbour_separation=0.0,
        trunc_voxels=3.0,
        sweep=SweepConfig(window=7, top_k=2),
    )


@dataclass
class StereoDepths:
    """keyframes: (N,) frame indices; depths, confidence: (N, H, W) float32 (filtered;
    0 where rejected); K: (3, 3) at the depth maps' size; poses: (N, 4, 4)
    camera-to-world; weights: (N, H, W) float32 fusion weight of each depth, or None
    (all 1)."""

    keyframes: np.ndarray
    depths: torch.Tensor
    confidence: torch.Tensor
    K: torch.Tensor
    poses: torch.Tensor
    weights: torch.Tensor | None = None

    @property
    def image_size(self) -> tuple[int, int]:
        """(width, height) of the depth maps."""
        return int(self.depths.shape[-1]), int(self.depths.shape[-2])


def grey_images(reader: SceneReader, *sizes: tuple[int, int]) -> list[torch.Tensor]:
    """(N, H, W) uint8 grey images of every frame at each of ``sizes`` (width, height),
    each resized from the full image (zeros for invalid poses), read one frame at a
    time."""
    valid = reader.valid
    out = [torch.zeros(len(reader), h, w, dtype=torch.uint8) for w, h in sizes]
    indices = np.flatnonzero(valid)
    frames = zip(indices, reader.iter_frames(indices, depth=False), strict=True)
    for i, frame in tqdm(
        frames, total=len(indices), desc="reading frames", unit="frame", leave=False
    ):
        check_color_size(frame, reader.color_size)
        img = Image.fromarray(frame.color).convert("L")
        for images, size in zip(out, sizes, strict=True):
            images[i] = torch.from_numpy(np.array(img.resize(size, Image.BILINEAR)))
    return out


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


def _sweep_keyframe(
    kf: int,
    nbrs: np.ndarray,
    grey: list[torch.Tensor],
    K: list[torch.Tensor],
    poses: torch.Tensor,
    cfg: StereoConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (H, W) metres (0 where rejected) and confidence (H, W) of keyframe ``kf``
    against ``nbrs``: the coarse sweep on ``grey[0]``, then with ``refine_scale`` > 1
    the per-pixel refinement on ``grey[1]`` (K: the intrinsics of each size)."""
    sweep = cfg.sweep
    res = plane_sweep(
        grey[0][kf].float() / 255, grey[0][nbrs].float() / 255, K[0], poses[kf], poses[nbrs], sweep
    )
    if cfg.refine_scale == 1:
        return res.depth, res.confidence
    h, w = grey[1].shape[-2:]
    keep = F.interpolate((res.depth > 0)[None, None].float(), size=(h, w), mode="nearest")[0, 0]
    inv = F.interpolate((1 / res.raw_depth)[None, None], size=(h, w), mode="bilinear")[0, 0]
    plane_step = (1 / sweep.min_depth - 1 / sweep.max_depth) / (sweep.n_planes - 1)
    n = cfg.refine_hypotheses
    fine = refine_depth(
        grey[1][kf].float() / 255,
        grey[1][nbrs].float() / 255,
        K[1],
        poses[kf],
        poses[nbrs],
        inv,
        2 * cfg.refine_range * plane_step / (n - 1),
        n,
        cfg.refine_window,
        sweep.top_k,
        sweep.temperature,
    )
    ok = (keep > 0) & (fine.depth > 0) & (fine.cost < sweep.max_cost)
    zero = torch.zeros_like(fine.depth)
    return torch.where(ok, fine.depth, zero), torch.where(ok, fine.confidence, zero)


def stereo_depths(reader: SceneReader, cfg: StereoConfig, device: str = "cpu") -> StereoDepths:
    """Filtered depth maps of the keyframes of a sequence: :func:`sweep_keyframes`, then
    :func:`filter_depths`."""
    return filter_depths(sweep_keyframes(reader, cfg, device), cfg)


def sweep_keyframes(reader: SceneReader, cfg: StereoConfig, device: str = "cpu") -> StereoDepths:
    """Depth maps of the keyframes of a sequence, each from its own neighbours only
    (not yet checked against other keyframes; no fusion weights)."""
    check_stereo_config(cfg)
    poses_np = reader.poses
    valid = reader.valid
    if valid.sum() < 2:
        raise ValueError(
            f"{reader.name}: stereo needs at least two frames with finite "
            f"poses, got {int(valid.sum())}"
        )
    w, h = cfg.image_size
    sizes = [(w, h)]
    if cfg.refine_scale > 1:
        sizes.append((w * cfg.refine_scale, h * cfg.refine_scale))
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
    depths, confidences, used = [], [], []
    for kf in tqdm(keys, desc="plane sweep", unit="keyframe", leave=False):
        nbrs = select_neighbours(
            poses_np,
            int(kf),
            cfg.n_neighbours,
            _overlap_depth(cfg),
            Ks_np[0],
            cfg.image_size,
            min_separation=cfg.neighbour_separation,
        )
        if len(nbrs) == 0:
            log.warning(
                "%s: keyframe %d has no neighbour with a baseline; skipped", reader.name, kf
            )
            continue
        depth, confidence = _sweep_keyframe(int(kf), nbrs, grey, Ks, poses, cfg)
        depths.append(depth)
        confidences.append(confidence)
        used.append(int(kf))
    if not used:
        raise ValueError(
            f"{reader.name}: no keyframe has a neighbour with a baseline "
            "(all frames at the same position?)"
        )
    return StereoDepths(
        np.array(used), torch.stack(depths), torch.stack(confidences), Ks[-1], poses[used]
    )


def _overlap_depth(cfg: StereoConfig) -> float:
    """Metres ahead at which views are compared for overlap and triangulation angle."""
    return min(0.5 * (cfg.sweep.min_depth + cfg.sweep.max_depth), 2.0)


def filter_depths(result: StereoDepths, cfg: StereoConfig) -> StereoDepths:
    """Keyframe depths kept where at least ``cfg.min_consistent`` of the
    ``cfg.consistency_views`` best overlapping other keyframes agree (within
    ``cfg.consistency_tol``), with fusion weights when ``cfg.weighted_fusion``."""
    poses_np = result.poses.cpu().double().numpy()
    K, K_np = result.K, result.K.cpu().double().numpy()
    depths = result.depths
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


def check_stereo_config(cfg: StereoConfig) -> None:
    """Raise ValueError naming the first stereo setting that cannot work."""
    if cfg.refine_scale < 1:
        raise ValueError(f"stereo.refine_scale must be >= 1, got {cfg.refine_scale}")
    if cfg.refine_scale > 1 and cfg.refine_hypotheses < 3:
        raise ValueError(
            f"stereo.refine_hypotheses must be >= 3 to refine, got {cfg.refine_hypotheses}"
        )
    if cfg.min_consistent < 0:
        raise ValueError(f"stereo.min_consistent must be >= 0, got {cfg.min_consistent}")


def fuse_stereo(
    result: StereoDepths,
    cfg: StereoConfig,
    device: str = "cpu",
    voxel_size: float | None = None,
    mode: str = "surface",
) -> VoxelGrid:
    """TSDF of the filtered keyframe depths on a grid covering their frusta, at
    ``voxel_size`` (default ``cfg.voxel_size``; origin a multiple of it) in fusion
    ``mode``."""
    poses = result.poses.cpu().numpy().astype(np.float64)
    K = result.K.cpu().numpy().astype(np.float64)
    weights = result.weights if result.weights is not None else [None] * len(result.depths)
    return fuse_depth_frames(
        ((d, None, wt) for d, wt in zip(result.depths, weights, strict=True)),
        K,
        poses,
        result.image_size,
        voxel_size or cfg.voxel_size,
        cfg.max_depth,
        trunc_voxels=cfg.trunc_voxels,
        mode=mode,
        device=device,
    )


def fuse_prior(
    result: StereoDepths, cfg: StereoConfig, voxel_size: float, device: str = "cpu"
) -> VoxelGrid:
    """The stereo geometry prior for a model: the filtered keyframe depths fused at
    ``voxel_size`` in frustum mode, so space the matched rays crossed is observed as
    free (TSDF 1, weight > 0) and space no matched ray reached stays unobserved
    (weight 0)."""
    return fuse_stereo(result, cfg, device, voxel_size, mode="frustum")
