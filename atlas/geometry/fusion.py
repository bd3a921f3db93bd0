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

import os
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

        # Invalid depths (0, NaN, inf, beyond max_depth) are masked inside the kernels.
        depth_t = _as_tensor(depth, self.device, torch.float32)
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

        Depth pixels are subsampled with a stride that keeps neighbouring samples at most
        one voxel apart at ``max_depth``; the band is widened by that voxel. The band box
        ``p +- margin`` is narrower than a brick, so the bricks of its 8 corners are all
        the bricks it touches.
        """
        fx = float(K[0, 0])
        stride = int(min(4, max(1, self.voxel_size * fx / self.max_depth)))
        sub = depth[::stride, ::stride]
        rays = self._subsampled_rays(K, stride, sub.shape)  # (h, w, 3) camera, z = 1
        R = pose[:3, :3].to(torch.float32)
        # Voxel coordinates of the points: (R (ray * d) + t - origin) / voxel_size.
        cam_to_grid = (R / self.voxel_size).T
        offset = ((pose[:3, 3] - self._origin_t) / self.voxel_size).to(torch.float32)
        n_bricks = self.tsdf.shape[0]
        ids = _compiled("band_bricks", _band_brick_ids)(
            rays, sub, self.max_depth, cam_to_grid, offset,
            min(self.trunc_voxels + 1.0, BRICK - 1),
            self._brick_dims.to(torch.float32), self._brick_strides.to(torch.float32), n_bricks)
        marked = torch.zeros(n_bricks + 1, dtype=torch.bool, device=self.device)
        marked[ids] = True
        marked = marked[:n_bricks]
        return torch.nonzero(marked).squeeze(1)

    def _subsampled_rays(self, K: torch.Tensor, stride: int, hw: tuple[int, int]
                         ) -> torch.Tensor:
        """(h, w, 3) float32 camera rays (z = 1) through every ``stride``-th pixel (cached)."""
        key = (tuple(K.flatten().tolist()), stride, tuple(hw))
        if getattr(self, "_rays_key", None) != key:
            v, u = torch.meshgrid(torch.arange(hw[0], device=self.device) * stride,
                                  torch.arange(hw[1], device=self.device) * stride,
                                  indexing="ij")
            Kf = K.to(torch.float32)
            self._rays = torch.stack(((u - Kf[0, 2]) / Kf[0, 0], (v - Kf[1, 2]) / Kf[1, 1],
                                      torch.ones_like(u, dtype=torch.float32)), -1)
            self._rays_key = key
        return self._rays

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
        # Camera coordinates = brick corner (float64, few) + local offsets (float32, shared).
        world_to_cam_R = pose[:3, :3].T
        corner_world = self._origin_t + bxyz.to(torch.float64) * (BRICK * self.voxel_size)
        corner_cam = ((corner_world - pose[:3, 3]) @ world_to_cam_R.T).to(torch.float32)
        local_cam = (self._local * self.voxel_size) @ world_to_cam_R.T.to(torch.float32)
        intr = K.to(torch.float32)[[0, 1, 0, 1], [0, 1, 2, 2]]  # fx, fy, cx, cy
        old_t = self.tsdf.index_select(0, brick_ids)
        old_w = self.weight.index_select(0, brick_ids)
        new_t, new_w, pix, valid = _compiled("fuse_voxels", _fuse_voxels)(
            old_t, old_w, corner_cam, local_cam, depth, intr, self.trunc, self.max_depth)
        self.tsdf.index_copy_(0, brick_ids, new_t)
        self.weight.index_copy_(0, brick_ids, new_w)
        if color is not None and self.color is not None:
            sampled = color.reshape(-1, 3)[pix.reshape(-1)].reshape(*pix.shape, 3)
            old_c = self.color.index_select(0, brick_ids)
            mixed = (old_c * old_w[..., None] + sampled) / new_w.clamp_min(1)[..., None]
            self.color.index_copy_(0, brick_ids, torch.where(valid[..., None], mixed, old_c))

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


def _fuse_voxels(old_t: torch.Tensor, old_w: torch.Tensor, corner_cam: torch.Tensor,
                 local_cam: torch.Tensor, depth: torch.Tensor, intr: torch.Tensor, trunc: float,
                 max_depth: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted running-average TSDF update of M bricks for one frame.

    old_t, old_w: (M, 512) current tsdf and weight; corner_cam: (M, 3) camera coordinates
    (metres) of each brick's first voxel centre; local_cam: (512, 3) offsets of the brick's
    voxel centres in camera axes; depth: (H, W) metres, valid in (0, max_depth] (0, NaN
    and inf are no measurement); intr: (4,) fx, fy, cx, cy; trunc: metres. Returns the new tsdf and weight (M, 512), the flat nearest-pixel
    index (M, 512) and the bool mask of voxels this frame observed.
    """
    h, w = depth.shape
    cam = corner_cam[:, None, :] + local_cam[None]
    z = cam[..., 2]
    zs = z.clamp_min(1e-6)
    u = torch.round(cam[..., 0] / zs * intr[0] + intr[2])
    v = torch.round(cam[..., 1] / zs * intr[1] + intr[3])
    inside = (z > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    pix = torch.where(inside, v * w + u, torch.zeros_like(u)).long()
    d = depth.reshape(-1)[pix]
    sdf = d - z
    valid = inside & (d > 0) & (d <= max_depth) & (sdf >= -trunc)
    obs = torch.clamp(sdf / trunc, max=1.0)
    new_w = old_w + valid.to(old_w.dtype)
    new_t = torch.where(valid, (old_t * old_w + obs) / new_w.clamp_min(1.0), old_t)
    return new_t, new_w, pix, valid


def _band_brick_ids(rays: torch.Tensor, depth: torch.Tensor, max_depth: float,
                    cam_to_grid: torch.Tensor,
                    offset: torch.Tensor, margin: float, dims: torch.Tensor,
                    strides: torch.Tensor, n_bricks: int) -> torch.Tensor:
    """Brick ids (8 * N,) of the 8 corners of each depth point's band box ``p +- margin``.

    rays: (h, w, 3) camera rays with z = 1; depth: (h, w) metres, valid in (0, max_depth];
    cam_to_grid: (3, 3) maps camera metres to voxel units; offset: (3,) the camera centre
    in voxel coordinates; margin: voxels; dims, strides: (3,) brick grid size and strides.
    Points without depth get the id ``n_bricks`` (a trash slot).
    """
    grid = (rays * depth[..., None]).reshape(-1, 3) @ cam_to_grid + offset
    lo = torch.floor(torch.ceil(grid - margin) / BRICK)
    hi = torch.floor(torch.floor(grid + margin) / BRICK)
    lo = torch.minimum(torch.clamp_min(lo, 0), dims - 1) * strides
    hi = torch.minimum(torch.clamp_min(hi, 0), dims - 1) * strides
    corners = torch.stack([torch.stack([lo[:, 0], hi[:, 0]])[i] + torch.stack(
        [lo[:, 1], hi[:, 1]])[j] + torch.stack([lo[:, 2], hi[:, 2]])[k]
        for i in (0, 1) for j in (0, 1) for k in (0, 1)])
    valid = ((depth > 0) & (depth <= max_depth)).reshape(1, -1)
    return torch.where(valid, corners, torch.full_like(corners, n_bricks)).long().reshape(-1)


_COMPILED: dict[str, object] = {}


def _compiled(name: str, fn):
    """``fn`` compiled with ``torch.compile(dynamic=True)`` (cached by name), or ``fn``
    itself when ``ATLAS_COMPILE=0`` or compiling is unavailable."""
    if name not in _COMPILED:
        kernel = fn
        if os.environ.get("ATLAS_COMPILE", "1") != "0":
            try:
                kernel = torch.compile(fn, dynamic=True)
            except Exception:  # no compiler toolchain: stay eager
                kernel = fn
        _COMPILED[name] = kernel
    return _COMPILED[name]


def fuse_depth_frames(frames: Iterable[tuple], bounds_min: np.ndarray, bounds_max: np.ndarray,
                      voxel_size: float, **kwargs) -> VoxelGrid:
    """Fuse ``(depth, K, cam_to_world[, color])`` frames into a grid covering the bounds."""
    fusion = TSDFFusion.from_bounds(bounds_min, bounds_max, voxel_size, **kwargs)
    return fusion.integrate_frames(frames).to_grid()
