"""Rendering a triangle mesh with a pinhole camera by ray casting (Open3D RaycastingScene)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from atlas.geometry.mesh import Mesh


@dataclass
class RaycastResult:
    """depth: (H, W) float32 metres along the optical axis, inf where no hit;
    triangle_ids: (H, W) int64, -1 where no hit; normals: (H, W, 3) float32 world unit
    normals of the hit faces; points: (H, W, 3) float32 world metres of the hits;
    barycentric: (H, W, 2) float32 weights (w1, w2) of the hit face's vertices 1 and 2."""

    depth: np.ndarray
    triangle_ids: np.ndarray
    normals: np.ndarray
    points: np.ndarray
    barycentric: np.ndarray

    @property
    def hit(self) -> np.ndarray:
        return self.triangle_ids >= 0


def pixel_rays(K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 6) float32 rays (origin, direction) through pixel centres.

    Directions are ``R @ inv(K) @ (u, v, 1)``, so a hit distance is the depth along the
    optical axis (z), not the Euclidean distance.
    """
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([u, v, np.ones_like(u)], axis=-1)
    dirs = pix @ np.linalg.inv(K).T @ cam_to_world[:3, :3].T
    origins = np.broadcast_to(cam_to_world[:3, 3], dirs.shape)
    return np.concatenate([origins, dirs], axis=-1).astype(np.float32)


class MeshRaycaster:
    """Casts camera rays against a fixed mesh (the BVH is built once)."""

    def __init__(self, mesh: Mesh) -> None:
        import open3d as o3d

        self._scene = o3d.t.geometry.RaycastingScene()
        self._scene.add_triangles(
            o3d.core.Tensor(mesh.vertices.astype(np.float32)),
            o3d.core.Tensor(mesh.faces.astype(np.uint32)),
        )
        self._normals = mesh.face_normals().astype(np.float32)

    def render(
        self, K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int
    ) -> RaycastResult:
        """Render one view. K: (3, 3) for (width, height); cam_to_world: (4, 4)."""
        import open3d as o3d

        rays = pixel_rays(
            np.asarray(K, np.float64), np.asarray(cam_to_world, np.float64), width, height
        )
        ans = self._scene.cast_rays(o3d.core.Tensor(rays))
        depth = ans["t_hit"].numpy().astype(np.float32)
        ids = ans["primitive_ids"].numpy().astype(np.int64)
        hit = np.isfinite(depth)
        ids[~hit] = -1
        depth[~hit] = np.inf
        normals = np.zeros((height, width, 3), np.float32)
        normals[hit] = self._normals[ids[hit]]
        points = rays[..., :3] + rays[..., 3:] * np.where(hit, depth, 0)[..., None]
        bary = ans["primitive_uvs"].numpy().astype(np.float32)
        return RaycastResult(depth, ids, normals, points.astype(np.float32), bary)
