"""Projective TSDF fusion of depth (and colour) maps into a dense voxel grid.

The grid is stored brick-major: bricks of 8x8x8 voxels, each brick's 512 voxels
contiguous, so a frame's update gathers and scatters whole rows. In ``surface`` mode
(the default) a frame updates only the bricks that the truncation band of its depth
points passes through, which is what keeps fusion fast (fewer than Open3D's
VoxelBlockGrid touches); ``frustum`` mode updates every voxel the camera sees up to
``max_depth``, so free space far from any surface is observed too (what training
targets want).

Per voxel the update is the usual weighted running average (Curless & Levoy): the
voxel centre is projected to the nearest pixel, ``sdf = depth - z`` (along the optical
axis), voxels with ``sdf < -trunc`` (behind the surface) are skipped, the rest get
``min(sdf / trunc, 1)``. Its weight is 1 in front of the surface and drops linearly to
0 at ``-trunc`` behind it: "behind" is really unseen space, and a view that grazes an
edge would otherwise pull the voxels in its shadow negative and bulge the surface out
(the effect at a box's edges is measured in docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from atlas.compile import FUSION_EAGER_CALLS, compiled
from atlas.geometry.camera import check_intrinsics, check_pose, frustum_bounds
from atlas.geometry.voxel_grid import VoxelGrid

BRICK = 8
BRICK_VOXELS = BRICK**3


def _as_tensor(
    x: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device, dtype=dtype)
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:  # e.g. np.asarray(PIL image): torch wants writable memory
        x = x.copy()
    return torch.from_numpy(x).to(device=device, dtype=dtype)


def _as_f64(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """A small matrix (pose, intrinsics) as a float64 NumPy array on the host."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


class TSDFFusion:
    """A dense TSDF volume that integrates depth frames one at a time.

    origin: (3,) world metres of voxel (0,0,0)'s centre; shape: (X, Y, Z) voxels;
    voxel_size: metres; trunc_voxels: truncation distance in voxels (default 3);
    max_depth: depths beyond it (metres) are ignored; with_color: also average RGB;
    mode: ``"surface"`` or ``"frustum"`` (see the module docstring); device: torch device.
    Memory: 8 bytes per voxel (12 more with colour), independent of the frame count.
    """

    def __init__(
        self,
        origin: np.ndarray,
        shape: tuple[int, int, int],
        voxel_size: float,
        trunc_voxels: float = 3.0,
        max_depth: float = 3.0,
        with_color: bool = False,
        mode: str = "surface",
        device: str | torch.device = "cpu",
    ) -> None:
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
        self.color = (
            torch.zeros(n_bricks, BRICK_VOXELS, 3, device=self.device) if with_color else None
        )
        _, by, bz = self.bricks_shape
        # (n_bricks, 3) brick coordinates and (3, 512) in-brick voxel offsets, float32
        # (exact: both are small integers), so the kernels need no integer division.
        ids = torch.arange(n_bricks, device=self.device)
        self._brick_xyz = torch.stack([ids // (by * bz), (ids // bz) % by, ids % bz], -1).to(
            torch.float32
        )
        local = torch.stack(torch.meshgrid(*[torch.arange(BRICK)] * 3, indexing="ij"), -1)
        self._local_xyz = (
            local.reshape(BRICK_VOXELS, 3).T.contiguous().to(self.device, torch.float32)
        )
        self._brick_strides = torch.tensor([by * bz, bz, 1], device=self.device)
        self._brick_dims = torch.tensor(self.bricks_shape, device=self.device)
        self._origin_t = torch.tensor(self.origin, device=self.device, dtype=torch.float64)
        self._sampling_key: tuple | None = None  # intrinsics and image size of:
        self._sampling_value: tuple = ()  # the cached depth sampling (see _sampling)
        self.frames_integrated = 0

    @classmethod
    def from_bounds(
        cls, bounds_min: np.ndarray, bounds_max: np.ndarray, voxel_size: float, **kwargs
    ) -> TSDFFusion:
        """A volume covering the world box ``[bounds_min, bounds_max]`` (metres).

        The origin is snapped to a multiple of ``voxel_size`` so that translating a scene by
        whole voxels translates the grid by whole voxels.
        """
        bmin = np.floor(np.asarray(bounds_min, dtype=np.float64) / voxel_size) * voxel_size
        shape = np.ceil((np.asarray(bounds_max) - bmin) / voxel_size).astype(int) + 1
        return cls(bmin, tuple(shape), voxel_size, **kwargs)

    # ------------------------------------------------------------------ integration
    def integrate(
        self,
        depth: np.ndarray | torch.Tensor,
        K: np.ndarray | torch.Tensor,
        cam_to_world: np.ndarray | torch.Tensor,
        color: np.ndarray | torch.Tensor | None = None,
        name: str = "frame",
        weight: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        """Fuse one frame.

        depth: (H, W) float metres, 0 / non-finite = no measurement; K: (3, 3) for that
        size; cam_to_world: (4, 4); color: optional (H, W, 3) uint8 RGB of the same size;
        name: used in error messages (e.g. the depth file); weight: optional (H, W)
        float >= 0, each depth's weight in the running average (default 1).
        """
        if isinstance(depth, np.ndarray | torch.Tensor) and depth.ndim == 2:
            if not (
                depth.dtype.is_floating_point
                if isinstance(depth, torch.Tensor)
                else np.issubdtype(depth.dtype, np.floating)
            ):
                raise ValueError(
                    f"{name}: depth must be float metres, got dtype {depth.dtype} "
                    "(convert millimetres with depth / 1000)"
                )
        else:
            raise ValueError(
                f"{name}: depth must be a 2-D (H, W) array, got "
                f"{getattr(depth, 'shape', type(depth))}"
            )
        check_pose(cam_to_world, name)
        check_intrinsics(K, name)
        if color is not None and tuple(color.shape) != (*depth.shape, 3):
            raise ValueError(
                f"{name}: colour shape {tuple(color.shape)} does not match depth "
                f"{tuple(depth.shape)} (expected (H, W, 3))"
            )
        if color is not None and self.color is None:
            raise ValueError(f"{name}: colour given but the volume was made without colour")
        if weight is not None and tuple(weight.shape) != tuple(depth.shape):
            raise ValueError(
                f"{name}: weight shape {tuple(weight.shape)} does not match depth "
                f"{tuple(depth.shape)}"
            )

        # Invalid depths (0, NaN, inf, beyond max_depth) are masked inside the kernels.
        # The pose and intrinsics stay on the host in float64: the few small products of
        # them are cheaper in NumPy than as tensors, and the kernels get float32 scalars.
        depth_t = _as_tensor(depth, self.device, torch.float32)
        if weight is not None:
            # a depth of weight 0 adds nothing: drop it, so it marks no band either
            weight_t = _as_tensor(weight, self.device, torch.float32)
            depth_t = torch.where(weight_t > 0, depth_t, 0.0)
        else:
            weight_t = None
        K_np = _as_f64(K)
        pose_np = _as_f64(cam_to_world)
        if self.mode == "surface":
            brick_ids = self._surface_bricks(depth_t, K_np, pose_np)
        else:
            brick_ids = self._frustum_bricks(
                depth_t.shape,
                torch.from_numpy(K_np).to(self.device),
                torch.from_numpy(pose_np).to(self.device),
            )
        if brick_ids.numel() > 0:
            color_t = None if color is None else _as_tensor(color, self.device, torch.float32)
            self._update_bricks(brick_ids, depth_t, K_np, pose_np, color_t, weight_t)
        self.frames_integrated += 1

    def integrate_frames(self, frames: Iterable[tuple], progress: bool = False) -> TSDFFusion:
        """Fuse a stream of ``(depth, K, cam_to_world[, color[, weight]])`` tuples;
        returns self."""
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc="fusing", unit="frame")
        for i, frame in enumerate(frames):
            self.integrate(*frame, name=f"frame {i}")
        return self

    def _surface_bricks(
        self, depth: torch.Tensor, K: np.ndarray | torch.Tensor, pose: np.ndarray | torch.Tensor
    ) -> torch.Tensor:
        """Ids of the bricks that the truncation band of the frame's depth points meets.

        A voxel within the band projects (to the nearest pixel) onto a pixel whose depth
        ``d`` is within ``trunc`` of the voxel's ``z``, so it lies on that pixel's ray
        segment ``z in [d - trunc, d + trunc]`` (up to half a pixel sideways). Depth is
        sampled on a grid of ``stride`` pixels (at most one voxel apart at ``max_depth``),
        every pixel within ``stride // 2`` of a sample; each sample marks the bricks of
        the bounding box of its ray segment, widened sideways by ``stride // 2 + 0.5``
        pixels at the segment's far end. ``nt`` bricks per axis cover the widest box.
        """
        K = _as_f64(K)
        pose = _as_f64(pose)
        h, w = depth.shape
        stride, rows, cols, rx, ry, corners = self._sampling(K, h, w)
        fx, fy = K[0, 0], K[1, 1]
        A = pose[:3, :3] / self.voxel_size  # camera metres -> voxel units
        offset = (pose[:3, 3] - self.origin) / self.voxel_size
        side = (stride // 2 + 0.5) * (np.abs(A[:, 0]) / fx + np.abs(A[:, 1]) / fy)
        # Widest box (voxels): the segment's extent along the worst ray plus both sides.
        reach = self.trunc * np.abs(corners @ A.T).max(0) + (self.max_depth + self.trunc) * side
        width = 2.0 * float(reach.max())
        nt = max(2, int((width - 1.0) // BRICK) + 2)
        prm = torch.from_numpy(np.concatenate([A.reshape(-1), offset, side]).astype(np.float32))
        n_bricks = self.tsdf.shape[0]
        bx, by, bz = self.bricks_shape
        ids = compiled("band_bricks", _band_brick_ids, FUSION_EAGER_CALLS)(
            depth,
            rows,
            cols,
            rx,
            ry,
            prm.to(self.device),
            self.trunc,
            self.max_depth,
            nt,
            bx,
            by,
            bz,
        )
        counts = torch.bincount(ids, minlength=n_bricks + 1)
        return torch.nonzero(counts[:n_bricks]).squeeze(1)

    def _sampling(self, K: np.ndarray, h: int, w: int) -> tuple:
        """The depth sampling of ``_surface_bricks`` for these intrinsics (cached).

        Returns the stride, the sampled rows and columns (long tensors), the camera rays'
        x (per column) and y (per row) at z = 1 (float32) and the (4, 3) rays through the
        image corners (float64, NumPy).
        """
        key = (K.tobytes(), h, w)
        if self._sampling_key != key:
            fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
            stride = int(min(8, max(1, self.voxel_size * min(fx, fy) / self.max_depth)))
            # One sample per stride x stride block, at its centre (clipped to the image),
            # so every pixel is within stride // 2 of a sample along each axis.
            rows = np.minimum(np.arange(0, h, stride) + stride // 2, h - 1)
            cols = np.minimum(np.arange(0, w, stride) + stride // 2, w - 1)
            corners = np.array(
                [
                    [(u - cx) / fx, (v - cy) / fy, 1.0]
                    for u in (-0.5, w - 0.5)
                    for v in (-0.5, h - 0.5)
                ]
            )
            dev = self.device
            self._sampling_value = (
                stride,
                torch.from_numpy(rows).to(dev),
                torch.from_numpy(cols).to(dev),
                torch.from_numpy((cols - cx) / fx).to(dev, torch.float32),
                torch.from_numpy((rows - cy) / fy).to(dev, torch.float32),
                corners,
            )
            self._sampling_key = key
        return self._sampling_value

    def _frustum_bricks(
        self, image_hw: tuple[int, int], K: torch.Tensor, pose: torch.Tensor
    ) -> torch.Tensor:
        """Ids of bricks whose bounding sphere meets the view frustum (up to max_depth)."""
        n = int(np.prod(self.bricks_shape))
        ids = torch.arange(n, device=self.device)
        bxyz = torch.stack(
            [
                ids // self._brick_strides[0],
                (ids // self._brick_strides[1]) % self._brick_dims[1],
                ids % self._brick_dims[2],
            ],
            -1,
        )
        centre = self._origin_t + (bxyz * BRICK + (BRICK - 1) / 2) * self.voxel_size
        radius = (BRICK / 2) * self.voxel_size * 3**0.5
        cam = (centre - pose[:3, 3]) @ pose[:3, :3]
        z = cam[:, 2]
        h, w = image_hw
        # Distances of the centre to the 4 side planes of the frustum (inside positive).
        xs = torch.stack(
            (
                (cam[:, 0] - (-0.5 - K[0, 2]) / K[0, 0] * z),
                ((w - 0.5 - K[0, 2]) / K[0, 0] * z - cam[:, 0]),
            ),
            -1,
        )
        ys = torch.stack(
            (
                (cam[:, 1] - (-0.5 - K[1, 2]) / K[1, 1] * z),
                ((h - 0.5 - K[1, 2]) / K[1, 1] * z - cam[:, 1]),
            ),
            -1,
        )
        # Scale by the plane normals' norms (planes x = a z have normal (1, -a)).
        ax = torch.tensor(
            [(-0.5 - K[0, 2]) / K[0, 0], (w - 0.5 - K[0, 2]) / K[0, 0]],
            device=self.device,
            dtype=torch.float64,
        )
        ay = torch.tensor(
            [(-0.5 - K[1, 2]) / K[1, 1], (h - 0.5 - K[1, 2]) / K[1, 1]],
            device=self.device,
            dtype=torch.float64,
        )
        inside = (
            (xs / torch.sqrt(1 + ax**2) > -radius).all(-1)
            & (ys / torch.sqrt(1 + ay**2) > -radius).all(-1)
            & (z > -radius)
            & (z < self.max_depth + radius)
        )
        return ids[inside]

    def _update_bricks(
        self,
        brick_ids: torch.Tensor,
        depth: torch.Tensor,
        K: np.ndarray | torch.Tensor,
        pose: np.ndarray | torch.Tensor,
        color: torch.Tensor | None,
        pixel_weight: torch.Tensor | None = None,
    ) -> None:
        """Running-average update of every voxel of the given bricks (each observation
        weighted by ``pixel_weight`` (H, W) at its pixel, if given)."""
        K = _as_f64(K)
        pose = _as_f64(pose)
        # Pixel-homogeneous camera coordinates (fx x + cx z, fy y + cy z, z) of voxel
        # (brick b, offset l) = c + B b + L l, from world = origin + size (8 b + l).
        R = pose[:3, :3].T
        KR = np.array([[K[0, 0], 0.0, K[0, 2]], [0.0, K[1, 1], K[1, 2]], [0.0, 0.0, 1.0]]) @ R
        L = KR * self.voxel_size
        c = KR @ (self.origin - pose[:3, 3])
        prm = torch.from_numpy(
            np.concatenate([(L * BRICK).reshape(-1), c, L.reshape(-1)]).astype(np.float32)
        ).to(self.device)
        args = (
            brick_ids,
            self._brick_xyz,
            self._local_xyz,
            depth,
            prm,
            self.trunc,
            self.max_depth,
            pixel_weight,
        )
        if color is None or self.color is None:
            compiled("fuse_bricks", _fuse_bricks, FUSION_EAGER_CALLS)(self.tsdf, self.weight, *args)
            return
        old_w = self.weight.index_select(0, brick_ids)
        new_t, new_w, pix, obs_w = compiled("observe", _observe, FUSION_EAGER_CALLS)(
            self.tsdf.index_select(0, brick_ids), old_w, *args
        )
        self.tsdf.index_copy_(0, brick_ids, new_t)
        self.weight.index_copy_(0, brick_ids, new_w)
        sampled = color.reshape(-1, 3)[pix.reshape(-1)].reshape(*pix.shape, 3)
        old_c = self.color.index_select(0, brick_ids)
        mixed = (old_c * old_w[..., None] + sampled * obs_w[..., None]) / new_w.clamp_min(1e-6)[
            ..., None
        ]
        self.color.index_copy_(0, brick_ids, torch.where(obs_w[..., None] > 0, mixed, old_c))

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
        return VoxelGrid(
            dense(self.tsdf),
            dense(self.weight),
            self.origin.copy(),
            self.voxel_size,
            color,
            self.trunc_voxels,
        )


def _observe(
    old_t: torch.Tensor,
    old_w: torch.Tensor,
    brick_ids: torch.Tensor,
    brick_xyz: torch.Tensor,
    local_xyz: torch.Tensor,
    depth: torch.Tensor,
    prm: torch.Tensor,
    trunc: float,
    max_depth: float,
    pixel_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weighted running-average TSDF update of M bricks for one frame.

    old_t, old_w: (M, 512) current tsdf and weight of the bricks ``brick_ids`` (M,);
    brick_xyz: (n_bricks, 3) brick coordinates; local_xyz: (3, 512) voxel offsets in a
    brick; depth: (H, W) metres, valid in (0, max_depth] (0, NaN and inf are no
    measurement); prm: (21,) float32, the 3x3 matrix taking brick coordinates and the
    3-vector ``c`` giving the pixel-homogeneous camera coordinates of a brick's first
    voxel, then the 3x3 matrix for the offsets (see ``TSDFFusion._update_bricks``);
    trunc: metres; pixel_weight: optional (H, W) weight of each pixel's observation.
    Returns the new tsdf and weight (M, 512), the flat nearest-pixel
    index (M, 512) and the weight (M, 512) of this frame's observation (0 where none).
    """
    h, w = depth.shape
    b = brick_xyz[brick_ids]
    bx, by, bz = b[:, 0:1], b[:, 1:2], b[:, 2:3]
    lx, ly, lz = local_xyz[0][None], local_xyz[1][None], local_xyz[2][None]
    px = prm[9] + prm[0] * bx + prm[1] * by + prm[2] * bz
    py = prm[10] + prm[3] * bx + prm[4] * by + prm[5] * bz
    pz = prm[11] + prm[6] * bx + prm[7] * by + prm[8] * bz
    x = px + prm[12] * lx + prm[13] * ly + prm[14] * lz
    y = py + prm[15] * lx + prm[16] * ly + prm[17] * lz
    z = pz + prm[18] * lx + prm[19] * ly + prm[20] * lz
    inv_z = 1.0 / z.clamp_min(1e-6)
    u = torch.round(x * inv_z)
    v = torch.round(y * inv_z)
    inside = (z > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    pix = torch.where(inside, v * w + u, 0.0).long()
    d = depth.reshape(-1)[pix]
    sdf = d - z
    valid = inside & (d > 0) & (d <= max_depth) & (sdf >= -trunc)
    obs = torch.clamp(sdf * (1.0 / trunc), max=1.0)
    # Weight 1 in front of the surface, dropping linearly to 0 at -trunc behind it.
    obs_w = torch.where(valid, torch.clamp(1.0 + obs, max=1.0), 0.0)
    if pixel_weight is not None:
        obs_w = obs_w * pixel_weight.reshape(-1)[pix]
    new_w = old_w + obs_w
    new_t = torch.where(obs_w > 0, (old_t * old_w + obs * obs_w) / new_w.clamp_min(1e-6), old_t)
    return new_t, new_w, pix, obs_w


def _fuse_bricks(
    tsdf: torch.Tensor,
    weight: torch.Tensor,
    brick_ids: torch.Tensor,
    brick_xyz: torch.Tensor,
    local_xyz: torch.Tensor,
    depth: torch.Tensor,
    prm: torch.Tensor,
    trunc: float,
    max_depth: float,
    pixel_weight: torch.Tensor | None = None,
) -> None:
    """``_observe`` of the bricks ``brick_ids`` (unique), written back into ``tsdf`` and
    ``weight`` (n_bricks, 512) in place: gather, update and scatter fuse into one kernel."""
    new_t, new_w, _, _ = _observe(
        tsdf[brick_ids],
        weight[brick_ids],
        brick_ids,
        brick_xyz,
        local_xyz,
        depth,
        prm,
        trunc,
        max_depth,
        pixel_weight,
    )
    tsdf.index_put_((brick_ids,), new_t)
    weight.index_put_((brick_ids,), new_w)


def _band_brick_ids(
    depth: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    rx: torch.Tensor,
    ry: torch.Tensor,
    prm: torch.Tensor,
    trunc: float,
    max_depth: float,
    nt: int,
    bx: int,
    by: int,
    bz: int,
) -> torch.Tensor:
    """Brick ids (nt**3 * N,) of the bounding boxes of the N sampled depth points' bands.

    depth: (H, W) metres, valid in (0, max_depth]; rows (h,), cols (w,): the sampled
    pixels; rx (w,), ry (h,): their camera rays' x and y at z = 1; prm: (15,) float32,
    the 3x3 matrix taking camera metres to voxel units, the camera centre in voxel
    coordinates and the sideways widening per metre of depth along each grid axis;
    trunc: metres; nt: bricks per axis of a box; bx, by, bz: the brick grid's shape.
    Points without depth, and boxes outside the grid, get the id ``bx * by * bz`` (a
    trash slot).
    """
    d = depth[rows[:, None], cols[None, :]]
    x = rx[None, :]
    y = ry[:, None]
    valid = (d > 0) & (d <= max_depth)
    far = d + trunc
    corners = []
    for axis, dim in enumerate((bx, by, bz)):
        # The ray's direction in voxel units per metre of z, the point, the half-width.
        a = prm[3 * axis] * x + prm[3 * axis + 1] * y + prm[3 * axis + 2]
        g = d * a + prm[9 + axis]
        e = trunc * a.abs() + far * prm[12 + axis]
        lo = torch.floor(torch.ceil(g - e) * (1.0 / BRICK))
        hi = torch.floor(torch.floor(g + e) * (1.0 / BRICK))
        valid = valid & (hi >= 0) & (lo <= dim - 1)
        lo = lo.clamp(0, dim - 1)
        hi = hi.clamp(0, dim - 1)
        corners.append([torch.minimum(lo + k, hi) for k in range(nt)])
    n_bricks = bx * by * bz
    ids = torch.stack(
        [
            torch.where(valid, (i * by + j) * bz + k, float(n_bricks))
            for i in corners[0]
            for j in corners[1]
            for k in corners[2]
        ]
    )
    return ids.to(torch.int64).reshape(-1)


def fuse_depth_frames(
    frames: Iterable[tuple[np.ndarray | torch.Tensor, np.ndarray | None]],
    K: np.ndarray,
    poses: np.ndarray,
    image_size: tuple[int, int],
    voxel_size: float,
    max_depth: float = 3.0,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
    with_color: bool = False,
    **kwargs,
) -> VoxelGrid | None:
    """Fuse a sequence of frames into a grid covering their view frusta.

    frames: ``(depth (H, W) float metres, colour (H, W, 3) uint8 or None[, weight
    (H, W) float or None])`` per pose, in ``poses`` order (streamed); K: (3, 3) for
    ``image_size`` (width, height); poses: (N, 4, 4) camera-to-world; bounds: optional
    world box (min, max) the volume is clipped to. Other keyword arguments go to
    :class:`TSDFFusion`. Returns None when the clipped box is empty.
    """
    lo, hi = frustum_bounds(K, poses, image_size, max_depth)
    if bounds is not None:
        lo, hi = np.maximum(lo, bounds[0]), np.minimum(hi, bounds[1])
        if (hi <= lo).any():
            return None
    fusion = TSDFFusion.from_bounds(
        lo, hi, voxel_size, max_depth=max_depth, with_color=with_color, **kwargs
    )
    for i, (frame, pose) in enumerate(zip(frames, poses, strict=True)):
        depth, color, *weight = frame
        fusion.integrate(depth, K, pose, color, name=f"frame {i}", weight=next(iter(weight), None))
    return fusion.to_grid()
