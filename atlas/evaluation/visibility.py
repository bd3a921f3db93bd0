"""Observed space of a scan as a voxel mask (the ``culled`` protocol's visibility mask).

A voxel is *visible* when, for at least one camera, its centre is in front of the camera,
projects (nearest pixel) inside the image onto a pixel with a depth measurement ``d``,
and its depth along the optical axis is at most ``d + margin``: the camera saw through
the voxel, or saw a surface within ``margin`` in front of it. Space behind every
observed surface (by more than the margin) and outside every frustum stays invisible.

The depth maps may be rendered from the ground-truth mesh (the default in
``evaluate.py``; a ray that hits nothing has depth inf: it saw through all the space
along it) or measured by an RGB-D sensor (0 = no measurement: nothing along the ray
counts as seen), so a mask can be made for any RGB-D scan. Masks are stored as
compressed ``.npz`` (visible, origin, voxel_size).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.evaluation.views import Views, render_depths
from atlas.geometry.mesh import Mesh
from atlas.io_utils import load_npz, save_npz


@dataclass
class VisibilityMask:
    """visible: (X, Y, Z) bool; origin: (3,) world metres of voxel (0, 0, 0)'s centre;
    voxel_size: metres (the voxel-grid convention of docs/architecture.md)."""

    visible: np.ndarray
    origin: np.ndarray
    voxel_size: float

    def __post_init__(self) -> None:
        self.visible = np.asarray(self.visible, dtype=bool)
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        self.voxel_size = float(self.voxel_size)
        if self.visible.ndim != 3 or not self.voxel_size > 0:
            raise ValueError("a visibility mask is a 3-D grid with a positive voxel size")

    def contains(self, points: np.ndarray) -> np.ndarray:
        """(N,) bool: points (N, 3) metres whose nearest voxel is visible (False outside
        the grid)."""
        idx = np.rint((np.asarray(points, np.float64) - self.origin) / self.voxel_size)
        idx = idx.astype(np.int64).reshape(-1, 3)
        inside = ((idx >= 0) & (idx < self.visible.shape)).all(axis=1)
        out = np.zeros(len(idx), dtype=bool)
        out[inside] = self.visible[tuple(idx[inside].T)]
        return out

    def save(self, path: str | Path) -> None:
        """Write a compressed ``.npz`` atomically."""
        save_npz(path, visible=self.visible, origin=self.origin, voxel_size=self.voxel_size)

    @classmethod
    def load(cls, path: str | Path) -> VisibilityMask:
        """Read a mask written by :meth:`save`; errors name the file."""
        data = load_npz(path, "visibility mask", ("visible", "origin", "voxel_size"))
        return cls(data["visible"], data["origin"], float(data["voxel_size"]))


def visibility_mask(
    depths: Iterable[np.ndarray],
    views: Views,
    bounds_min: np.ndarray,
    bounds_max: np.ndarray,
    voxel_size: float = 0.04,
    margin: float = 0.06,
) -> VisibilityMask:
    """The mask of the world box ``[bounds_min, bounds_max]`` seen by ``views``.

    depths: one (H, W) float32 metres map per view (0 = no measurement, inf = nothing
    along the ray); voxel_size and
    margin: metres (see the module docstring). Each view tests only the voxels not yet
    found visible.
    """
    lo = np.floor(np.asarray(bounds_min, np.float64) / voxel_size) * voxel_size
    shape = tuple(np.ceil((np.asarray(bounds_max) - lo) / voxel_size).astype(int) + 1)
    visible = np.zeros(int(np.prod(shape)), dtype=bool)
    todo = np.arange(len(visible))  # voxels not yet known visible (compacted now and then)
    # (3, N) float32 centres: one BLAS product projects them all; sub-micrometre error.
    centres = (lo[:, None] + voxel_size * np.stack(np.unravel_index(todo, shape))).astype(
        np.float32
    )
    newly_seen = 0
    for depth, pose in zip(depths, views.poses, strict=True):
        M = views.K @ pose[:3, :3].T  # world -> homogeneous pixels (u z, v z, z)
        pix = M.astype(np.float32) @ centres
        pix -= (M @ pose[:3, 3]).astype(np.float32)[:, None]
        z = pix[2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u, v = np.rint(pix[0] / z), np.rint(pix[1] / z)
        inside = (z > 1e-6) & (u >= 0) & (u < views.width) & (v >= 0) & (v < views.height)
        idx = np.flatnonzero(inside)
        d = depth[v[idx].astype(np.intp), u[idx].astype(np.intp)]
        seen = todo[idx[(d > 0) & (z[idx] <= d + margin)]]
        newly_seen += int(np.count_nonzero(~visible[seen]))
        visible[seen] = True
        if newly_seen > len(todo) // 8:
            keep = ~visible[todo]
            todo, centres, newly_seen = todo[keep], centres[:, keep], 0
    return VisibilityMask(visible.reshape(shape), lo, voxel_size)


def mesh_visibility_mask(
    mesh: Mesh,
    views: Views,
    voxel_size: float = 0.04,
    margin: float = 0.06,
    depths: Iterable[np.ndarray] | None = None,
) -> VisibilityMask:
    """:func:`visibility_mask` over the mesh's bounding box padded by ``margin`` plus one
    voxel, from ``depths`` (one measured (H, W) map per view, e.g. the scan's RGB-D
    depth) or by default from the mesh's own rendered depth (rays that miss it see
    through)."""
    if len(mesh.vertices) == 0:
        raise ValueError("cannot make a visibility mask from an empty mesh")
    if depths is None:
        depths = (np.where(d > 0, d, np.inf) for d in render_depths(mesh, views))
    pad = margin + voxel_size
    return visibility_mask(
        depths,
        views,
        mesh.vertices.min(axis=0) - pad,
        mesh.vertices.max(axis=0) + pad,
        voxel_size,
        margin,
    )
