"""Reconstructing a scene and writing its outputs (mesh, TSDF, picture, summary).

Python API::

    from atlas.data.detect import open_scene
    from atlas.reconstruction import reconstruct_model, reconstruct_stereo, save_reconstruction
    rec = reconstruct_model(open_scene("path/to/scene"))    # the bundled model
    rec = reconstruct_stereo(open_scene("path/to/scene"))   # no model needed
    save_reconstruction(rec, "outputs/my_scene")

Incremental reconstruction (meshes of the first 50, 100, ... frames)::

    reader = open_scene("path/to/scene")
    rec = reconstruct_model(reader)
    add_snapshots(rec, reader, reconstruct_model, every=50)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from atlas.data.frames import SceneReader, SubsetReader
from atlas.evaluation.render import save_preview
from atlas.geometry import Mesh, VoxelGrid, extract_mesh, write_ply
from atlas.geometry.camera import scale_intrinsics
from atlas.geometry.colorize import color_vertices
from atlas.geometry.marching_cubes import check_upsample
from atlas.io_utils import atomic_dir
from atlas.model.checkpoint import load_model
from atlas.model.inference import ModelInferenceConfig, reconstruct_volume
from atlas.stereo.pipeline import StereoConfig, StereoDepths, fuse_stereo, stereo_depths


@dataclass
class Reconstruction:
    """grid: the fused TSDF; mesh: its surface with vertex colours; summary: JSON-ready
    facts (frames used and skipped, bounds, voxel count, timings, method); prior: the
    stereo prior a model was given (same grid), if any; snapshots: (frames, mesh) of
    the sequence's first frames (see :func:`add_snapshots`); labels: semantic classes of
    a model with a semantic head, else None; depths: the filtered keyframe depth maps of
    ``method=stereo`` (what was fused), else None."""

    name: str
    grid: VoxelGrid
    mesh: Mesh
    summary: dict = field(default_factory=dict)
    prior: VoxelGrid | None = None
    snapshots: list[tuple[int, Mesh]] = field(default_factory=list)
    labels: SemanticLabels | None = None
    depths: StereoDepths | None = None


@dataclass
class SemanticLabels:
    """voxels: (X, Y, Z) int16 class per voxel of the reconstruction's grid, -1 where
    unobserved; vertices: (V,) int16 class of each mesh vertex (its nearest voxel's)."""

    voxels: np.ndarray
    vertices: np.ndarray

    @classmethod
    def from_volume(cls, labels: np.ndarray, grid: VoxelGrid, mesh: Mesh) -> SemanticLabels:
        """From per-voxel classes ``labels`` (X, Y, Z) on ``grid`` and its ``mesh``."""
        voxels = np.where(grid.observed, labels, -1).astype(np.int16)
        ijk = np.rint((mesh.vertices - grid.origin) / grid.voxel_size).astype(np.int64)
        ijk = np.clip(ijk, 0, np.array(grid.shape) - 1)
        return cls(voxels, labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]].astype(np.int16))


def _spread(indices: np.ndarray, count: int = 60) -> np.ndarray:
    """At most ``count`` of the frame ``indices``, evenly spread: the frames vertex
    colours are taken from."""
    return indices[np.linspace(0, len(indices) - 1, min(len(indices), count)).round().astype(int)]


def _colour_views(reader: SceneReader, indices: np.ndarray, width: int = 320):
    """(colour, K, pose) of the given frames, downsized to ``width`` pixels."""
    for frame in reader.iter_frames(indices, depth=False):
        h0, w0 = frame.color.shape[:2]
        size = (width, round(h0 * width / w0))
        color = np.asarray(Image.fromarray(frame.color).resize(size, Image.BILINEAR))
        K = scale_intrinsics(frame.K_color, size[0] / w0, size[1] / h0)
        yield color, K, frame.pose


def _finish(
    reader: SceneReader,
    grid: VoxelGrid,
    method: str,
    facts: dict,
    colour_frames: np.ndarray,
    seconds: dict,
    mesh_upsample: int = 1,
) -> Reconstruction:
    """Mesh (see :func:`extract_mesh`'s ``upsample``), vertex colours from
    ``colour_frames`` and the summary of a fused grid."""
    t0 = time.perf_counter()
    mesh = extract_mesh(grid, upsample=mesh_upsample)
    t1 = time.perf_counter()
    if not mesh.is_empty:
        mesh.colors = color_vertices(mesh, _colour_views(reader, colour_frames))
    t2 = time.perf_counter()
    observed = np.argwhere(grid.observed)
    summary = {
        "scene": reader.name,
        "method": method,
        "frames": len(reader),
        "frames_skipped_invalid_pose": int((~reader.valid).sum()),
        **facts,
        "voxel_size": grid.voxel_size,
        "grid_shape": list(grid.shape),
        "observed_voxels": int(grid.observed.sum()),
        "observed_min": (grid.origin + observed.min(0) * grid.voxel_size).tolist()
        if len(observed)
        else [],
        "observed_max": (grid.origin + observed.max(0) * grid.voxel_size).tolist()
        if len(observed)
        else [],
        "mesh_vertices": len(mesh.vertices),
        "mesh_upsample": mesh_upsample,
        "seconds": {**seconds, "mesh": round(t1 - t0, 2), "colour": round(t2 - t1, 2)},
    }
    if mesh.is_empty:
        summary["warning"] = (
            "empty mesh: no surface was found; check that the poses are camera-to-world "
            "in metres (OpenCV axes) and match the images"
        )
    return Reconstruction(reader.name, grid, mesh, summary)


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
    rec = _finish(reader, grid, "stereo", facts, _spread(depths.keyframes), seconds)
    rec.depths = depths
    return rec


def reconstruct_model(
    reader: SceneReader,
    model: str | Path | None = None,
    cfg: ModelInferenceConfig | None = None,
    device: str = "cpu",
) -> Reconstruction:
    """Reconstruct a posed RGB sequence with a trained model (a model file or training
    checkpoint; default: the bundled model)."""
    cfg = cfg or ModelInferenceConfig()
    cfg.check()  # before the work, not after it
    check_upsample(cfg.mesh_upsample)
    net, model_cfg, card = load_model(model, device)
    image_size = tuple(cfg.image_size or card.get("image_size", (160, 120)))
    pred = reconstruct_volume(reader, net, model_cfg, cfg, image_size, device)
    grid, facts = pred.grid, pred.facts
    seconds = facts.pop("seconds")
    facts["model"] = str(model or "bundled")
    indices = pred.frames
    rec = _finish(reader, grid, "model", facts, _spread(indices), seconds, cfg.mesh_upsample)
    rec.prior = pred.prior
    if pred.labels is not None:
        rec.labels = SemanticLabels.from_volume(pred.labels, grid, rec.mesh)
        rec.summary["semantic_classes"] = model_cfg.net.semantic_classes
    return rec


def add_snapshots(
    rec: Reconstruction,
    reader: SceneReader,
    reconstruct: Callable[[SceneReader], Reconstruction],
    every: int,
) -> None:
    """Incremental reconstruction: ``rec.snapshots`` gets the mesh of the first k frames
    of ``reader`` for k = every, 2 every, ... below its length (``rec``, from all frames,
    is the last one), made by ``reconstruct`` (e.g. :func:`reconstruct_model`). Each
    snapshot reconstructs its frames from scratch, so the cost grows as frames^2 / every.
    A prefix that cannot be reconstructed (e.g. stereo with under two valid frames) is
    listed in the summary and skipped."""
    if every < 1:
        raise ValueError(f"snapshot_every must be a positive number of frames, got {every}")
    facts = []
    for k in tqdm(range(every, len(reader), every), desc=f"snapshots {rec.name}", leave=False):
        try:
            mesh = reconstruct(SubsetReader(reader, range(k))).mesh
        except ValueError as err:
            facts.append({"frames": k, "skipped": str(err)})
            continue
        rec.snapshots.append((k, mesh))
        facts.append({"frames": k, "mesh_vertices": len(mesh.vertices)})
    rec.summary["snapshots"] = facts


def save_reconstruction(rec: Reconstruction, out_dir: str | Path) -> Path:
    """Write mesh.ply, tsdf.npz, preview.png and summary.json into ``out_dir``, all or
    nothing (built in a hidden folder beside it, then renamed); with semantic labels,
    also semantics.npz (``voxels``, ``vertices``: see :class:`SemanticLabels`); with
    snapshots, also ``snapshots/frames_<k>.ply`` and snapshots.png (the snapshots and the
    whole)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        write_ply(rec.mesh, tmp / "mesh.ply")
        rec.grid.save(tmp / "tsdf.npz")
        if rec.labels is not None:
            np.savez_compressed(
                tmp / "semantics.npz", voxels=rec.labels.voxels, vertices=rec.labels.vertices
            )
        title = f"{rec.name} ({rec.summary.get('method', '')})"
        save_preview([(title, rec.mesh)], tmp / "preview.png")
        if rec.snapshots:
            (tmp / "snapshots").mkdir()
            for k, mesh in rec.snapshots:
                write_ply(mesh, tmp / "snapshots" / f"frames_{k:05d}.ply")
            shown = np.linspace(0, len(rec.snapshots) - 1, min(len(rec.snapshots), 4))
            panels = [
                (f"first {k} frames", mesh)
                for k, mesh in (rec.snapshots[i] for i in np.unique(shown.round().astype(int)))
            ]
            total = rec.summary.get("frames", "all")
            save_preview([*panels, (f"all {total} frames", rec.mesh)], tmp / "snapshots.png")
        (tmp / "summary.json").write_text(json.dumps(rec.summary, indent=2))
    return out_dir
