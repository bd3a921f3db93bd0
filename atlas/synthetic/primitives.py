"""Densely tessellated primitives (rectangles, boxes, cylinders) for synthetic rooms.

Every part carries per-vertex normals and a material id, so the renderer can texture
hits and the ground-truth mesh can be coloured. Edges are at most ``edge`` metres long,
so mesh vertices sample surfaces densely, as a scanned mesh's do (the ATLAS metric
compares mesh vertices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Part:
    """vertices: (V, 3) float64 metres; faces: (F, 3) int64; normals: (V, 3) unit;
    material: (V,) int32 material id of each vertex."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    material: np.ndarray

    def transformed(self, yaw: float, translation: np.ndarray) -> Part:
        """Rotate by ``yaw`` radians about +z, then translate (metres)."""
        c, s = np.cos(yaw), np.sin(yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return Part(
            self.vertices @ R.T + translation, self.faces, self.normals @ R.T, self.material
        )

    @staticmethod
    def concatenate(parts: list[Part]) -> Part:
        offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
        return Part(
            np.concatenate([p.vertices for p in parts]),
            np.concatenate([p.faces + o for p, o in zip(parts, offsets, strict=True)]),
            np.concatenate([p.normals for p in parts]),
            np.concatenate([p.material for p in parts]),
        )


def _grid_faces(nu: int, nv: int, wrap_u: bool = False) -> np.ndarray:
    """Two triangles per cell of a (nu+1) x (nv+1) vertex grid (vertex id = i*(nv+1)+j);
    with ``wrap_u`` the grid has nu vertex rows and row nu-1 joins row 0."""
    rows = nu if wrap_u else nu + 1
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    a = i * (nv + 1) + j
    b = ((i + 1) % rows) * (nv + 1) + j
    tri1 = np.stack([a, b, b + 1], -1).reshape(-1, 3)
    tri2 = np.stack([a, b + 1, a + 1], -1).reshape(-1, 3)
    return np.concatenate([tri1, tri2])


def rectangle(
    corner: np.ndarray, side_u: np.ndarray, side_v: np.ndarray, material: int, edge: float
) -> Part:
    """Planar rectangle ``corner + s*side_u + t*side_v``, s, t in [0, 1]; its normal is
    ``side_u x side_v`` (the faces wind so)."""
    side_u, side_v = np.asarray(side_u, float), np.asarray(side_v, float)
    nu = max(1, int(np.ceil(np.linalg.norm(side_u) / edge)))
    nv = max(1, int(np.ceil(np.linalg.norm(side_v) / edge)))
    s, t = np.meshgrid(np.linspace(0, 1, nu + 1), np.linspace(0, 1, nv + 1), indexing="ij")
    verts = corner + s.reshape(-1, 1) * side_u + t.reshape(-1, 1) * side_v
    normal = np.cross(side_u, side_v)
    normal /= np.linalg.norm(normal)
    return Part(
        verts,
        _grid_faces(nu, nv),
        np.tile(normal, (len(verts), 1)),
        np.full(len(verts), material, np.int32),
    )


def box(
    size: np.ndarray,
    material: int,
    edge: float,
    base_center: np.ndarray | None = None,
    yaw: float = 0.0,
    skip_bottom: bool = True,
) -> Part:
    """Axis-aligned box of ``size`` (x, y, z) metres with outward normals, its bottom face
    centred on ``base_center`` after a ``yaw`` rotation about +z."""
    sx, sy, sz = size
    lo = np.array([-sx / 2, -sy / 2, 0.0])
    ex, ey, ez = np.array([sx, 0, 0.0]), np.array([0, sy, 0.0]), np.array([0, 0, sz])
    faces = [
        rectangle(lo, ez, ey, material, edge),  # -x
        rectangle(lo + ex, ey, ez, material, edge),  # +x
        rectangle(lo, ex, ez, material, edge),  # -y
        rectangle(lo + ey, ez, ex, material, edge),  # +y
        rectangle(lo + ez, ex, ey, material, edge),  # +z (top)
    ]
    if not skip_bottom:
        faces.append(rectangle(lo, ey, ex, material, edge))  # -z
    part = Part.concatenate(faces)
    center = np.zeros(3) if base_center is None else np.asarray(base_center, float)
    return part.transformed(yaw, center)


def cylinder(
    radius: float, height: float, material: int, edge: float, base_center: np.ndarray
) -> Part:
    """Vertical closed-top cylinder standing on ``base_center`` (outward normals)."""
    n_theta = max(8, int(np.ceil(2 * np.pi * radius / edge)))
    nz = max(1, int(np.ceil(height / edge)))
    theta = np.linspace(0, 2 * np.pi, n_theta, endpoint=False)
    th, z = np.meshgrid(theta, np.linspace(0, height, nz + 1), indexing="ij")
    radial = np.stack([np.cos(th), np.sin(th), np.zeros_like(th)], -1).reshape(-1, 3)
    side = Part(
        radial * radius + np.stack([0 * th, 0 * th, z], -1).reshape(-1, 3),
        _grid_faces(n_theta, nz, wrap_u=True),
        radial,
        np.full(len(radial), material, np.int32),
    )
    # Top cap: rings of n_theta vertices plus a centre vertex (fan).
    n_r = max(1, int(np.ceil(radius / edge)))
    rho = np.linspace(radius / n_r, radius, n_r)
    th2, r2 = np.meshgrid(theta, rho, indexing="ij")
    ring = np.stack([r2 * np.cos(th2), r2 * np.sin(th2), np.full_like(r2, height)], -1)
    cap_verts = np.concatenate([[[0.0, 0.0, height]], ring.reshape(-1, 3)])
    ring_faces = _grid_faces(n_theta, n_r - 1, wrap_u=True)[:, ::-1] + 1
    j = np.arange(n_theta)
    fan = np.stack([np.zeros(n_theta, int), 1 + j * n_r, 1 + ((j + 1) % n_theta) * n_r], -1)
    cap = Part(
        cap_verts,
        np.concatenate([fan, ring_faces]),
        np.tile([0.0, 0.0, 1.0], (len(cap_verts), 1)),
        np.full(len(cap_verts), material, np.int32),
    )
    return Part.concatenate([side, cap]).transformed(0.0, np.asarray(base_center, float))
