"""Point-set metrics between a prediction and a ground truth, vectorised KD-tree search.

``d_pred`` is the distance of each predicted point to the nearest ground-truth point,
``d_gt`` the reverse (metres). With threshold t:

- accuracy = mean(d_pred), completeness = mean(d_gt), chamfer = (acc + comp) / 2;
- precision = share of predicted points within t of the ground truth, mean(d_pred < t);
- recall = share of ground-truth points within t of the prediction, mean(d_gt < t);
- F-score = 2PR / (P + R).

(The original ATLAS code swaps precision and recall; these are the definitions its paper
states. See docs/evaluation.md.) Keys follow ATLAS's output names: ``acc``, ``comp``,
``chamfer``, ``prec``, ``recal``, ``fscore``.

The evaluation protocols (``atlas.evaluation.protocols``) build on these functions;
:func:`mesh_metrics` is the ATLAS protocol in one call.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree

from atlas.geometry.mesh import Mesh

METRIC_KEYS = ("acc", "comp", "chamfer", "prec", "recal", "fscore")


def voxel_downsample(points: np.ndarray, voxel_size: float) -> np.ndarray:
    """Open3D's ``PointCloud.voxel_down_sample`` in NumPy: (N, 3) -> (M, 3) float64.

    The rule of Open3D 0.20's ``VoxelDownSample`` (which ATLAS's ``eval_mesh`` calls):
    the grid is anchored half a voxel below the cloud's minimum, ``origin =
    points.min(axis=0) - voxel_size / 2``; a point's voxel is ``floor((p - origin) /
    voxel_size)``, computed in float64 in that order; each occupied voxel gives the mean
    of its points. The output is ordered by voxel (x, then y, then z; Open3D's order is
    its hash map's). Points and ``voxel_size`` in metres; ``voxel_size <= 0`` returns
    the points unchanged (as ``eval_mesh`` with ``down_sample=0``). ``ValueError`` (with
    the count) when a point is not finite.
    """
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(points) == 0 or voxel_size <= 0:
        return points
    bad = int(np.count_nonzero(~np.isfinite(points).all(axis=1)))
    if bad:
        raise ValueError(f"{bad} of {len(points)} points are not finite (NaN or inf)")
    origin = points.min(axis=0) - voxel_size * 0.5
    keys = np.floor((points - origin) / voxel_size).astype(np.int64)  # >= 0 by construction
    dims = keys.max(axis=0) + 1
    if float(dims[0]) * float(dims[1]) * float(dims[2]) < 2.0**62:
        linear = (keys[:, 0] * dims[1] + keys[:, 1]) * dims[2] + keys[:, 2]
        order = np.argsort(linear, kind="stable")
        linear = linear[order]
        starts = np.flatnonzero(np.r_[True, linear[1:] != linear[:-1]])
    else:  # an extent too large for one int64 key: sort the key triples instead
        order = np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))
        sorted_keys = keys[order]
        starts = np.flatnonzero(np.r_[True, np.any(sorted_keys[1:] != sorted_keys[:-1], 1)])
    counts = np.diff(np.r_[starts, len(points)])
    # Stable sorting keeps each voxel's points in input order, the order Open3D sums them.
    return np.add.reduceat(points[order], starts, axis=0) / counts[:, None]


def sample_surface(mesh: Mesh, n_points: int, seed: int = 0) -> np.ndarray:
    """(n_points, 3) float64 points uniformly distributed over the mesh's area.

    Deterministic for a seed (triangles drawn by area, then uniform barycentric
    coordinates). A mesh without faces (a point cloud) returns its vertices; an empty
    mesh returns (0, 3).
    """
    if mesh.is_empty or n_points <= 0:
        return mesh.vertices.astype(np.float64)
    areas = mesh.face_areas()
    if areas.sum() <= 0:
        return mesh.vertices.astype(np.float64)
    rng = np.random.default_rng(seed)
    faces = rng.choice(len(areas), size=n_points, p=areas / areas.sum())
    r1, r2 = rng.random((2, n_points))
    s = np.sqrt(r1)
    w = np.stack([1 - s, s * (1 - r2), s * r2], axis=1)
    tri = mesh.vertices[mesh.faces[faces]].astype(np.float64)
    return np.einsum("nk,nkc->nc", w, tri)


def build_tree(points: np.ndarray) -> cKDTree:
    """A KD-tree over (N, 3) points for nearest-neighbour queries. Sliding-midpoint splits
    without node compaction build about twice as fast as SciPy's defaults, with the
    same answers."""
    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def nearest_distances(
    pred: np.ndarray, gt: np.ndarray, gt_tree: cKDTree | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour distances both ways, one KD-tree query per direction.

    pred: (N, 3), gt: (M, 3) metres; gt_tree: a prebuilt ``build_tree(gt)`` to reuse.
    Returns ``d_pred`` (N,) and ``d_gt`` (M,) float64 metres; inf where the other set
    is empty. ``ValueError`` (with the count) when a point is not finite.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 3)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 3)
    for name, points in (("predicted", pred), ("ground-truth", gt)):
        bad = int(np.count_nonzero(~np.isfinite(points).all(axis=1)))
        if bad:
            raise ValueError(f"{bad} of {len(points)} {name} points are not finite (NaN or inf)")
    if len(pred) == 0 or len(gt) == 0:
        return np.full(len(pred), np.inf), np.full(len(gt), np.inf)
    tree = gt_tree if gt_tree is not None else build_tree(gt)
    d_pred, _ = tree.query(pred, workers=-1)
    d_gt, _ = build_tree(pred).query(gt, workers=-1)
    return d_pred, d_gt


def _share_within(d: np.ndarray, thresholds: np.ndarray, inclusive: bool) -> np.ndarray:
    """Share of ``d`` below each threshold (``<=`` when inclusive); 0 for an empty ``d``."""
    if len(d) == 0:
        return np.zeros(len(thresholds))
    counts = np.searchsorted(np.sort(d), thresholds, side="right" if inclusive else "left")
    return counts / len(d)


def _fscore(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)


def distance_metrics(
    d_pred: np.ndarray,
    d_gt: np.ndarray,
    threshold: float = 0.05,
    inclusive: bool = False,
    max_dist: float | None = None,
) -> dict[str, float]:
    """The metrics (module docstring) from both distance sets (metres).

    inclusive: count ``d <= t`` instead of ``d < t``; max_dist: clip distances to it
    (also the accuracy / completeness of an empty set; inf without clipping).
    """
    d_pred, d_gt = np.asarray(d_pred, np.float64), np.asarray(d_gt, np.float64)
    if max_dist is not None:
        d_pred, d_gt = np.minimum(d_pred, max_dist), np.minimum(d_gt, max_dist)
    empty = float("inf") if max_dist is None else float(max_dist)
    acc = float(np.mean(d_pred)) if len(d_pred) else empty
    comp = float(np.mean(d_gt)) if len(d_gt) else empty
    t = np.array([threshold], dtype=np.float64)
    prec = float(_share_within(d_pred, t, inclusive)[0])
    recal = float(_share_within(d_gt, t, inclusive)[0])
    return {
        "acc": acc,
        "comp": comp,
        "chamfer": (acc + comp) / 2,
        "prec": prec,
        "recal": recal,
        "fscore": float(_fscore(np.array(prec), np.array(recal))),
    }


def threshold_curves(
    d_pred: np.ndarray, d_gt: np.ndarray, thresholds: Sequence[float], inclusive: bool = False
) -> dict[str, list[float]]:
    """Precision, recall and F-score at each threshold (metres), from one sort per set.

    Returns lists keyed ``threshold``, ``prec``, ``recal``, ``fscore`` (same length).
    """
    t = np.asarray(thresholds, dtype=np.float64)
    prec = _share_within(np.asarray(d_pred, np.float64), t, inclusive)
    recal = _share_within(np.asarray(d_gt, np.float64), t, inclusive)
    return {
        "threshold": t.tolist(),
        "prec": prec.tolist(),
        "recal": recal.tolist(),
        "fscore": _fscore(prec, recal).tolist(),
    }


def point_metrics(pred: np.ndarray, gt: np.ndarray, threshold: float = 0.05) -> dict[str, float]:
    """Metrics between point sets pred (N, 3) and gt (M, 3), metres. An empty prediction
    scores precision = recall = F = 0 and infinite distances."""
    return distance_metrics(*nearest_distances(pred, gt), threshold)


def mesh_metrics(
    pred: Mesh, gt: Mesh, threshold: float = 0.05, downsample: float = 0.02
) -> dict[str, float]:
    """ATLAS-protocol metrics between two meshes' vertex sets, each voxel-downsampled at
    ``downsample`` metres (see the module docstring)."""
    return point_metrics(
        voxel_downsample(pred.vertices, downsample),
        voxel_downsample(gt.vertices, downsample),
        threshold,
    )
