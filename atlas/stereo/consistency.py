"""Geometric consistency between depth maps of different views."""

from __future__ import annotations

import torch


def backproject(depth: torch.Tensor, K: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) world points of a depth map (H, W) metres; K (3, 3); pose (4, 4)."""
    h, w = depth.shape
    v, u = torch.meshgrid(
        torch.arange(h, device=depth.device, dtype=depth.dtype),
        torch.arange(w, device=depth.device, dtype=depth.dtype),
        indexing="ij",
    )
    cam = torch.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    return cam @ pose[:3, :3].T + pose[:3, 3]


def consistent_votes(
    depth: torch.Tensor,
    K: torch.Tensor,
    pose: torch.Tensor,
    others: torch.Tensor,
    other_poses: torch.Tensor,
    rel_tol: float,
) -> torch.Tensor:
    """(H, W) count of other views whose depth agrees with this one.

    A pixel's 3D point, projected into another view (nearest pixel), must land where
    that view measured a depth within ``rel_tol`` (relative) of the point's own depth
    there. depth: (H, W) metres (0 = none); others: (V, H, W); other_poses: (V, 4, 4).
    """
    h, w = depth.shape
    pts = backproject(depth, K, pose).reshape(-1, 3)
    world_to_cam = torch.linalg.inv(other_poses)
    cam = pts @ world_to_cam[:, :3, :3].transpose(1, 2) + world_to_cam[:, None, :3, 3]
    z = cam[..., 2]
    zs = z.clamp_min(1e-6)
    u = torch.round(cam[..., 0] / zs * K[0, 0] + K[0, 2])
    v = torch.round(cam[..., 1] / zs * K[1, 1] + K[1, 2])
    inside = (z > 0) & (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
    flat = torch.where(inside, v * w + u, torch.zeros_like(u)).long()
    measured = torch.gather(others.reshape(len(others), -1), 1, flat)
    agree = inside & (measured > 0) & ((measured - z).abs() < rel_tol * z)
    votes = agree.sum(0).reshape(h, w)
    return torch.where(depth > 0, votes, torch.zeros_like(votes))
