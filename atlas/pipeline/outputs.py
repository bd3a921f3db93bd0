"""A reconstruction's outputs: the frame they are written in, and the files."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from atlas.geometry import Mesh, write_ply
from atlas.geometry.render import save_preview
from atlas.io_utils import atomic_dir
from atlas.pipeline.result import Reconstruction


def _moved(mesh: Mesh, transform: np.ndarray) -> Mesh:
    """``mesh`` with its vertices mapped by the rigid (4, 4) ``transform``."""
    vertices = mesh.vertices @ transform[:3, :3].T + transform[:3, 3]
    return Mesh(vertices, mesh.faces, mesh.colors)


def observed_bounds(rec: Reconstruction) -> tuple[list[float], list[float]]:
    """(min, max) world metres of the observed voxel centres of ``rec.grid``, in the
    world frame of its ``world_from_grid`` (the bounding box of the rotated box when
    that is a rotation); two empty lists when nothing was observed."""
    grid = rec.grid
    observed = np.argwhere(grid.observed)
    if len(observed) == 0:
        return [], []
    lo = grid.origin + observed.min(0) * grid.voxel_size
    hi = grid.origin + observed.max(0) * grid.voxel_size
    corners = np.array(list(itertools.product(*zip(lo, hi, strict=True))))  # (8, 3)
    if grid.world_from_grid is not None:
        T = grid.world_from_grid
        corners = corners @ T[:3, :3].T + T[:3, 3]
    return corners.min(0).tolist(), corners.max(0).tolist()


def to_input_frame(rec: Reconstruction, world_to_aligned: np.ndarray) -> None:
    """Move ``rec``, reconstructed in an aligned frame (``world_to_aligned``: (4, 4)
    input world -> aligned), back to the input's world frame: its mesh and snapshots
    are transformed; its grids (TSDF, prior) keep their voxels and record the transform
    as ``world_from_grid``."""
    world_from_aligned = np.linalg.inv(world_to_aligned)
    rec.mesh = _moved(rec.mesh, world_from_aligned)
    rec.snapshots = [(k, _moved(mesh, world_from_aligned)) for k, mesh in rec.snapshots]
    for grid in (rec.grid, rec.prior):
        if grid is not None:
            grid.world_from_grid = world_from_aligned


def save_reconstruction(rec: Reconstruction, out_dir: str | Path) -> Path:
    """Write mesh.ply, tsdf.npz, preview.png and summary.json into ``out_dir``, all or
    nothing (built in a hidden folder beside it, then renamed); with semantic labels,
    also semantics.npz (``voxels``, ``vertices``: see
    :class:`atlas.pipeline.result.SemanticLabels`); with snapshots, also
    ``snapshots/frames_<k>.ply`` and snapshots.png (the snapshots and the whole). The
    summary gets the observed bounds (``observed_min``, ``observed_max``) in the mesh's
    frame."""
    out_dir = Path(out_dir)
    # Pictures are drawn in the grid's (gravity-aligned) frame: upright, floor down.
    world_from_grid = rec.grid.world_from_grid
    grid_from_world = np.eye(4) if world_from_grid is None else np.linalg.inv(world_from_grid)
    summary = dict(rec.summary)
    summary["observed_min"], summary["observed_max"] = observed_bounds(rec)
    with atomic_dir(out_dir) as tmp:
        write_ply(rec.mesh, tmp / "mesh.ply")
        rec.grid.save(tmp / "tsdf.npz")
        if rec.labels is not None:
            np.savez_compressed(
                tmp / "semantics.npz", voxels=rec.labels.voxels, vertices=rec.labels.vertices
            )
        title = f"{rec.name} ({summary.get('method', '')})"
        save_preview([(title, _moved(rec.mesh, grid_from_world))], tmp / "preview.png")
        if rec.snapshots:
            (tmp / "snapshots").mkdir()
            for k, mesh in rec.snapshots:
                write_ply(mesh, tmp / "snapshots" / f"frames_{k:05d}.ply")
            shown = np.linspace(0, len(rec.snapshots) - 1, min(len(rec.snapshots), 4))
            panels = [
                (f"first {k} frames", _moved(mesh, grid_from_world))
                for k, mesh in (rec.snapshots[i] for i in np.unique(shown.round().astype(int)))
            ]
            total = summary.get("frames", "all")
            panels.append((f"all {total} frames", _moved(rec.mesh, grid_from_world)))
            save_preview(panels, tmp / "snapshots.png")
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2))
    return out_dir
