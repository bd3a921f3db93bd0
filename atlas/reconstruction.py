"""Reconstructing a scene and writing its outputs (mesh, TSDF, picture, summary).

Python API::

    from atlas.data.detect import open_scene
    from atlas.reconstruction import reconstruct_stereo, save_reconstruction
    rec = reconstruct_stereo(open_scene("path/to/scene"))   # no model needed
    save_reconstruction(rec, "outputs/my_scene")
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.data.frames import SceneReader
from atlas.evaluation.render import save_preview
from atlas.geometry import Mesh, VoxelGrid, extract_mesh, write_ply
from atlas.geometry.camera import scale_intrinsics
from atlas.geometry.colorize import color_vertices
from atlas.io_utils import atomic_dir
from atlas.stereo.pipeline import StereoConfig, fuse_stereo, stereo_depths


@dataclass
class Reconstruction:
    """grid: the fused TSDF; mesh: its surface with vertex colours; summary: JSON-ready
    facts (frames used and skipped, bounds, voxel count, timings, method)."""

    name: str
    grid: VoxelGrid
    mesh: Mesh
    summary: dict = field(default_factory=dict)


def _colour_views(reader: SceneReader, indices: np.ndarray, width: int = 320):
    """(colour, K, pose) of the given frames, downsized to ``width`` pixels."""
    for frame in reader.iter_frames(indices):
        h0, w0 = frame.color.shape[:2]
        size = (width, round(h0 * width / w0))
        color = np.asarray(Image.fromarray(frame.color).resize(size, Image.BILINEAR))
        K = scale_intrinsics(frame.K_color, size[0] / w0, size[1] / h0)
        yield color, K, frame.pose


def reconstruct_stereo(
    reader: SceneReader, cfg: StereoConfig | None = None, device: str = "cpu"
) -> Reconstruction:
    """Reconstruct a posed RGB sequence with plane-sweep stereo and TSDF fusion."""
    cfg = cfg or StereoConfig()
    t0 = time.perf_counter()
    depths = stereo_depths(reader, cfg, device)
    t1 = time.perf_counter()
    grid = fuse_stereo(depths, cfg, device)
    mesh = extract_mesh(grid)
    t2 = time.perf_counter()
    if not mesh.is_empty:
        mesh.colors = color_vertices(mesh, _colour_views(reader, depths.keyframes))
    t3 = time.perf_counter()
    observed = np.argwhere(grid.observed)
    bounds = (
        ([], [])
        if len(observed) == 0
        else (
            (grid.origin + observed.min(0) * grid.voxel_size).tolist(),
            (grid.origin + observed.max(0) * grid.voxel_size).tolist(),
        )
    )
    summary = {
        "scene": reader.name,
        "method": "stereo",
        "frames": len(reader),
        "frames_skipped_invalid_pose": int((~reader.valid).sum()),
        "keyframes": len(depths.keyframes),
        "depth_pixels_kept": float((depths.depths > 0).float().mean()),
        "voxel_size": grid.voxel_size,
        "grid_shape": list(grid.shape),
        "observed_voxels": int(grid.observed.sum()),
        "bounds_min": bounds[0],
        "bounds_max": bounds[1],
        "mesh_vertices": len(mesh.vertices),
        "seconds": {
            "stereo": round(t1 - t0, 2),
            "fusion_and_mesh": round(t2 - t1, 2),
            "colour": round(t3 - t2, 2),
        },
    }
    if mesh.is_empty:
        summary["warning"] = (
            "empty mesh: no surface was matched; check that the poses "
            "are camera-to-world in metres and match the images"
        )
    return Reconstruction(reader.name, grid, mesh, summary)


def save_reconstruction(rec: Reconstruction, out_dir: str | Path) -> Path:
    """Write mesh.ply, tsdf.npz, preview.png and summary.json into ``out_dir``, all or
    nothing (built in a hidden folder beside it, then renamed)."""
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        write_ply(rec.mesh, tmp / "mesh.ply")
        rec.grid.save(tmp / "tsdf.npz")
        save_preview(
            [(f"{rec.name} ({rec.summary.get('method', '')})", rec.mesh)], tmp / "preview.png"
        )
        (tmp / "summary.json").write_text(json.dumps(rec.summary, indent=2))
    return out_dir
