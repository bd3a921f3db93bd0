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


def extract_mesh(grid: VoxelGrid, upsample: int = 1, slab_cells: int = 32) -> Mesh:
    """Triangle mesh of the TSDF's zero level set, vertices in world metres.

    Only cells whose 8 corners were all observed are polygonised, so no false surface
    appears between observed and unobserved voxels (the original ATLAS's second layer).
    Faces are wound so that normals point to free space (positive TSDF). Vertex colours
    are interpolated from the grid's colour when it has one. An empty mesh is returned
    when the grid has no zero crossing.

    upsample: k > 1 polygonises the trilinear interpolation of the TSDF (the field the
    grid stands for) on a k times finer lattice, vertices every voxel_size / k instead
    of on the grid's cell edges only; cells keep the rule above (a fine cell is kept when
    its coarse cell is fully observed). It runs in x-slabs of ``slab_cells`` coarse cells
    whose shared vertices are welded, so memory stays that of a slab.
    """
    k = check_upsample(upsample)
    cells = observed_cells(grid.observed)
    if k == 1:
        verts, faces, colors = _polygonise(grid.tsdf, cells, grid.color)
        return Mesh(grid.origin + grid.voxel_size * verts, faces, colors)
    parts = []
    for x0 in range(0, max(grid.shape[0] - 1, 1), slab_cells):
        x1 = min(x0 + slab_cells, grid.shape[0] - 1)
        if not cells[x0:x1].any():
            continue
        tsdf = _refine(grid.tsdf[x0 : x1 + 1], k)
        fine_cells = np.zeros(tsdf.shape, dtype=bool)
        coarse = cells[x0:x1, :-1, :-1]
        fine_cells[:-1, :-1, :-1] = coarse.repeat(k, 0).repeat(k, 1).repeat(k, 2)
        color = None if grid.color is None else _refine(grid.color[x0 : x1 + 1], k)
        verts, faces, colors = _polygonise(tsdf, fine_cells, color)
        if len(faces):
            parts.append((verts + np.array([x0 * k, 0, 0]), faces, colors))
    if not parts:
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    verts, faces, colors = _weld(parts)
    return Mesh(grid.origin + (grid.voxel_size / k) * verts, faces, colors)


def check_upsample(upsample: int) -> int:
    """``upsample`` as an int, or a ValueError unless it is a positive integer."""
    if isinstance(upsample, bool) or not isinstance(upsample, int | np.integer) or upsample < 1:
        raise ValueError(f"mesh upsample factor must be a positive integer, got {upsample!r}")
    return int(upsample)


def _polygonise(
    tsdf: np.ndarray, cells: np.ndarray, color: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Marching cubes of ``tsdf`` (X, Y, Z) on the ``cells`` (X, Y, Z) bool kept: vertices
    (V, 3) in voxel index coordinates, faces (F, 3), colours (V, 3) interpolated from
    ``color`` (X, Y, Z, 3) or None; no vertices when there is no zero crossing."""
    none = (np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), None)
    if not cells.any():
        return none
    in_cells = tsdf[cells]
    if in_cells.min() > 0 or in_cells.max() < 0:
        return none
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
        return none
    cell_of_face = np.floor(verts[faces].mean(axis=1)).astype(np.int64)
    cell_of_face = np.clip(cell_of_face, 0, np.array(tsdf.shape) - 1)
    faces = faces[cells[tuple(cell_of_face.T)]]
    if len(faces) == 0:
        return none
    used, faces = np.unique(faces, return_inverse=True)
    verts = verts[used]
    colors = None
    if color is not None and len(verts):
        colors = _trilinear(color.astype(np.float32), verts)
    return verts, faces.reshape(-1, 3), colors


def _refine(volume: np.ndarray, k: int) -> np.ndarray:
    """``volume`` (X, Y, Z, ...) trilinearly interpolated on a k times finer lattice,
    ((X-1)k+1, (Y-1)k+1, (Z-1)k+1, ...), float32. Separable, with the weights a/k
    exactly, so values on the coarse lattice are copied bit for bit (slabs agree on
    their shared face)."""
    out = volume.astype(np.float32)
    w = (np.arange(k, dtype=np.float32) / k).reshape(1, k)
    for axis in range(3):
        a = np.moveaxis(out, axis, 0)
        lo, hi = a[:-1], a[1:]
        shape = (1, k) + (1,) * (a.ndim - 1)
        mixed = lo[:, None] * (1 - w.reshape(shape)) + hi[:, None] * w.reshape(shape)
        mixed = mixed.reshape(-1, *a.shape[1:])
        out = np.moveaxis(np.concatenate([mixed, a[-1:]], 0), 0, axis)
    return out


def _weld(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One mesh from slab meshes (vertices in global lattice coordinates): vertices that
    two slabs share on their common face (bitwise equal, see ``_refine``) become one."""
    offsets = np.cumsum([0] + [len(v) for v, _, _ in parts[:-1]])
    verts = np.concatenate([v for v, _, _ in parts])
    faces = np.concatenate([f + o for (_, f, _), o in zip(parts, offsets, strict=True)])
    unique, first, inverse = np.unique(verts, axis=0, return_index=True, return_inverse=True)
    colors = None
    if parts[0][2] is not None:
        colors = np.concatenate([c for _, _, c in parts])[first]
    return unique, inverse.reshape(-1)[faces], colors


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
