"""Vertex colours of a mesh from the images that see each vertex."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from atlas.geometry.mesh import Mesh
from atlas.geometry.raycast import MeshRaycaster


def color_vertices(
    mesh: Mesh,
    views: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    occlusion_tol: float = 0.03,
) -> np.ndarray:
    """(V, 3) uint8 mean colour of each vertex over the views that see it.

    views: ``(color (H, W, 3) uint8, K (3, 3) for that size, cam_to_world (4, 4))``. A
    vertex counts in a view when it projects inside the image and is not hidden: its
    depth is within ``occlusion_tol`` metres of the mesh's own rendered depth there.
    Vertices no view sees are grey.
    """
    caster = MeshRaycaster(mesh)
    verts = mesh.vertices.astype(np.float64)
    total = np.zeros((len(verts), 3))
    count = np.zeros(len(verts))
    for color, K, pose in views:
        h, w = color.shape[:2]
        rendered = caster.render(K, pose, w, h).depth
        world_to_cam = np.linalg.inv(pose)
        cam = verts @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
        z = cam[:, 2]
        zs = np.maximum(z, 1e-6)
        u = np.round(cam[:, 0] / zs * K[0, 0] + K[0, 2]).astype(np.int64)
        v = np.round(cam[:, 1] / zs * K[1, 1] + K[1, 2]).astype(np.int64)
        seen = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        uu, vv = np.where(seen, u, 0), np.where(seen, v, 0)
        seen &= np.abs(rendered[vv, uu] - z) < occlusion_tol
        total[seen] += color[vv[seen], uu[seen]]
        count[seen] += 1
    mean = np.full((len(verts), 3), 128.0)
    mean[count > 0] = total[count > 0] / count[count > 0, None]
    return np.clip(np.rint(mean), 0, 255).astype(np.uint8)
