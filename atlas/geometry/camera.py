"""Pinhole camera helpers.

Conventions (docs/architecture.md): poses are 4x4 camera-to-world matrices with OpenCV
camera axes (x right, y down, z forward); intrinsics ``K`` are 3x3 for the image size
they are stored with; the projection matrix of a view is ``P = K @ inv(pose)[:3]``.
All functions accept NumPy arrays or torch tensors where noted and keep the type.
"""

from __future__ import annotations

import numpy as np
import torch


def scale_intrinsics(K: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Intrinsics of an image resized by ``sx`` horizontally and ``sy`` vertically.

    K: (3, 3) or (..., 3, 3). Returns a new float64 array. Pixel centres are at integer
    coordinates (OpenCV), and an image resize (PIL, OpenCV ``INTER_LINEAR``) maps pixel
    edges to edges: ``u' = sx * (u + 0.5) - 0.5``. So fx scales by sx and
    ``cx' = sx * (cx + 0.5) - 0.5`` (likewise for y). Scaling cx by sx alone, as the
    original ATLAS does, shifts every projection by ``(sx - 1) / 2`` pixels.
    """
    S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
    return S @ np.asarray(K, dtype=np.float64)


def resize_intrinsics(
    K: np.ndarray, size_from: tuple[int, int], size_to: tuple[int, int]
) -> np.ndarray:
    """Intrinsics for an image resized from ``size_from`` to ``size_to`` (both (width, height))."""
    return scale_intrinsics(K, size_to[0] / size_from[0], size_to[1] / size_from[1])


def projection_matrix(K: torch.Tensor, cam_to_world: torch.Tensor) -> torch.Tensor:
    """``P = K @ inv(pose)[:3]``.

    K: (..., 3, 3); cam_to_world: (..., 4, 4). Returns (..., 3, 4), same dtype/device.
    """
    world_to_cam = torch.linalg.inv(cam_to_world)
    return K @ world_to_cam[..., :3, :]


def project_points(
    points: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points into one or more views.

    points: (N, 3) world metres; K: (V, 3, 3) or (3, 3); cam_to_world: (V, 4, 4) or (4, 4).
    Returns ``uv`` (V, N, 2) continuous pixel coordinates (pixel centres at integers) and
    ``z`` (V, N) depth along the optical axis in metres. Points behind the camera get
    ``z <= 0``; their ``uv`` is meaningless and must be masked by the caller.
    """
    squeeze = cam_to_world.dim() == 2
    K = K.expand(1, 3, 3) if K.dim() == 2 else K
    cam_to_world = cam_to_world.unsqueeze(0) if squeeze else cam_to_world
    P = projection_matrix(K.to(points.dtype), cam_to_world.to(points.dtype))  # (V, 3, 4)
    pix = points @ P[:, :, :3].transpose(1, 2) + P[:, None, :, 3]  # (V, N, 3)
    z = pix[..., 2]
    uv = pix[..., :2] / z.clamp_min(1e-8).unsqueeze(-1)
    if squeeze:
        return uv[0], z[0]
    return uv, z


def frustum_corners(
    K: np.ndarray, cam_to_world: np.ndarray, width: int, height: int, max_depth: float
) -> np.ndarray:
    """World positions of a view frustum's 5 corners (apex and the 4 far-plane corners).

    K: (3, 3); cam_to_world: (4, 4); width, height in pixels; max_depth in metres.
    Returns (5, 3) float64 world metres.
    """
    corners_px = np.array(
        [
            [-0.5, -0.5, 1.0],
            [width - 0.5, -0.5, 1.0],
            [-0.5, height - 0.5, 1.0],
            [width - 0.5, height - 0.5, 1.0],
        ]
    )
    rays = corners_px @ np.linalg.inv(K).T  # (4, 3), z = 1
    far = rays * max_depth
    cam_pts = np.concatenate([np.zeros((1, 3)), far], axis=0)
    return cam_pts @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]


def frustum_bounds(
    Ks: np.ndarray, poses: np.ndarray, image_size: tuple[int, int], max_depth: float
) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned bounds (min, max) in world metres of the union of view frusta.

    Ks: (V, 3, 3) or (3, 3) shared; poses: (V, 4, 4) camera-to-world;
    image_size: (width, height); max_depth: metres. Returns two (3,) arrays.
    """
    poses = np.asarray(poses, dtype=np.float64)
    Ks = np.broadcast_to(np.asarray(Ks, dtype=np.float64), (len(poses), 3, 3))
    width, height = image_size
    corners = np.concatenate(
        [frustum_corners(K, T, width, height, max_depth) for K, T in zip(Ks, poses, strict=True)]
    )
    return corners.min(axis=0), corners.max(axis=0)


def check_pose(pose: np.ndarray | torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``pose`` is a finite rigid 4x4 matrix."""
    pose_np = pose.detach().cpu().numpy() if isinstance(pose, torch.Tensor) else np.asarray(pose)
    if pose_np.shape != (4, 4):
        raise ValueError(f"{name}: pose must be 4x4, got shape {pose_np.shape}")
    if not np.isfinite(pose_np).all():
        raise ValueError(f"{name}: pose has non-finite values (inf/NaN)")
    R = pose_np[:3, :3].astype(np.float64)
    if np.abs(R @ R.T - np.eye(3)).max() > 1e-3 or np.abs(pose_np[3] - [0, 0, 0, 1]).max() > 1e-6:
        raise ValueError(f"{name}: pose is not a rigid camera-to-world transform")


def check_intrinsics(K: np.ndarray | torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``K`` is a finite 3x3 with positive focals."""
    K_np = K.detach().cpu().numpy() if isinstance(K, torch.Tensor) else np.asarray(K)
    if K_np.shape != (3, 3) or not np.isfinite(K_np).all():
        raise ValueError(f"{name}: intrinsics must be a finite 3x3 matrix, got {K_np.shape}")
    if K_np[0, 0] <= 0 or K_np[1, 1] <= 0:
        raise ValueError(
            f"{name}: intrinsics have non-positive focal length (fx={K_np[0, 0]}, fy={K_np[1, 1]})"
        )
