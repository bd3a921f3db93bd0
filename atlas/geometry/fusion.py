"""Projective TSDF fusion of depth (and colour) maps into a dense voxel grid.

The grid is stored brick-major: bricks of 8x8x8 voxels, each brick's 512 voxels
contiguous, so a frame's update gathers and scatters whole rows. In ``surface`` mode
(the default) a frame updates only the bricks within the truncation distance of its
depth points, which is what keeps fusion fast (about what Open3D's VoxelBlockGrid
touches); ``frustum`` mode updates every voxel the camera sees up to ``max_depth``,
so free space far from any surface is observed too (what training targets want).

Per voxel the update is the usual weighted running average (Curless & Levoy): the
voxel centre is projected to the nearest pixel, ``sdf = depth - z`` (along the optical
axis), voxels with ``sdf < -trunc`` (behind the surface) are skipped, the rest get
``min(sdf / trunc, 1)`` with weight 1.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from atlas.geometry.camera import check_intrinsics, check_pose
from atlas.geometry.voxel_grid import VoxelGrid

BRICK = 8
BRICK_VOXELS = BRICK**3


def _as_tensor(x: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype
               ) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)


class TSDFFusion:
    """A dense TSDF volume that integrates depth frames one at a time.

    origin: (3,) world metres of voxel (0,0,0)'s centre; shape: (X, Y, Z) voxels;
    voxel_size: metres; trunc_voxels: truncation distance in voxels (default 3);
    max_depth: depths beyond it (metres) are ignored; with_color: also average RGB;
    mode: ``"surface"`` or ``"frustum"`` (see the module docstring); device: torch device.
    Memory: 8 bytes per voxel (12 more with colour), independent of the frame count.
    """

    def __init__(self, origin: np.ndarray, shape: tuple[int, int, int], voxel_size: float,
                 trunc_voxels: float = 3.0, max_depth: float = 3.0, with_color: bool = False,
                 mode: str = "surface", device: str | torch.device = "cpu") -> None:
        if mode not in ("surface", "frustum"):
            raise ValueError(f"fusion mode must be 'surface' or 'frustum', got {mode!r}")
        if voxel_size <= 0 or trunc_voxels <= 0 or max_depth <= 0:
            raise ValueError("voxel_size, trunc_voxels and max_depth must be positive")
        self.origin = np.asarray(origin, dtype=np.float64).reshape(3)
        self.shape = tuple(int(s) for s in shape)
        if min(self.shape) < 1:
            raise ValueError(f"grid shape must be positive, got {self.shape}")
        self.voxel_size = float(voxel_size)
        self.trunc_voxels = float(trunc_voxels)
        self.trunc = self.trunc_voxels * self.voxel_size
        self.max_depth = float(max_depth)
        self.mode = mode
        self.device = torch.device(device)
        self.bricks_shape = tuple(-(-s // BRICK) for s in self.shape)
        n_bricks = int(np.prod(self.bricks_shape))
        self.tsdf = torch.ones(n_bricks, BRICK_VOXELS, device=self.device)
        self.weight = torch.zeros(n_bricks, BRICK_VOXELS, device=self.device)
        self.color = (torch.zeros(n_bricks, BRICK_VOXELS, 3, device=self.device)
                      if with_color else None)
        local = torch.stack(torch.meshgrid(*[torch.arange(BRICK)] * 3, indexing="ij"), -1)
        self._local = local.reshape(BRICK_VOXELS, 3).to(self.device, torch.float32)
        bx, by, bz = self.bricks_shape
        self._brick_strides = torch.tensor([by * bz, bz, 1], device=self.device)
        self._brick_dims = torch.tensor(self.bricks_shape, device=self.device)
        self._origin_t = torch.tensor(self.origin, device=self.device, dtype=torch.float64)
        self.frames_integrated = 0

    @classmethod
    def from_bounds(cls, bounds_min: np.ndarray, bounds_max: np.ndarray, voxel_size: float,
                    **kwargs) -> TSDFFusion:
        """A volume covering the world box ``[bounds_min, bounds_max]`` (metres).

        The origin is snapped to a multiple of ``voxel_size`` so that translating a scene by
        whole voxels translates the grid by whole voxels.
        """
        bmin = np.floor(np.asarray(bounds_min, dtype=np.float64) / voxel_size) * voxel_size
        shape = np.ceil((np.asarray(bounds_max) - bmin) / voxel_size).astype(int) + 1
        return cls(bmin, tuple(shape), voxel_size, **kwargs)

    # ------------------------------------------------------------------ integration
    def integrate(self, depth: np.ndarray | torch.Tensor, K: np.ndarray | torch.Tensor,
                  cam_to_world: np.ndarray | torch.Tensor,
                  color: np.ndarray | torch.Tensor | None = None, name: str = "frame") -> None:
        """Fuse one frame.

        depth: (H, W) float metres, 0 / non-finite = no measurement; K: (3, 3) for that
        size; cam_to_world: (4, 4); color: optional (H, W, 3) uint8 RGB of the same size;
        name: used in error messages (e.g. the depth file).
        """
        if isinstance(depth, np.ndarray | torch.Tensor) and depth.ndim == 2:
            if not (depth.dtype.is_floating_point if isinstance(depth, torch.Tensor)
                    else np.issubdtype(depth.dtype, np.floating)):
                raise ValueError(f"{name}: depth must be float metres, got dtype {depth.dtype} "
                                 "(convert millimetres with depth / 1000)")
        else:
            raise ValueError(f"{name}: depth must be a 2-D (H, W) array, got "
                             f"{getattr(depth, 'shape', type(depth))}")
        check_pose(cam_to_world, name)
        check_intrinsics(K, name)
        if color is not None and tuple(color.shape) != (*depth.shape, 3):
            raise ValueError(f"{name}: colour shape {tuple(color.shape)} does not match depth "
                             f"{tuple(depth.shape)} (expected (H, W, 3))")
        if color is not None and self.color is None:
            raise ValueError(f"{name}: colour given but the volume was made without colour")

        depth_t = _as_tensor(depth, self.device, torch.float32)
        depth_t = torch.where(torch.isfinite(depth_t) & (depth_t > 0)
                              & (depth_t <= self.max_depth), depth_t, torch.zeros_like(depth_t))
        K_t = _as_tensor(K, self.device, torch.float64)
        pose_t = _as_tensor(cam_to_world, self.device, torch.float64)
        brick_ids = (self._surface_bricks(depth_t, K_t, pose_t) if self.mode == "surface"
                     else self._frustum_bricks(depth_t.shape, K_t, pose_t))
        if brick_ids.numel() > 0:
            color_t = None if color is None else _as_tensor(color, self.device, torch.float32)
            self._update_bricks(brick_ids, depth_t, K_t, pose_t, color_t)
        self.frames_integrated += 1

    def integrate_frames(self, frames: Iterable[tuple], progress: bool = False) -> TSDFFusion:
        """Fuse a stream of ``(depth, K, cam_to_world[, color])`` tuples; returns self."""
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc="fusing", unit="frame")
        for i, frame in enumerate(frames):
            self.integrate(*frame, name=f"frame {i}")
        return self

    def _surface_bricks(self, depth: torch.Tensor, K: torch.Tensor, pose: torch.Tensor
                        ) -> torch.Tensor:
        """Ids of bricks holding a voxel centre within the truncation band of a depth point.

        Depth pixels are subsampled (every 2nd); the band is widened by one voxel to cover
        the gaps. Since the band (trunc + 1 voxel) is narrower than a brick, each point's
        band box spans at most 2 bricks per axis.
        """
        sub = depth[::2, ::2]
        v, u = torch.nonzero(sub > 0, as_tuple=True)
        if v.numel() == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        d = sub[v, u].to(torch.float64)
        u = u.to(torch.float64) * 2
        v = v.to(torch.float64) * 2
        cam = torch.stack(((u - K[0, 2]) / K[0, 0] * d, (v - K[1, 2]) / K[1, 1] * d, d), -1)
        world = cam @ pose[:3, :3].T + pose[:3, 3]
        grid = ((world - self._origin_t) / self.voxel_size).to(torch.float32)  # voxel coords
        margin = min(self.trunc_voxels + 1.0, BRICK - 1)
        lo = torch.ceil(grid - margin).long().div(BRICK, rounding_mode="floor")
        hi = torch.floor(grid + margin).long().div(BRICK, rounding_mode="floor")
        marked = torch.zeros(int(np.prod(self.bricks_shape)), dtype=torch.bool, device=self.device)
        for dx in (0, 1):
            for dy in (0, 1):
                for dz in (0, 1):
                    b = lo + torch.tensor([dx, dy, dz], device=self.device)
                    ok = ((b <= hi) & (b >= 0) & (b < self._brick_dims)).all(-1)
                    marked[(b[ok] * self._brick_strides).sum(-1)] = True
        return torch.nonzero(marked).squeeze(1)

    def _frustum_bricks(self, image_hw: tuple[int, int], K: torch.Tensor, pose: torch.Tensor
                        ) -> torch.Tensor:
        """Ids of bricks whose bounding sphere meets the view frustum (up to max_depth)."""
        n = int(np.prod(self.bricks_shape))
        ids = torch.arange(n, device=self.device)
        bxyz = torch.stack([ids // self._brick_strides[0],
                            (ids // self._brick_strides[1]) % self._brick_dims[1],
                            ids % self._brick_dims[2]], -1)
        centre = self._origin_t + (bxyz * BRICK + (BRICK - 1) / 2) * self.voxel_size
        radius = (BRICK / 2) * self.voxel_size * 3**0.5
        cam = (centre - pose[:3, 3]) @ pose[:3, :3]
        z = cam[:, 2]
        h, w = image_hw
        # Distances of the centre to the 4 side planes of the frustum (inside positive).
        xs = torch.stack(((cam[:, 0] - (-0.5 - K[0, 2]) / K[0, 0] * z),
                          ((w - 0.5 - K[0, 2]) / K[0, 0] * z - cam[:, 0])), -1)
        ys = torch.stack(((cam[:, 1] - (-0.5 - K[1, 2]) / K[1, 1] * z),
                          ((h - 0.5 - K[1, 2]) / K[1, 1] * z - cam[:, 1])), -1)
        # Scale by the plane normals' norms (planes x = a z have normal (1, -a)).
        ax = torch.tensor([(-0.5 - K[0, 2]) / K[0, 0], (w - 0.5 - K[0, 2]) / K[0, 0]],
                          device=self.device, dtype=torch.float64)
        ay = torch.tensor([(-0.5 - K[1, 2]) / K[1, 1], (h - 0.5 - K[1, 2]) / K[1, 1]],
                          device=self.device, dtype=torch.float64)
        inside = ((xs / torch.sqrt(1 + ax**2) > -radius).all(-1)
                  & (ys / torch.sqrt(1 + ay**2) > -radius).all(-1)
                  & (z > -radius) & (z < self.max_depth + radius))
        return ids[inside]

    def _update_bricks(self, brick_ids: torch.Tensor, depth: torch.Tensor, K: torch.Tensor,
                       pose: torch.Tensor, color: torch.Tensor | None) -> None:
        """Running-average update of every voxel of the given bricks."""
        bz = self._brick_dims[2]
        by = self._brick_dims[1]
        bxyz = torch.stack([brick_ids // (by * bz), (brick_ids // bz) % by, brick_ids % bz], -1)
        # Camera coordinates = brick corner (float64, small count) + local offsets (float32).
        world_to_cam_R = pose[:3, :3].T
        corner_world = self._origin_t + bxyz.to(torch.float64) * (BRICK * self.voxel_size)
        corner_cam = ((corner_world - pose[:3, 3]) @ world_to_cam_R.T).to(torch.float32)
        local_cam = (self._local * self.voxel_size) @ world_to_cam_R.T.to(torch.float32)
        cam = corner_cam[:, None, :] + local_cam[None]  # (M, 512, 3)
        tsdf_new, valid, pix = _voxel_tsdf(
            cam, depth, K.to(torch.float32), self.trunc)
        old_t = self.tsdf[brick_ids]
        old_w = self.weight[brick_ids]
        new_w = old_w + valid
        self.tsdf[brick_ids] = torch.where(
            valid.bool(), (old_t * old_w + tsdf_new) / new_w.clamp_min(1), old_t)
        self.weight[brick_ids] = new_w
        if color is not None and self.color is not None:
            sampled = color.reshape(-1, 3)[pix.reshape(-1)].reshape(*pix.shape, 3)
            old_c = self.color[brick_ids]
            self.color[brick_ids] = torch.where(
                valid.bool()[..., None],
                (old_c * old_w[..., None] + sampled) / new_w.clamp_min(1)[..., None], old_c)

    # ------------------------------------------------------------------ output
    def to_grid(self) -> VoxelGrid:
        """The fused volume as a :class:`VoxelGrid` in (X, Y, Z) order (on the CPU)."""
        def dense(bricks: torch.Tensor) -> np.ndarray:
            bx, by, bz = self.bricks_shape
            extra = bricks.shape[2:]
            vol = bricks.reshape(bx, by, bz, BRICK, BRICK, BRICK, *extra)
            vol = vol.permute(0, 3, 1, 4, 2, 5, *range(6, 6 + len(extra)))
            vol = vol.reshape(bx * BRICK, by * BRICK, bz * BRICK, *extra)
            x, y, z = self.shape
            return vol[:x, :y, :z].cpu().numpy()

        color = None
        if self.color is not None:
            color = np.clip(np.rint(dense(self.color)), 0, 255).astype(np.uint8)
        return VoxelGrid(dense(self.tsdf), dense(self.weight), self.origin.copy(),
                         self.voxel_size, color, self.trunc_voxels)


def _voxel_tsdf(cam: torch.Tensor, depth: torch.Tensor, K: torch.Tensor, trunc: float
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-voxel truncated SDF observation of one frame.

    cam: (..., 3) voxel centres in camera metres; depth: (H, W) metres (0 = none);
    K: (3, 3) float32. Returns tsdf (...) in [-1, 1], valid (...) float 0/1 and the
    flat nearest-pixel index (...) (0 where invalid).
    """
    h, w = depth.shape
    z = cam[..., 2]
    zs = z.clamp_min(1e-6)
    u = torch.round(cam[..., 0] / zs * K[0, 0] + K[0, 2])
    v = torch.round(cam[..., 1] / zs * K[1, 1] + K[1, 2])
    inside = (z > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    pix = torch.where(inside, v * w + u, torch.zeros_like(u)).long()
    d = depth.reshape(-1)[pix]
    sdf = d - z
    valid = inside & (d > 0) & (sdf >= -trunc)
    return torch.clamp(sdf / trunc, max=1.0), valid.to(depth.dtype), pix


def fuse_depth_frames(frames: Iterable[tuple], bounds_min: np.ndarray, bounds_max: np.ndarray,
                      voxel_size: float, **kwargs) -> VoxelGrid:
    """Fuse ``(depth, K, cam_to_world[, color])`` frames into a grid covering the bounds."""
    fusion = TSDFFusion.from_bounds(bounds_min, bounds_max, voxel_size, **kwargs)
    return fusion.integrate_frames(frames).to_grid()
