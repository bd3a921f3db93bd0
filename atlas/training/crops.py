"""Training volumes: sampling a ground-truth grid in a rotated, translated crop frame.

A crop is a box of voxels in its own frame ("crop world"): voxel (i, j, k) of scale s has
centre ``voxel_size_s * (i, j, k)`` (origin 0). ``crop_from_world`` (4x4) maps scene
world points into it; poses become ``crop_from_world @ pose``, so images and targets
move together. Targets are read from the scene's grids at ``world_from_crop`` of each
crop voxel centre: exactly (index look-up) when those land on voxel centres, as they do
for rotations by multiples of 90 degrees and whole-voxel shifts, trilinearly otherwise.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import map_coordinates

from atlas.geometry.voxel_grid import VoxelGrid

SNAP = 1e-4  # voxel units: coordinates this close to an integer are taken as exact


def rotation_z(angle: float) -> np.ndarray:
    """(4, 4) rotation by ``angle`` radians about +z."""
    c, s = np.cos(angle), np.sin(angle)
    T = np.eye(4)
    T[:2, :2] = [[c, -s], [s, c]]
    return T


def sample_grid(grid: VoxelGrid, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TSDF and observed mask of ``grid`` at world ``points`` (..., 3) metres.

    Trilinear in the TSDF; a sample is observed when every corner with a non-zero
    interpolation weight is observed. Outside the grid: unobserved, TSDF 1.
    Returns tsdf (...) float32 and observed (...) bool.
    """
    shape = points.shape[:-1]
    idx = ((points.reshape(-1, 3) - grid.origin) / grid.voxel_size).astype(np.float64)
    rounded = np.round(idx)
    idx = np.where(np.abs(idx - rounded) < SNAP, rounded, idx)
    i0 = np.floor(idx).astype(np.int64)
    t = (idx - i0).astype(np.float32)
    dims = np.array(grid.shape)
    tsdf = np.zeros(len(idx), np.float32)
    observed = np.ones(len(idx), bool)
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                w = (
                    (t[:, 0] if dx else 1 - t[:, 0])
                    * (t[:, 1] if dy else 1 - t[:, 1])
                    * (t[:, 2] if dz else 1 - t[:, 2])
                )
                c = i0 + np.array([dx, dy, dz])
                inside = np.all((c >= 0) & (c < dims), axis=1)
                cc = np.where(inside[:, None], c, 0)
                value = np.where(inside, grid.tsdf[cc[:, 0], cc[:, 1], cc[:, 2]], 1.0)
                seen = inside & (grid.weight[cc[:, 0], cc[:, 1], cc[:, 2]] > 0)
                tsdf += w * value
                observed &= seen | (w == 0)
    tsdf = np.where(observed, tsdf, 1.0).astype(np.float32)
    return tsdf.reshape(shape), observed.reshape(shape)


def crop_centres(shape: tuple[int, int, int], voxel_size: float) -> np.ndarray:
    """(X, Y, Z, 3) crop-frame centres of a crop's voxels (origin 0)."""
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    return idx * voxel_size


def random_crop_transform(
    rng: np.random.Generator,
    bounds_min: np.ndarray,
    bounds_max: np.ndarray,
    crop_size: np.ndarray,
    voxel_size: float,
    rotation: str,
) -> np.ndarray:
    """(4, 4) crop_from_world for a crop of ``crop_size`` metres placed at random.

    The crop's centre (x, y) is uniform over the observed box; its bottom sits at the box
    bottom minus up to one voxel; rotation about +z: ``"none"``, ``"90"`` (multiples of
    90 degrees) or ``"any"``. Shifts are whole voxels of ``voxel_size`` unless the
    rotation is arbitrary.
    """
    if rotation == "none":
        angle = 0.0
    elif rotation == "90":
        angle = float(rng.integers(4)) * np.pi / 2
    elif rotation == "any":
        angle = float(rng.uniform(0, 2 * np.pi))
    else:
        raise ValueError(f"rotation must be none, 90 or any, got {rotation!r}")
    centre = np.array(
        [
            rng.uniform(bounds_min[0], bounds_max[0]),
            rng.uniform(bounds_min[1], bounds_max[1]),
            bounds_min[2] - rng.uniform(0, voxel_size) + crop_size[2] / 2,
        ]
    )
    R = rotation_z(angle)
    # crop = R^-1 (world - centre) + crop_size / 2
    T = np.eye(4)
    T[:3, :3] = R[:3, :3].T
    T[:3, 3] = crop_size / 2 - R[:3, :3].T @ centre
    if rotation != "any":
        T[:3, 3] = np.round(T[:3, 3] / voxel_size) * voxel_size
    return T


def smooth_displacement(
    rng: np.random.Generator, points: np.ndarray, std: float, spacing: float
) -> np.ndarray:
    """(..., 3) metres: a random displacement field at ``points`` (..., 3) metres, each
    component Gaussian with ``std`` metres on a lattice ``spacing`` metres apart over the
    points' box and trilinear between lattice nodes, so nearby points move together (a
    surface shifts and bends instead of dissolving into noise)."""
    flat = points.reshape(-1, 3)
    lo = flat.min(0)
    coords = ((flat - lo) / spacing).T  # (3, N) lattice units
    dims = tuple(int(n) + 2 for n in np.ceil(coords.max(1)))
    lattice = rng.normal(0.0, std, size=(3, *dims))
    out = np.stack([map_coordinates(c, coords, order=1, mode="nearest") for c in lattice], 1)
    return out.reshape(points.shape).astype(points.dtype)
