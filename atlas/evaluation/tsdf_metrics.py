"""TSDF L1: mean |predicted - ground-truth TSDF| over the observed ground-truth voxels."""

from __future__ import annotations

import numpy as np

from atlas.geometry.voxel_grid import VoxelGrid


def tsdf_l1(pred: VoxelGrid, gt: VoxelGrid) -> float:
    """Mean absolute TSDF difference (truncation-normalised units) over the voxels the
    ground truth observed (weight > 0).

    The grids must share the voxel size and be offset by whole voxels; ground-truth
    voxels outside the predicted grid, or unobserved in it, compare against 1 (the
    unobserved value). Raises ``ValueError`` for misaligned grids.
    """
    if abs(pred.voxel_size - gt.voxel_size) > 1e-9:
        raise ValueError(
            f"TSDF voxel sizes differ: predicted {pred.voxel_size} m, ground truth "
            f"{gt.voxel_size} m"
        )
    offset = (gt.origin - pred.origin) / gt.voxel_size
    shift = np.rint(offset).astype(np.int64)
    if np.abs(offset - shift).max() > 1e-3:
        raise ValueError(f"TSDF grids are not aligned: origins differ by {offset} voxels")
    observed = np.argwhere(gt.observed)
    if len(observed) == 0:
        raise ValueError("the ground-truth TSDF has no observed voxel")
    idx = observed + shift
    inside = ((idx >= 0) & (idx < pred.shape)).all(axis=1)
    values = np.ones(len(idx), np.float32)
    pi = tuple(idx[inside].T)
    values[inside] = np.where(pred.weight[pi] > 0, pred.tsdf[pi], 1.0)
    return float(np.mean(np.abs(values - gt.tsdf[tuple(observed.T)])))
