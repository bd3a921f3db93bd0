"""Never worse than the evidence: the model's surface combined with the stereo it was
given, fused finer.

On the stereo fusion's grid (the prior's depth maps fused at the stereo settings' own
voxel size, 4 cm for the presets), each voxel takes

- stereo's signed distance where stereo observed it and the model's signed distance
  there is within ``agree`` metres of stereo's (stereo surface the model confirms is
  kept at stereo's resolution and position);
- nothing (unobserved) where stereo observed it but the model disagrees (what is
  inconsistent with the model is removed);
- the model's signed distance (trilinear from its coarser grid) where stereo observed
  nothing, the model did, and a kept stereo surface voxel lies within ``reach`` metres
  (the model completes the holes stereo left in the surfaces it found; surface the
  model would put far from any confirmed evidence is not output).

Signed distances are compared in metres (TSDF times the truncation distance of each
grid); the result is truncated at stereo's truncation distance. The model's signed
distance is its network output wherever its grid reaches, observed or not (so a voxel
its observed head rejected still confirms or contradicts stereo), and free space
(disagreement) beyond its grid.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import affine_transform, distance_transform_edt, map_coordinates

from atlas.geometry import VoxelGrid


def signed_distance_at(grid: VoxelGrid, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(signed distance (N,) metres, trilinear in the TSDF and clipped at ``grid``'s
    truncation distance, 1 truncation outside it; observed (N,) bool, the nearest
    voxel's) of ``grid`` at world points (N, 3) in the grid's frame."""
    coords = ((points - grid.origin) / grid.voxel_size).T
    tsdf = map_coordinates(grid.tsdf, coords, order=1, mode="constant", cval=1.0)
    observed = map_coordinates(grid.weight, coords, order=0, mode="constant", cval=0.0) > 0
    return tsdf * grid.trunc_voxels * grid.voxel_size, observed


def signed_distance_on(grid: VoxelGrid, target: VoxelGrid) -> tuple[np.ndarray, np.ndarray]:
    """:func:`signed_distance_at` at every voxel centre of ``target`` (target.shape
    each; both grids axis-aligned in the same frame), resampled without building the
    centres' coordinates."""
    scale = np.full(3, target.voxel_size / grid.voxel_size)
    offset = (target.origin - grid.origin) / grid.voxel_size

    def resample(values: np.ndarray, order: int, cval: float) -> np.ndarray:
        return affine_transform(
            values, scale, offset, target.shape, order=order, mode="constant", cval=cval
        )

    tsdf = resample(grid.tsdf, 1, 1.0)
    return tsdf * grid.trunc_voxels * grid.voxel_size, resample(grid.weight, 0, 0.0) > 0


def keep_evidence(
    stereo: VoxelGrid, model: VoxelGrid, agree: float, reach: float = float("inf")
) -> VoxelGrid:
    """The combination of the module docstring on ``stereo``'s grid (both grids in the
    same frame; ``agree`` and ``reach`` in metres, > 0). Weights are 1 where observed."""
    for name, value in (("agree", agree), ("reach", reach)):
        if not value > 0:
            raise ValueError(f"{name} must be a distance > 0 metres, got {value!r}")
    shape = stereo.tsdf.shape
    model_d, model_seen = signed_distance_on(model, stereo)
    trunc = stereo.trunc_voxels * stereo.voxel_size
    stereo_d = stereo.tsdf * trunc
    stereo_seen = stereo.weight > 0
    keep = stereo_seen & (np.abs(model_d - stereo_d) < agree)
    fill = ~stereo_seen & model_seen
    if np.isfinite(reach):
        surface = keep & (np.abs(stereo_d) < stereo.voxel_size)
        if surface.any():
            fill &= distance_transform_edt(~surface) * stereo.voxel_size < reach
        else:
            fill[:] = False
    tsdf = np.ones(shape, np.float32)
    tsdf[keep] = stereo.tsdf[keep]
    tsdf[fill] = np.clip(model_d[fill] / trunc, -1.0, 1.0)
    weight = (keep | fill).astype(np.float32)
    return VoxelGrid(
        tsdf, weight, stereo.origin, stereo.voxel_size, trunc_voxels=stereo.trunc_voxels
    )
