"""Marching cubes at level 0 on the observed part of a TSDF grid."""

from __future__ import annotations

import numpy as np
from skimage.measure import marching_cubes

from atlas.geometry.mesh import Mesh
from atlas.geometry.voxel_grid import VoxelGrid


def observed_cells(observed: np.ndarray) -> np.ndarray:
    """(X, Y, Z) bool: True at (i, j, k) when all 8 corners of the cell whose lowest corner
    is voxel (i, j, k) are observed (the last index along each axis has no cell)."""
    cells = np.zeros_like(observed, dtype=bool)
    inner = observed[:-1, :-1, :-1].copy()
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                x, y, z = observed.shape
                inner &= observed[dx : x - 1 + dx, dy : y - 1 + dy, dz : z - 1 + dz]
    cells[:-1, :-1, :-1] = inner
    return cells


def extract_mesh(grid: VoxelGrid) -> Mesh:
    """Triangle mesh of the TSDF's zero level set, vertices in world metres.

    Only cells whose 8 corners were all observed are polygonised, so no false surface
    appears between observed and unobserved voxels (the original ATLAS's second layer).
    Faces are wound so that normals point to free space (positive TSDF). Vertex colours
    are interpolated from the grid's colour when it has one. An empty mesh is returned
    when the grid has no zero crossing.
    """
    cells = observed_cells(grid.observed)
    tsdf = grid.tsdf
    empty = Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    if not cells.any():
        return empty
    in_cells = tsdf[cells]
    if in_cells.min() > 0 or in_cells.max() < 0:
        return empty
    # skimage's mask is per voxel and its cell convention has changed between versions,
    # so it only prunes work here (any corner of an observed cell); the exact rule is
    # applied below by keeping the triangles whose cell is fully observed.
    corner_mask = cells.copy()
    corner_mask[1:, 1:, 1:] |= cells[:-1, :-1, :-1]
    try:
        verts, faces, _, _ = marching_cubes(
            tsdf, level=0.0, mask=corner_mask, gradient_direction="descent", allow_degenerate=False
        )
    except (ValueError, RuntimeError):  # no zero crossing in the masked region
        return empty
    cell_of_face = np.floor(verts[faces].mean(axis=1)).astype(np.int64)
    cell_of_face = np.clip(cell_of_face, 0, np.array(tsdf.shape) - 1)
    faces = faces[cells[tuple(cell_of_face.T)]]
    if len(faces) == 0:
        return empty
    used, faces = np.unique(faces, return_inverse=True)
    verts = verts[used]
    faces = faces.reshape(-1, 3)
    colors = None
    if grid.color is not None and len(verts):
        colors = _trilinear(grid.color.astype(np.float32), verts)
    return Mesh(grid.origin + grid.voxel_size * verts, faces, colors)


def _trilinear(volume: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Sample volume (X, Y, Z, C) at continuous voxel coords (N, 3); returns (N, C)."""
    shape = np.array(volume.shape[:3])
    c0 = np.clip(np.floor(coords).astype(np.int64), 0, shape - 2)
    t = np.clip(coords - c0, 0.0, 1.0)
    out = np.zeros((len(coords), volume.shape[3]), dtype=np.float64)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (
                    (t[:, 0] if dx else 1 - t[:, 0])
                    * (t[:, 1] if dy else 1 - t[:, 1])
                    * (t[:, 2] if dz else 1 - t[:, 2])
                )
                out += w[:, None] * volume[c0[:, 0] + dx, c0[:, 1] + dy, c0[:, 2] + dz]
    return out
