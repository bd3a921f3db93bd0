"""Geometry core: cameras, TSDF fusion, marching cubes, meshes, voxel grids, ray casting."""

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
