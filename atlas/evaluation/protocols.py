"""The published mesh-evaluation protocols, each a dataclass (also its Hydra schema).

- ``atlas`` (Murez et al. 2020): vertices of both meshes, voxel-downsampled at 2 cm.
- ``trimmed`` (NeuralRecon / VoRTX): the prediction is first re-fused from its own depth
  rendered at every input camera (4 cm voxels, 12 cm truncation, 5 m depth cut), which
  drops geometry no camera saw; then as ``atlas``.
- ``culled`` (TransformerFusion): the ground truth keeps only the vertices in space the
  cameras observed (:mod:`atlas.evaluation.visibility`); 200,000 points are sampled on
  the predicted surface (fixed seed), those outside observed space are ignored for
  accuracy and precision; distances are clipped at 1 m; ``d <= t`` counts as within.

Use: ``ref = protocol.reference(gt, views)`` once per scene (it holds the processed
ground truth and its KD-tree), then ``protocol.evaluate(pred, ref, views)`` for each
prediction. Metric definitions: :mod:`atlas.evaluation.mesh_metrics`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar

import numpy as np
from scipy.spatial import cKDTree

from atlas.evaluation.mesh_metrics import (
    build_tree,
    distance_metrics,
    nearest_distances,
    sample_surface,
    voxel_downsample,
)
from atlas.evaluation.views import Views, fuse_depth_maps, render_depths
from atlas.evaluation.visibility import VisibilityMask, mesh_visibility_mask
from atlas.geometry.mesh import Mesh


@dataclass
class Reference:
    """The ground truth as a protocol compares against it: points (M, 3) float64 metres,
    their KD-tree, and the visibility mask where the protocol uses one."""

    points: np.ndarray
    tree: cKDTree
    mask: VisibilityMask | None = None


@dataclass
class MeshEvaluation:
    """One prediction scored by a protocol.

    metrics: ``acc``, ``comp``, ``chamfer`` (metres), ``prec``, ``recal``, ``fscore``,
    ``n_pred``, ``n_gt`` (points compared); d_pred (N,), d_gt (M,): the distances behind
    them (metres, clipped where the protocol clips); inclusive: whether ``d <= t``
    counts as within; mesh: the prediction as evaluated (trimmed for ``trimmed``);
    vertex_distance: (V,) distance of each of its vertices to the ground-truth points
    (metres), NaN where the protocol ignores the vertex; computed on first access (one
    more KD-tree query, which only the plots need) by ``vertex_distance_fn``.
    """

    metrics: dict[str, float]
    d_pred: np.ndarray
    d_gt: np.ndarray
    inclusive: bool
    mesh: Mesh
    vertex_distance_fn: Callable[[], np.ndarray] = field(repr=False)

    @cached_property
    def vertex_distance(self) -> np.ndarray:
        return self.vertex_distance_fn()


def _tree(points: np.ndarray) -> cKDTree:
    return build_tree(points if len(points) else np.zeros((1, 3)))


def _vertex_distance(mesh: Mesh, ref: Reference) -> np.ndarray:
    if len(mesh.vertices) == 0 or len(ref.points) == 0:
        return np.full(len(mesh.vertices), np.nan)
    return ref.tree.query(mesh.vertices.astype(np.float64), workers=-1)[0]


@dataclass
class MeshProtocol(ABC):
    """Base of the protocols: threshold in metres (default 5 cm)."""

    name: ClassVar[str]
    threshold: float = 0.05

    @abstractmethod
    def reference(self, gt: Mesh, views: Views | None = None) -> Reference:
        """The processed ground truth of a scene."""

    @abstractmethod
    def evaluate(self, pred: Mesh, ref: Reference, views: Views | None = None) -> MeshEvaluation:
        """Score a prediction against ``reference(gt, views)``."""

    def _check_views(self, views: Views | None) -> Views:
        if views is None:
            raise ValueError(f"protocol '{self.name}' needs the scan's cameras (set scene=...)")
        return views


@dataclass
class AtlasProtocol(MeshProtocol):
    """ATLAS: both vertex sets voxel-downsampled at ``downsample`` metres."""

    name: ClassVar[str] = "atlas"
    downsample: float = 0.02

    def reference(self, gt: Mesh, views: Views | None = None) -> Reference:
        points = voxel_downsample(gt.vertices, self.downsample)
        return Reference(points, _tree(points))

    def evaluate(self, pred: Mesh, ref: Reference, views: Views | None = None) -> MeshEvaluation:
        points = voxel_downsample(pred.vertices, self.downsample)
        d_pred, d_gt = nearest_distances(points, ref.points, ref.tree)
        metrics = distance_metrics(d_pred, d_gt, self.threshold)
        metrics.update(n_pred=len(points), n_gt=len(ref.points))
        return MeshEvaluation(
            metrics, d_pred, d_gt, False, pred, lambda: _vertex_distance(pred, ref)
        )


def trim_mesh(
    mesh: Mesh,
    views: Views,
    voxel_size: float = 0.04,
    trunc_voxels: float = 3.0,
    max_depth: float = 5.0,
) -> Mesh:
    """The mesh re-fused from its own depth rendered at every view (NeuralRecon's
    trimming): surfaces no view sees, or sees beyond ``max_depth`` metres, disappear.
    voxel_size: metres; trunc_voxels: truncation in voxels."""
    if mesh.is_empty:
        return mesh
    pad = (trunc_voxels + 1) * voxel_size
    bounds = (mesh.vertices.min(axis=0) - pad, mesh.vertices.max(axis=0) + pad)
    return fuse_depth_maps(
        render_depths(mesh, views), views, voxel_size, trunc_voxels, max_depth, bounds
    )


@dataclass
class TrimmedProtocol(AtlasProtocol):
    """NeuralRecon / VoRTX: :func:`trim_mesh` the prediction, then ``atlas``."""

    name: ClassVar[str] = "trimmed"
    voxel_size: float = 0.04
    trunc_voxels: float = 3.0
    max_depth: float = 5.0

    def evaluate(self, pred: Mesh, ref: Reference, views: Views | None = None) -> MeshEvaluation:
        views = self._check_views(views)
        trimmed = trim_mesh(pred, views, self.voxel_size, self.trunc_voxels, self.max_depth)
        return super().evaluate(trimmed, ref, views)


@dataclass
class CulledProtocol(MeshProtocol):
    """TransformerFusion: visibility-culled ground truth, sampled prediction.

    n_samples / seed: points sampled on the predicted surface; max_dist: distance clip,
    metres; inclusive: ``d <= t`` counts as within; mask_voxel_size / mask_margin: the
    visibility mask made from the ground truth's rendered depth (metres).
    """

    name: ClassVar[str] = "culled"
    n_samples: int = 200_000
    seed: int = 0
    max_dist: float = 1.0
    inclusive: bool = True
    mask_voxel_size: float = 0.04
    mask_margin: float = 0.06

    def reference(
        self, gt: Mesh, views: Views | None = None, mask: VisibilityMask | None = None
    ) -> Reference:
        """The ground-truth vertices in observed space. ``mask``: a precomputed mask;
        default: made from ``gt`` rendered at ``views``."""
        if mask is None:
            mask = mesh_visibility_mask(
                gt, self._check_views(views), self.mask_voxel_size, self.mask_margin
            )
        points = gt.vertices[mask.contains(gt.vertices)].astype(np.float64)
        if len(points) == 0:
            raise ValueError("no ground-truth vertex lies in the space the cameras observed")
        return Reference(points, _tree(points), mask)

    def evaluate(self, pred: Mesh, ref: Reference, views: Views | None = None) -> MeshEvaluation:
        if ref.mask is None:
            raise ValueError("the culled protocol needs a reference made by its reference()")
        samples = sample_surface(pred, self.n_samples, self.seed)
        d_samples, d_gt = nearest_distances(samples, ref.points, ref.tree)
        observed = ref.mask.contains(samples)
        # As TransformerFusion: when no sample is in observed space, all of them count.
        d_pred = d_samples[observed] if observed.any() else d_samples
        d_pred = np.minimum(d_pred, self.max_dist)
        d_gt = np.minimum(d_gt, self.max_dist)
        metrics = distance_metrics(d_pred, d_gt, self.threshold, self.inclusive, self.max_dist)
        metrics.update(n_pred=len(d_pred), n_gt=len(ref.points))
        mask = ref.mask

        def vertex_distance() -> np.ndarray:
            distance = _vertex_distance(pred, ref)
            distance[~mask.contains(pred.vertices)] = np.nan
            return distance

        return MeshEvaluation(metrics, d_pred, d_gt, self.inclusive, pred, vertex_distance)


PROTOCOLS: dict[str, type[MeshProtocol]] = {
    p.name: p for p in (AtlasProtocol, TrimmedProtocol, CulledProtocol)
}
