"""The reconstruction methods, a registry of three: ``model`` (the learned network and
its stereo prior), ``stereo`` (multi-view stereo fused, no model) and ``fusion`` (TSDF
fusion of the sensor depth, for RGB-D captures). Each takes a reader whose poses are
already in the frame to reconstruct in (see :mod:`atlas.pipeline.scene`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from atlas.geometry import fuse_depth_frames
from atlas.geometry.marching_cubes import check_upsample
from atlas.model.checkpoint import BUNDLED, load_model
from atlas.model.contract import resolve_input
from atlas.model.inference import ModelInferenceConfig, PriorDepths, reconstruct_volume
from atlas.pipeline.result import Reconstruction, SemanticLabels, finish, spread_frames
from atlas.readers.frames import SceneReader
from atlas.stereo.pipeline import StereoConfig, fuse_stereo, stereo_depths
from atlas.validate import is_finite_number, is_int_at_least


@dataclass
class FusionConfig:
    """TSDF fusion of the sensor depth: voxel_size (metres), max_depth (metres: depth
    beyond is ignored), trunc_voxels (truncation, voxels), frame_stride (every k-th
    valid frame)."""

    voxel_size: float = 0.04
    max_depth: float = 5.0
    trunc_voxels: float = 3.0
    frame_stride: int = 1

    def check(self, prefix: str = "fusion.") -> None:
        """``ValueError`` naming the first setting out of range (``prefix`` + name)."""
        for name in ("voxel_size", "max_depth", "trunc_voxels"):
            value = getattr(self, name)
            if not (is_finite_number(value) and value > 0):
                raise ValueError(f"{prefix}{name} must be a positive number, got {value!r}")
        if not is_int_at_least(self.frame_stride, 1):
            raise ValueError(
                f"{prefix}frame_stride must be an integer >= 1, got {self.frame_stride!r}"
            )


@dataclass
class MethodSettings:
    """Every method's settings; a run uses those of its method. checkpoint: the model
    file or training checkpoint of ``model`` (None: the bundled model); prior_depths:
    where the model's prior depth maps come from (default stereo; the model card's
    diagnostics pass the depth sensor's, see :data:`atlas.model.inference.PriorDepths`)."""

    checkpoint: str | Path | None = None
    model: ModelInferenceConfig = field(default_factory=ModelInferenceConfig)
    stereo: StereoConfig = field(default_factory=StereoConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    prior_depths: PriorDepths = stereo_depths


def reconstruct_stereo(
    reader: SceneReader, cfg: StereoConfig | None = None, device: str = "cpu"
) -> Reconstruction:
    """Reconstruct a posed RGB sequence with plane-sweep stereo and TSDF fusion."""
    cfg = cfg or StereoConfig()
    t0 = time.perf_counter()
    depths = stereo_depths(reader, cfg, device)
    t1 = time.perf_counter()
    grid = fuse_stereo(depths, cfg, device)
    t2 = time.perf_counter()
    facts = {
        "keyframes": len(depths.keyframes),
        "depth_pixels_kept": float((depths.depths > 0).float().mean()),
    }
    seconds = {"stereo": round(t1 - t0, 2), "fusion": round(t2 - t1, 2)}
    rec = finish(reader, grid, "stereo", facts, spread_frames(depths.keyframes), seconds)
    rec.depths = depths
    return rec


def reconstruct_model(
    reader: SceneReader,
    model: str | Path | None = None,
    cfg: ModelInferenceConfig | None = None,
    device: str = "cpu",
    prior_depths: PriorDepths = stereo_depths,
) -> Reconstruction:
    """Reconstruct a posed RGB sequence with a trained model (a model file or training
    checkpoint; default: the bundled model), its prior fused from ``prior_depths``."""
    cfg = cfg or ModelInferenceConfig()
    cfg.check()  # before the work, not after it
    check_upsample(cfg.mesh_upsample)
    net, model_cfg, _, contract = load_model(model, device)
    where = str(model or BUNDLED)
    pred = reconstruct_volume(reader, net, model_cfg, cfg, contract, device, prior_depths, where)
    grid, facts = pred.grid, pred.facts
    seconds = facts.pop("seconds")
    facts["model"] = str(model or "bundled")
    frames = spread_frames(pred.frames)
    # vertices every model voxel / mesh_upsample, whatever the output grid's voxel size
    upsample = max(1, round(cfg.mesh_upsample * grid.voxel_size / pred.model_grid.voxel_size))
    rec = finish(reader, grid, "model", facts, frames, seconds, upsample)
    rec.prior = pred.prior
    if pred.labels is not None:
        rec.labels = SemanticLabels.from_volume(pred.labels, grid, rec.mesh)
        rec.summary["semantic_classes"] = model_cfg.net.semantic_classes
    return rec


def check_model_settings(checkpoint: str | Path | None, cfg: ModelInferenceConfig) -> None:
    """Once, before any scene: a model file that does not load, or settings that ask for
    another input than its contract (see :func:`atlas.model.contract.resolve_input`), is
    a ``ValueError`` naming the file."""
    contract = load_model(checkpoint).contract
    where = str(checkpoint or BUNDLED)
    resolve_input(contract, cfg.stereo, cfg.image_size, cfg.allow_input_mismatch, where)


def reconstruct_fusion(
    reader: SceneReader, cfg: FusionConfig | None = None, device: str = "cpu"
) -> Reconstruction:
    """TSDF fusion of the sensor depth of an RGB-D capture (every ``frame_stride``-th
    valid frame): the baseline every paper reports. A capture without depth is a
    ``ValueError`` naming it."""
    cfg = cfg or FusionConfig()
    cfg.check()
    if reader.K_depth is None or reader.depth_size is None:
        raise ValueError(
            f"{reader.where}: method=fusion needs depth images and this capture has none; "
            "use method=model or method=stereo for RGB-only input"
        )
    indices = np.flatnonzero(reader.valid)[:: cfg.frame_stride]
    if len(indices) == 0:
        raise ValueError(f"{reader.where}: no frame has a valid pose; nothing to fuse")
    size = reader.depth_size

    def frames():
        progress = tqdm(total=len(indices), desc=f"fusing depth {reader.name}", unit="frame")
        with progress:
            for frame in reader.iter_frames(indices):
                color = Image.fromarray(frame.color).resize(size, Image.BILINEAR)
                progress.update()
                yield frame.depth, np.asarray(color)

    t0 = time.perf_counter()
    grid = fuse_depth_frames(
        frames(),
        reader.K_depth,
        reader.poses[indices],
        size,
        cfg.voxel_size,
        cfg.max_depth,
        with_color=True,
        trunc_voxels=cfg.trunc_voxels,
        device=device,
    )
    seconds = {"fusion": round(time.perf_counter() - t0, 2)}
    return finish(
        reader, grid, "fusion", {"frames_fused": len(indices)}, spread_frames(indices), seconds
    )


Method = Callable[[SceneReader, MethodSettings, str], Reconstruction]

METHODS: dict[str, Method] = {
    "model": lambda reader, s, device: reconstruct_model(
        reader, s.checkpoint, s.model, device, s.prior_depths
    ),
    "stereo": lambda reader, s, device: reconstruct_stereo(reader, s.stereo, device),
    "fusion": lambda reader, s, device: reconstruct_fusion(reader, s.fusion, device),
}


def method_named(name: str) -> Method:
    """The registered method ``name``; ``ValueError`` naming the choices otherwise."""
    if name not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]
