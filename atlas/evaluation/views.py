"""The cameras of a scan, and the two things evaluation does with them: render a mesh's
depth at every camera, and fuse depth maps taken at those cameras into a mesh."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from atlas.geometry.mesh import Mesh
from atlas.geometry.raycast import MeshRaycaster


@dataclass
class Views:
    """Pinhole cameras sharing one intrinsics matrix.

    K: (3, 3) for images of ``width`` x ``height`` pixels; poses: (N, 4, 4) float64
    camera-to-world (OpenCV axes, metres), all finite.
    """

    K: np.ndarray
    poses: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.poses = np.asarray(self.poses, dtype=np.float64).reshape(-1, 4, 4)
        self.width, self.height = int(self.width), int(self.height)
        if len(self.poses) == 0:
            raise ValueError("no cameras: evaluation needs at least one valid pose")
        if not np.isfinite(self.poses).all():
            raise ValueError("camera poses must be finite (drop invalid frames first)")

    def __len__(self) -> int:
        return len(self.poses)


def render_depths(mesh: Mesh, views: Views) -> Iterator[np.ndarray]:
    """The mesh's depth at each view: (H, W) float32 metres along the optical axis, 0
    where the ray hits nothing (all 0 for a mesh without faces)."""
    if mesh.is_empty:
        for _ in range(len(views)):
            yield np.zeros((views.height, views.width), np.float32)
        return
    caster = MeshRaycaster(mesh)
    for pose in views.poses:
        hit = caster.render(views.K, pose, views.width, views.height)
        yield np.where(hit.hit, hit.depth, 0).astype(np.float32)


def fuse_depth_maps(
    depths: Iterable[np.ndarray],
    views: Views,
    voxel_size: float = 0.04,
    trunc_voxels: float = 3.0,
    max_depth: float = 5.0,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> Mesh:
    """TSDF-fuse one depth map per view and extract the mesh (world metres).

    depths: (H, W) float32 metres each, 0 = no measurement, in ``views`` order;
    voxel_size: metres; trunc_voxels: truncation in voxels; max_depth: depths beyond it
    (metres) are ignored; bounds: world box (min, max) of the volume, default the union
    of the view frusta up to ``max_depth`` (it is always clipped to that union).
    """
    # Imported here: fusion needs torch and marching cubes scikit-image, which a
    # mesh-pair evaluation never uses (and torch alone takes over a second to import).
    from atlas.geometry.fusion import fuse_depth_frames
    from atlas.geometry.marching_cubes import extract_mesh

    grid = fuse_depth_frames(
        ((d, None) for d in depths),
        views.K,
        views.poses,
        (views.width, views.height),
        voxel_size,
        max_depth,
        bounds,
        trunc_voxels=trunc_voxels,
    )
    if grid is None:
        return Mesh(np.zeros((0, 3)), np.zeros((0, 3), np.int64))
    return extract_mesh(grid)
