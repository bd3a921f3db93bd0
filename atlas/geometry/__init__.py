"""Geometry core: cameras, TSDF fusion, marching cubes, meshes, voxel grids, ray casting.

The names below are loaded on first use (PEP 562 module ``__getattr__``), so
``from atlas.geometry import Mesh`` does not import torch: only the camera and fusion
modules need it, and importing torch costs well over a second. Evaluation of a mesh
pair therefore starts without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from atlas.geometry.camera import (
        frustum_bounds,
        project_points,
        projection_matrix,
        resize_intrinsics,
        scale_intrinsics,
    )
    from atlas.geometry.fusion import TSDFFusion, fuse_depth_frames
    from atlas.geometry.marching_cubes import extract_mesh
    from atlas.geometry.mesh import Mesh, read_ply, write_ply
    from atlas.geometry.voxel_grid import VoxelGrid

# Exported name -> the submodule of atlas.geometry that defines it.
_SOURCES = {
    "frustum_bounds": "camera",
    "project_points": "camera",
    "projection_matrix": "camera",
    "resize_intrinsics": "camera",
    "scale_intrinsics": "camera",
    "TSDFFusion": "fusion",
    "fuse_depth_frames": "fusion",
    "extract_mesh": "marching_cubes",
    "Mesh": "mesh",
    "read_ply": "mesh",
    "write_ply": "mesh",
    "VoxelGrid": "voxel_grid",
}

__all__ = [
    "Mesh",
    "TSDFFusion",
    "VoxelGrid",
    "extract_mesh",
    "frustum_bounds",
    "fuse_depth_frames",
    "project_points",
    "projection_matrix",
    "read_ply",
    "resize_intrinsics",
    "scale_intrinsics",
    "write_ply",
]


def __getattr__(name: str) -> Any:
    """Import the submodule defining ``name`` on first access, then cache the name."""
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{source}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
