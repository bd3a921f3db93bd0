"""Stereo reconstruction of a posed RGB sequence: keyframe depth maps by plane sweep,
filtered by cost, uniqueness and agreement between keyframes, fused into a TSDF."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from atlas.data.frames import SceneReader, check_color_size
from atlas.geometry import VoxelGrid, fuse_depth_frames
from atlas.geometry.camera import scale_intrinsics
from atlas.stereo.consistency import consistent_votes
from atlas.stereo.plane_sweep import SweepConfig, plane_sweep
from atlas.stereo.views import select_keyframes, select_neighbours

log = logging.getLogger(__name__)


@dataclass
class StereoConfig:
    """image_size: (width, height) the sweep runs at; n_neighbours: views per keyframe;
    neighbour_separation: metres between any two neighbours a keyframe is matched against
    (0: the best ranked, often consecutive frames; the keyframes its depth is checked
    against are not spread); keyframe_translation (m) / keyframe_rotation_deg:
    pose change between keyframes; consistency_views: other keyframes each depth map is
    checked against; min_consistent: how many must agree; consistency_tol: relative depth
    tolerance; voxel_size, trunc_voxels, max_depth: the fused volume."""

    image_size: tuple[int, int] = (160, 120)
    sweep: SweepConfig = field(default_factory=SweepConfig)
    n_neighbours: int = 5
    # F@5cm with 0 / 0.05 / 0.1 m: 7-Scenes frames 0-499 0.294 / 0.314 / 0.320, the
    # 300-frame synthetic room 0.611 / 0.627 / 0.600 (at 0 the 5 neighbours were
    # consecutive frames, one baseline and one shared error)
    neighbour_separation: float = 0.05
    keyframe_translation: float = 0.05
    keyframe_rotation_deg: float = 10.0
    consistency_views: int = 4
    min_consistent: int = 1
    consistency_tol: float = 0.03
    voxel_size: float = 0.04
    # F@5cm with 3 / 5 / 8 voxels: 7-Scenes frames 0-499 0.314 / 0.331 / 0.338, the
    # 300-frame synthetic room 0.627 / 0.623 / 0.611: noisy real depth (7-10% at 2 m)
    # averages only where the band is wider than its error
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
    """keyframes: (N,) frame indices; depths, confidence: (N, H, W) float32 (filtered);
    K: (3, 3) at the sweep size; poses: (N, 4, 4) camera-to-world."""

    keyframes: np.ndarray
    depths: torch.Tensor
    confidence: torch.Tensor
    K: torch.Tensor
    poses: torch.Tensor


def grey_images(reader: SceneReader, size: tuple[int, int]) -> torch.Tensor:
    """(N, H, W) uint8 grey images of every frame at ``size`` (zeros for invalid poses),
    read one frame at a time."""
    valid = reader.valid
    out = torch.zeros(len(reader), size[1], size[0], dtype=torch.uint8)
    indices = np.flatnonzero(valid)
    frames = zip(indices, reader.iter_frames(indices), strict=True)
    for i, frame in tqdm(
        frames, total=len(indices), desc="reading frames", unit="frame", leave=False
    ):
        check_color_size(frame, reader.color_size)
        img = Image.fromarray(frame.color).convert("L")
        out[i] = torch.from_numpy(np.array(img.resize(size, Image.BILINEAR)))
    return out


def stereo_depths(reader: SceneReader, cfg: StereoConfig, device: str = "cpu") -> StereoDepths:
    """Filtered depth maps of the keyframes of a sequence."""
    poses_np = reader.poses
    valid = reader.valid
    if valid.sum() < 2:
        raise ValueError(
            f"{reader.name}: stereo needs at least two frames with finite "
            f"poses, got {int(valid.sum())}"
        )
    w, h = cfg.image_size
    K_np = scale_intrinsics(reader.K_color, w / reader.color_size[0], h / reader.color_size[1])
    K = torch.tensor(K_np, dtype=torch.float32, device=device)
    poses = torch.tensor(
        np.where(valid[:, None, None], poses_np, np.eye(4)), dtype=torch.float32, device=device
    )
    keys = select_keyframes(poses_np, cfg.keyframe_translation, cfg.keyframe_rotation_deg)
    grey = grey_images(reader, cfg.image_size).to(device)
    mid_depth = 0.5 * (cfg.sweep.min_depth + cfg.sweep.max_depth)
    raw_depths, confidences, used = [], [], []
    for kf in tqdm(keys, desc="plane sweep", unit="keyframe", leave=False):
        nbrs = select_neighbours(
            poses_np,
            int(kf),
            cfg.n_neighbours,
            min(mid_depth, 2.0),
            K_np,
            cfg.image_size,
            min_separation=cfg.neighbour_separation,
        )
        if len(nbrs) == 0:
            log.warning(
                "%s: keyframe %d has no neighbour with a baseline; skipped", reader.name, kf
            )
            continue
        res = plane_sweep(
            grey[kf].float() / 255, grey[nbrs].float() / 255, K, poses[kf], poses[nbrs], cfg.sweep
        )
        raw_depths.append(res.depth)
        confidences.append(res.confidence)
        used.append(int(kf))
    if not used:
        raise ValueError(
            f"{reader.name}: no keyframe has a neighbour with a baseline "
            "(all frames at the same position?)"
        )
    depths = torch.stack(raw_depths)
    conf = torch.stack(confidences)
    key_poses = poses[used]
    filtered = torch.zeros_like(depths)
    used_np = np.array(used)
    for i in range(len(used)):
        others = select_neighbours(
            poses_np[used_np],
            i,
            cfg.consistency_views,
            min(mid_depth, 2.0),
            K_np,
            cfg.image_size,
            min_overlap=0.5,
        )
        if len(others) == 0:
            continue
        votes = consistent_votes(
            depths[i], K, key_poses[i], depths[others], key_poses[others], cfg.consistency_tol
        )
        filtered[i] = torch.where(votes >= cfg.min_consistent, depths[i], 0.0)
    conf = torch.where(filtered > 0, conf, 0.0)
    return StereoDepths(used_np, filtered, conf, K, key_poses)


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
    return fuse_depth_frames(
        ((d, None) for d in result.depths),
        K,
        poses,
        cfg.image_size,
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
