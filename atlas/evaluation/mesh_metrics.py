"""Mesh-to-mesh metrics (ATLAS protocol) with a vectorised KD-tree search.

Both meshes' vertices are voxel-downsampled (default 2 cm); ``d1`` is the distance of
each predicted point to the nearest ground-truth point, ``d2`` the reverse. Accuracy =
mean d1, completeness = mean d2, precision = mean(d1 < t), recall = mean(d2 < t),
F-score = 2PR / (P + R). (The original ATLAS code swaps precision and recall; this is
the definition its paper states.)
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from atlas.geometry.mesh import Mesh


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Mean of the points in each occupied ``voxel_size`` cell: (N, 3) -> (M, 3)."""
    if len(points) == 0 or voxel_size <= 0:
        return np.asarray(points, dtype=np.float64)
    keys = np.floor(points / voxel_size).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse, points)
    return sums / counts[:, None]


def point_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.05) -> dict[str, float]:
    """Metrics between point sets pred (N, 3) and gt (M, 3), metres. An empty prediction
    scores precision = recall = F = 0 and infinite distances."""
    if len(pred) == 0 or len(gt) == 0:
        return {
            "acc": float("inf"),
            "comp": float("inf"),
            "chamfer": float("inf"),
            "prec": 0.0,
            "recal": 0.0,
            "fscore": 0.0,
        }
    d1, _ = cKDTree(gt).query(pred, workers=-1)
    d2, _ = cKDTree(pred).query(gt, workers=-1)
    precision = float(np.mean(d1 < threshold))
    recall = float(np.mean(d2 < threshold))
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    acc, comp = float(np.mean(d1)), float(np.mean(d2))
    return {
        "acc": acc,
        "comp": comp,
        "chamfer": (acc + comp) / 2,
        "prec": precision,
        "recal": recall,
        "fscore": f,
    }


def mesh_metrics(
    pred: Mesh, gt: Mesh, threshold: float = 0.05, downsample: float = 0.02
) -> dict[str, float]:
    """ATLAS-protocol metrics between two meshes' vertex sets (see the module docstring)."""
    return point_metrics(
        voxel_downsample(pred.vertices.astype(np.float64), downsample),
        voxel_downsample(gt.vertices.astype(np.float64), downsample),
        threshold,
    )
