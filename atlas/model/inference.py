"""Reconstruct a posed RGB sequence with a trained model, at any scene size.

The grid covers the chosen frames' frusta (clipped at ``max_depth``), so nothing the
cameras saw is clipped; its origin is a multiple of the coarsest voxel size, so
translating every pose by whole coarse voxels translates the result exactly. Frames
stream through the backbone ``view_chunk`` at a time and only their stride-4 features
are kept (77 kB a frame at 160x120; a ``color_variance`` model also keeps the 58 kB
uint8 image). The volume is processed in tiles in x and y (one
when it fits ``chunk_voxels``): each tile, with ``chunk_margin`` voxels of context on
every side, gets its own running feature sum and count from all frames, its network
input and its 3D network pass, and only its centre is kept; so the large per-voxel
buffers are a tile's, and what grows with the scene is a few bytes a voxel (prior,
result).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from atlas.geometry import VoxelGrid
from atlas.geometry.camera import frustum_bounds, scale_intrinsics
from atlas.model.atlas_net import ATLASNet
from atlas.model.backproject import FeatureVolume
from atlas.model.config import ModelConfig
from atlas.model.contract import InputContract, resolve_input
from atlas.model.evidence import keep_evidence
from atlas.model.photo_consistency import ColorVariance
from atlas.readers.frames import SceneReader
from atlas.stereo.pipeline import (
    StereoConfig,
    StereoDepths,
    fuse_prior,
    fuse_stereo,
    stereo_depths,
)
from atlas.stereo.presets import preset_name
from atlas.stereo.views import select_keyframes
from atlas.validate import is_finite_number, is_int_at_least

log = logging.getLogger(__name__)

# Where a model's prior depth maps come from: (reader, stereo settings, device,
# refined_scale) -> the keyframes' depths, with the same sweeps refined at refined_scale
# as their ``refined`` maps when > 1 (see atlas.stereo.pipeline.stereo_depths). Stereo in
# use; the model card swaps in the depth sensor to measure what a perfect prior would give.
PriorDepths = Callable[[SceneReader, StereoConfig, str, int], StereoDepths]


@dataclass
class ModelInferenceConfig:
    """image_size: (width, height) the backbone sees (None: the model's contract's);
    frame_stride: use every k-th frame; keyframe_translation (metres) /
    keyframe_rotation_deg: when translation > 0, keep only frames that moved that much
    since the last kept one; max_depth: metres, frusta are clipped there;
    chunk_voxels: most finest-scale voxels the 3D network takes at once (tile plus
    margins); chunk_margin: context voxels on each side of a tile (multiple of 4);
    rotations: 1, or 2 or 4 to average the 3D network over that many quarter turns of
    its input about +z (test-time augmentation, that many times the 3D part's time);
    mesh_upsample: the mesh is polygonised on the TSDF's trilinear interpolation this
    many times finer than the model's grid (vertices every voxel_size / k; with
    evidence the output grid is already finer and is polygonised at that spacing);
    stereo: the prior's settings (None: the
    model's own, from its input contract; others must equal them unless
    allow_input_mismatch, as must image_size, see
    :func:`atlas.model.contract.resolve_input`); evidence: combine the model's surface
    with its prior's depth maps fused at the stereo settings' voxel size
    (:mod:`atlas.model.evidence`: stereo surface within evidence_agree metres of the
    model's is kept, other stereo surface dropped, the model fills what stereo did not
    observe within evidence_reach metres of kept stereo surface; that fusion's
    truncation band is evidence_trunc_voxels voxels), so the output is at that finer
    voxel size; off: the model's own grid. evidence_refine_scale: those depth maps are
    the prior's sweeps refined per pixel at this many times their size, pooled back to
    the prior's size for fusion as ``method=stereo`` does (the prior itself stays as
    trained; 1, a prior that is already refined, or refined maps that kept nothing: its
    own maps); the refinement's time counts in the summary's stereo prior seconds.
    evidence_refine_poses: those refined maps are matched with poses refined
    photometrically from the prior's sweeps (stereo's ``refine_poses``, set to this
    whatever the prior's settings say, since it never touches the prior's own maps)."""

    image_size: tuple[int, int] | None = None
    frame_stride: int = 1
    keyframe_translation: float = 0.0
    keyframe_rotation_deg: float = 10.0
    max_depth: float = 3.0
    chunk_voxels: int = 128 * 128 * 48
    chunk_margin: int = 16
    rotations: int = 1
    mesh_upsample: int = 2
    stereo: StereoConfig | None = None
    allow_input_mismatch: bool = False
    evidence: bool = True
    evidence_agree: float = 0.16
    evidence_reach: float = 0.12
    evidence_trunc_voxels: float = 5.0
    evidence_refine_scale: int = 2
    evidence_refine_poses: bool = True

    def check(self, prefix: str = "") -> None:
        """``ValueError`` naming the first setting out of range (as ``prefix`` + its
        name, e.g. ``model.frame_stride``), so bad settings stop a run before its work
        (the stereo settings are checked by :func:`atlas.stereo.pipeline.check_stereo_config`)."""
        rules = [
            (
                "frame_stride",
                self.frame_stride,
                "an integer >= 1",
                is_int_at_least(self.frame_stride, 1),
            ),
            (
                "keyframe_translation",
                self.keyframe_translation,
                "a distance >= 0 (metres)",
                is_finite_number(self.keyframe_translation) and self.keyframe_translation >= 0,
            ),
            (
                "keyframe_rotation_deg",
                self.keyframe_rotation_deg,
                "an angle >= 0 (degrees)",
                is_finite_number(self.keyframe_rotation_deg) and self.keyframe_rotation_deg >= 0,
            ),
            (
                "max_depth",
                self.max_depth,
                "a distance > 0 (metres)",
                is_finite_number(self.max_depth) and self.max_depth > 0,
            ),
            (
                "chunk_voxels",
                self.chunk_voxels,
                "an integer >= 1",
                is_int_at_least(self.chunk_voxels, 1),
            ),
            (
                "chunk_margin",
                self.chunk_margin,
                "a multiple of 4, >= 0",
                is_int_at_least(self.chunk_margin, 0) and self.chunk_margin % 4 == 0,
            ),
            ("rotations", self.rotations, "1, 2 or 4", self.rotations in (1, 2, 4)),
            (
                "evidence_trunc_voxels",
                self.evidence_trunc_voxels,
                "a number of voxels > 0",
                is_finite_number(self.evidence_trunc_voxels) and self.evidence_trunc_voxels > 0,
            ),
            (
                "evidence_refine_scale",
                self.evidence_refine_scale,
                "an integer >= 1",
                is_int_at_least(self.evidence_refine_scale, 1),
            ),
            (
                "evidence_refine_poses",
                self.evidence_refine_poses,
                "true or false",
                isinstance(self.evidence_refine_poses, bool),
            ),
            (
                "evidence_reach",
                self.evidence_reach,
                "a distance > 0 (metres)",
                is_finite_number(self.evidence_reach) and self.evidence_reach > 0,
            ),
            (
                "evidence_agree",
                self.evidence_agree,
                "a distance > 0 (metres)",
                is_finite_number(self.evidence_agree) and self.evidence_agree > 0,
            ),
            (
                "mesh_upsample",
                self.mesh_upsample,
                "an integer >= 1",
                is_int_at_least(self.mesh_upsample, 1),
            ),
            (
                "image_size",
                self.image_size,
                "null or [width, height] in pixels, each >= 8",
                self.image_size is None
                or (
                    len(self.image_size) == 2
                    and all(is_int_at_least(v, 8) for v in self.image_size)
                ),
            ),
        ]
        for name, value, rule, ok in rules:
            if not ok:
                shown = list(value) if isinstance(value, tuple | list) else value
                raise ValueError(f"{prefix}{name} must be {rule}, got {shown!r}")


@dataclass
class VolumePrediction:
    """grid: the output TSDF: the model's own (unobserved where no view saw or the
    observed head says no scan would see), or with ``evidence`` its combination with
    the prior's stereo at that stereo's voxel size; model_grid: the model's own TSDF;
    prior: the stereo prior it was given, on the model's grid (None for ``prior=none``
    models); frames: (N,) indices of the frames used; facts: frames used, grid,
    timings; labels: (X, Y, Z) int16 semantic class per voxel of ``grid``, for a model
    with a semantic head, else None."""

    grid: VoxelGrid
    model_grid: VoxelGrid
    prior: VoxelGrid | None
    frames: np.ndarray
    facts: dict
    labels: np.ndarray | None = None


@dataclass
class ModelGrid:
    """The reconstruction volume: origin (3,) metres of voxel (0,0,0)'s centre at the
    finest scale; shape (X, Y, Z), each a multiple of 4."""

    origin: np.ndarray
    shape: tuple[int, int, int]
    voxel_size: float


def chosen_frames(reader: SceneReader, cfg: ModelInferenceConfig) -> np.ndarray:
    """Indices of the frames to use: valid poses, every ``frame_stride``-th, then
    keyframes by pose change when ``keyframe_translation`` > 0."""
    if cfg.frame_stride < 1:
        raise ValueError(f"frame_stride must be >= 1, got {cfg.frame_stride}")
    indices = np.flatnonzero(reader.valid)[:: cfg.frame_stride]
    if len(indices) == 0:
        raise ValueError(f"{reader.name}: no frame has a finite pose ({len(reader)} frames)")
    if cfg.keyframe_translation > 0:
        keep = select_keyframes(
            reader.poses[indices], cfg.keyframe_translation, cfg.keyframe_rotation_deg
        )
        indices = indices[keep]
    return indices


def model_grid(
    reader: SceneReader, indices: np.ndarray, model: ModelConfig, max_depth: float
) -> ModelGrid:
    """The grid covering the frusta of ``indices``, snapped to the coarsest voxels."""
    vs, coarsest = model.voxel_sizes[0], model.voxel_sizes[-1]
    lo, hi = frustum_bounds(reader.K_color, reader.poses[indices], reader.color_size, max_depth)
    origin = np.floor(lo / coarsest) * coarsest
    shape = np.ceil((hi - origin) / vs).astype(int) + 1
    ratio = round(coarsest / vs)
    shape = -(-shape // ratio) * ratio
    return ModelGrid(origin, tuple(int(n) for n in shape), vs)


def on_grid(source: VoxelGrid, grid: ModelGrid) -> tuple[np.ndarray, np.ndarray]:
    """``source``'s TSDF and observed mask on ``grid`` (same voxel size, origins a whole
    number of voxels apart): a copy of the overlap, TSDF 1 and unobserved elsewhere."""
    if abs(source.voxel_size - grid.voxel_size) > 1e-9:
        raise ValueError(f"voxel sizes differ: {source.voxel_size} and {grid.voxel_size}")
    offset = np.round((grid.origin - source.origin) / grid.voxel_size).astype(int)
    tsdf = np.ones(grid.shape, np.float32)
    observed = np.zeros(grid.shape, bool)
    lo = np.maximum(offset, 0)
    hi = np.minimum(offset + np.array(grid.shape), source.shape)
    if (hi > lo).all():
        src = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        dst = tuple(slice(a - o, b - o) for a, b, o in zip(lo, hi, offset, strict=True))
        tsdf[dst] = source.tsdf[src]
        observed[dst] = source.observed[src]
    return tsdf, observed


def prior_volume(
    reader: SceneReader,
    grid: ModelGrid,
    cfg: StereoConfig,
    device: str,
    prior_depths: PriorDepths = stereo_depths,
    refined_scale: int = 1,
) -> tuple[torch.Tensor, torch.Tensor, dict, StereoDepths | None]:
    """The stereo prior sampled on ``grid``: tsdf, observed (1, X, Y, Z), facts and the
    depth maps it was fused from (with their ``refined`` maps when ``refined_scale`` >
    1, see :data:`PriorDepths`). With fewer than two frames, or no pair with a
    baseline, the prior is empty (all unobserved, no depth maps) and the facts say why:
    the model then works from image features alone."""
    try:
        depths = prior_depths(reader, cfg, device, refined_scale)
    except ValueError as err:
        log.warning("%s: no stereo prior: %s", reader.name, err)
        empty = torch.zeros((1, *grid.shape), device=device)
        return empty + 1, empty.bool(), {"keyframes": 0, "warning": str(err)}, None
    tsdf, observed = on_grid(fuse_prior(depths, cfg, grid.voxel_size, device), grid)
    facts = {
        "keyframes": len(depths.keyframes),
        "depth_pixels_kept": round(float((depths.depths > 0).float().mean()), 4),
    }
    return (
        torch.from_numpy(tsdf)[None].to(device),
        torch.from_numpy(observed)[None].to(device),
        facts,
        depths,
    )


def _image_batches(reader: SceneReader, indices: np.ndarray, size: tuple[int, int], batch: int):
    """(images (1, n, 3, H, W) float in [0, 1], poses (n, 4, 4)) ``batch`` frames at a
    time, with a progress bar (colour only: depth is never read)."""
    images, poses, all_poses = [], [], reader.poses
    frames = zip(indices, reader.iter_images(indices, [size]), strict=True)
    for index, (img,) in tqdm(
        frames, total=len(indices), desc=f"features {reader.name}", unit="frame", leave=False
    ):
        images.append(torch.from_numpy(img).permute(2, 0, 1))
        poses.append(all_poses[index])
        if len(images) == batch:
            yield torch.stack(images)[None].float() / 255, np.stack(poses)
            images, poses = [], []
    if images:
        yield torch.stack(images)[None].float() / 255, np.stack(poses)


def tiles(
    shape: tuple[int, int, int], chunk_voxels: int, margin: int
) -> list[tuple[slice, slice, slice, slice]]:
    """x/y tiles (core_x, core_y, with-margin x, with-margin y) covering ``shape``; all
    bounds multiples of 4. One tile when the whole volume fits ``chunk_voxels``."""
    X, Y, Z = shape
    if X * Y * Z <= chunk_voxels:
        return [(slice(0, X), slice(0, Y), slice(0, X), slice(0, Y))]
    side = int(np.sqrt(chunk_voxels / Z)) - 2 * margin
    side = max(4, side // 4 * 4)
    out = []
    for x0 in range(0, X, side):
        for y0 in range(0, Y, side):
            x1, y1 = min(x0 + side, X), min(y0 + side, Y)
            out.append(
                (
                    slice(x0, x1),
                    slice(y0, y1),
                    slice(max(x0 - margin, 0), min(x1 + margin, X)),
                    slice(max(y0 - margin, 0), min(y1 + margin, Y)),
                )
            )
    return out


@dataclass
class TiledPrediction:
    """The 3D network over a whole volume: tsdf (X, Y, Z) finest TSDF; observed (X, Y, Z)
    bool, the observed head's mask; seen (X, Y, Z) bool, voxels some view saw; labels
    (X, Y, Z) int16 semantic class per voxel (argmax of the semantic head), or None for a
    model without one."""

    tsdf: torch.Tensor
    observed: torch.Tensor
    seen: torch.Tensor
    labels: torch.Tensor | None


@torch.no_grad()
def predict_tiled(
    net: ATLASNet,
    shape: tuple[int, int, int],
    tile_input: Callable[[slice, slice], tuple[torch.Tensor, torch.Tensor]],
    chunk_voxels: int,
    margin: int,
    progress: bool = False,
    rotations: int = 1,
) -> TiledPrediction:
    """The 3D network over a volume of ``shape`` in tiles (see :func:`tiles`).

    tile_input(x_slice, y_slice) gives the network input of a tile with its margins,
    (1, C, x, y, Z), and its seen mask (x, y, Z) bool, so only one tile's input exists
    at a time; rotations: see :func:`rotation_averaged`."""
    if margin % 4:
        raise ValueError(f"chunk_margin must be a multiple of 4, got {margin}")
    tsdf = torch.ones(shape)
    observed = torch.zeros(shape, dtype=torch.bool)
    seen = torch.zeros(shape, dtype=torch.bool)
    labels = torch.zeros(shape, dtype=torch.int16) if net.net.semantic is not None else None
    parts = tiles(shape, chunk_voxels, margin)
    bar = tqdm(
        parts, desc="3D network", unit="tile", leave=False, disable=not progress or len(parts) == 1
    )
    for cx, cy, mx, my in bar:
        x, tile_seen = tile_input(mx, my)
        tile_tsdf, tile_logits, tile_semantic = rotation_averaged(net, x, rotations)
        core = (
            slice(cx.start - mx.start, cx.stop - mx.start),
            slice(cy.start - my.start, cy.stop - my.start),
        )
        tsdf[cx, cy] = tile_tsdf[core].cpu()
        observed[cx, cy] = tile_logits[core].cpu() > 0
        seen[cx, cy] = tile_seen[core].cpu()
        if labels is not None:
            labels[cx, cy] = tile_semantic[:, core[0], core[1]].argmax(0).to(torch.int16).cpu()
    return TiledPrediction(tsdf, observed, seen, labels)


def rotation_averaged(
    net: ATLASNet, x: torch.Tensor, rotations: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The 3D network's finest TSDF and observed logits, both (x, y, Z), and semantic
    logits (classes, x, y, Z) or None, for an input x (1, C, x, y, Z), averaged over
    ``rotations`` (1, 2 or 4) quarter turns of the input about +z, each turned back
    before averaging (exact re-indexing; the network was trained on crops at any angle
    about +z)."""
    if rotations not in (1, 2, 4):
        raise ValueError(f"rotations must be 1, 2 or 4, got {rotations}")
    tsdf, logits, semantic = 0.0, 0.0, None
    for k in range(0, 4, 4 // rotations):
        fine = net.net(torch.rot90(x, k, dims=(2, 3)))[0]
        tsdf = tsdf + torch.rot90(fine.tsdf[0, 0], -k, dims=(0, 1))
        logits = logits + torch.rot90(fine.observed[0, 0], -k, dims=(0, 1))
        if fine.semantic is not None:
            turned = torch.rot90(fine.semantic[0], -k, dims=(1, 2))
            semantic = turned if semantic is None else semantic + turned
    if semantic is not None:
        semantic = semantic / rotations
    return tsdf / rotations, logits / rotations, semantic


def views_touching_box(
    projection: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, width: int, height: int
) -> torch.Tensor:
    """(V,) bool: views (projection (V, 3, 4) world -> pixels of a width x height map)
    that may see the world box [lo, hi]. Conservative: a view is dropped only when all
    8 corners are behind it, or all in front of it and beyond one side of the image."""
    corners = torch.stack(
        torch.meshgrid(*[torch.stack([a, b]) for a, b in zip(lo, hi, strict=True)], indexing="ij"),
        -1,
    ).reshape(8, 3)
    cam = projection[:, :, :3] @ corners.T + projection[:, :, 3:]  # (V, 3, 8)
    z = cam[:, 2]
    front = z > 1e-6
    u = cam[:, 0] / z.clamp(min=1e-6)
    v = cam[:, 1] / z.clamp(min=1e-6)
    outside = (
        (u < -0.5).all(1) | (u > width - 0.5).all(1) | (v < -0.5).all(1) | (v > height - 0.5).all(1)
    )
    return front.any(1) & ~(front.all(1) & outside)


@dataclass
class ViewChunk:
    """Up to ``view_chunk`` frames as the 3D part needs them: features (1, n, C, h, w)
    and projection (1, n, 3, 4) world -> feature-map pixels; for a ``color_variance``
    model also colours (1, n, 3, H, W) uint8 and color_projection (1, n, 3, 4) world ->
    image pixels (else None)."""

    features: torch.Tensor
    projection: torch.Tensor
    colors: torch.Tensor | None = None
    color_projection: torch.Tensor | None = None


def frame_features(
    reader: SceneReader,
    indices: np.ndarray,
    net: ATLASNet,
    image_size: tuple[int, int],
    device: str,
) -> list[ViewChunk]:
    """Backbone features of the frames, streamed ``view_chunk`` at a time. Kept for every
    frame (C * h * w floats each: 77 kB at 160x120, C = 16; plus the 58 kB uint8 image
    for a ``color_variance`` model) so each tile back-projects them without reading the
    images again."""
    w, h = image_size
    K = scale_intrinsics(reader.K_color, w / reader.color_size[0], h / reader.color_size[1])
    out = []
    with torch.no_grad():
        for images, poses in _image_batches(reader, indices, image_size, net.view_chunk):
            projection = torch.tensor(K @ np.linalg.inv(poses)[:, :3], dtype=torch.float32)
            projection = projection[None].to(device)
            chunk = ViewChunk(*net.image_features(images.to(device), projection))
            if net.color_variance:
                chunk.colors = (images * 255).round().to(torch.uint8).to(device)
                chunk.color_projection = projection
            out.append(chunk)
    return out


def reconstruct_volume(
    reader: SceneReader,
    net: ATLASNet,
    model: ModelConfig,
    cfg: ModelInferenceConfig,
    contract: InputContract,
    device: str = "cpu",
    prior_depths: PriorDepths = stereo_depths,
    where: str = "model",
) -> VolumePrediction:
    """The model's TSDF of a sequence, the prior it was given (its depth maps from
    ``prior_depths``), and facts. The input is built as the model's ``contract`` says
    (``cfg.stereo`` / ``cfg.image_size`` must agree with it, see
    :func:`atlas.model.contract.resolve_input`; ``where`` names the model in errors)."""
    cfg.check()
    prior_stereo, image_size = resolve_input(
        contract, cfg.stereo, cfg.image_size, cfg.allow_input_mismatch, where
    )
    t0 = time.perf_counter()
    indices = chosen_frames(reader, cfg)
    grid = model_grid(reader, indices, model, cfg.max_depth)
    facts: dict = {
        "frames": len(reader),
        "frames_used": len(indices),
        "frames_skipped_invalid_pose": int((~reader.valid).sum()),
        "voxel_size": grid.voxel_size,
        "grid_shape": list(grid.shape),
        "bounds_min": grid.origin.tolist(),
        "bounds_max": (grid.origin + (np.array(grid.shape) - 1) * grid.voxel_size).tolist(),
    }
    prior_tsdf = prior_observed = depths = None
    if model.net.prior == "stereo":
        refined_scale = cfg.evidence_refine_scale if cfg.evidence else 1
        sweep_cfg = prior_stereo
        if refined_scale > 1 and prior_stereo.refine_scale == 1:  # the prior's maps unchanged
            sweep_cfg = dataclasses.replace(prior_stereo, refine_poses=cfg.evidence_refine_poses)
        prior_tsdf, prior_observed, stereo_facts, depths = prior_volume(
            reader, grid, sweep_cfg, device, prior_depths, refined_scale
        )
        facts["stereo"] = {"preset": preset_name(prior_stereo), **stereo_facts}
    t1 = time.perf_counter()
    features = frame_features(reader, indices, net, image_size, device)
    t2 = time.perf_counter()

    def tile_input(mx: slice, my: slice) -> tuple[torch.Tensor, torch.Tensor]:
        corner = grid.origin + grid.voxel_size * np.array([mx.start, my.start, 0])
        origin = torch.tensor(corner, dtype=torch.float32, device=device)[None]
        shape = (mx.stop - mx.start, my.stop - my.start, grid.shape[2])
        volume = FeatureVolume(
            origin, grid.voxel_size, shape, net.backbone.out_channels, net.feature_mode
        )
        colors = None
        if net.color_variance:
            colors = ColorVariance(origin, grid.voxel_size, shape, net.feature_mode)
        lo = torch.tensor(corner, dtype=torch.float32)
        hi = lo + grid.voxel_size * (torch.tensor(shape, dtype=torch.float32) - 1)
        for chunk in features:
            feats, proj = chunk.features, chunk.projection
            keep = views_touching_box(proj[0].cpu(), lo, hi, feats.shape[-1], feats.shape[-2])
            if keep.any():
                idx = torch.nonzero(keep).squeeze(1).to(feats.device)
                volume.add(feats.index_select(1, idx), proj.index_select(1, idx))
                if colors is not None:
                    colors.add(
                        chunk.colors.index_select(1, idx).float() / 255,
                        chunk.color_projection.index_select(1, idx),
                    )
        prior = (
            (None, None)
            if prior_tsdf is None
            else (prior_tsdf[:, mx, my], prior_observed[:, mx, my])
        )
        return net.volume_input(volume, *prior, colors), volume.count[0, 0] > 0

    with torch.no_grad():
        pred = predict_tiled(
            net,
            grid.shape,
            tile_input,
            cfg.chunk_voxels,
            cfg.chunk_margin,
            progress=True,
            rotations=cfg.rotations,
        )
    t3 = time.perf_counter()
    facts["seen_voxels"] = int(pred.seen.sum())
    seen = pred.seen & pred.observed
    facts["seconds"] = {
        "stereo_prior": round(t1 - t0, 2),
        "features_2d": round(t2 - t1, 2),
        "backprojection_and_3d": round(t3 - t2, 2),
    }
    prior = None
    if prior_tsdf is not None:
        prior = VoxelGrid(
            prior_tsdf[0].cpu().numpy(),
            prior_observed[0].float().cpu().numpy(),
            grid.origin,
            grid.voxel_size,
        )
    result = VoxelGrid(pred.tsdf.numpy(), seen.float().numpy(), grid.origin, grid.voxel_size)
    labels = None if pred.labels is None else pred.labels.numpy()
    output = result
    if not cfg.evidence:
        facts["evidence"] = "off"
    elif depths is None:
        facts["evidence"] = "skipped: no prior depth maps (the model's own grid)"
    else:
        t4 = time.perf_counter()
        band = dataclasses.replace(prior_stereo, trunc_voxels=cfg.evidence_trunc_voxels)
        evidence = depths.refined
        if evidence is None or not (evidence.depths > 0).any():
            evidence = depths  # none asked for, or none kept: the prior's own maps
        facts["evidence_depth_size"] = list(evidence.image_size)
        stereo = fuse_stereo(evidence, band, device)
        combined = keep_evidence(stereo, result, cfg.evidence_agree, cfg.evidence_reach)
        if combined.observed.any():
            output = combined
            facts["evidence"] = "on"
            if labels is not None:
                labels = nearest_labels(labels, result, output)
        else:  # stereo kept no surface the model confirms: nothing to anchor the rule
            facts["evidence"] = "skipped: no stereo surface confirmed (the model's own grid)"
            log.warning("%s: %s", reader.name, facts["evidence"])
        facts["seconds"]["evidence"] = round(time.perf_counter() - t4, 2)
    return VolumePrediction(output, result, prior, indices, facts, labels)


def nearest_labels(labels: np.ndarray, source: VoxelGrid, target: VoxelGrid) -> np.ndarray:
    """Per-voxel classes ``labels`` of ``source``'s grid on ``target``'s grid (same
    frame), each target voxel taking its nearest source voxel's (int16)."""
    ijk = np.indices(target.shape).reshape(3, -1).T
    src = np.rint((target.origin + ijk * target.voxel_size - source.origin) / source.voxel_size)
    src = np.clip(src.astype(np.int64), 0, np.array(source.shape) - 1)
    return labels[src[:, 0], src[:, 1], src[:, 2]].reshape(target.shape).astype(np.int16)
