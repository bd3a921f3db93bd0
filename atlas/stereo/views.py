"""Choosing keyframes by pose change and, for each, neighbour views to match against."""

from __future__ import annotations

import numpy as np


def rotation_angle(R_a: np.ndarray, R_b: np.ndarray) -> np.ndarray:
    """Angle (radians) of the relative rotation between (..., 3, 3) rotations."""
    cos = (np.einsum("...ij,...ij->...", R_a, R_b) - 1) / 2
    return np.arccos(np.clip(cos, -1.0, 1.0))


def select_keyframes(
    poses: np.ndarray, min_translation: float = 0.1, min_rotation_deg: float = 10.0
) -> np.ndarray:
    """Indices of keyframes: the first frame, then each frame that moved at least
    ``min_translation`` metres or turned ``min_rotation_deg`` from the last keyframe.

    poses: (N, 4, 4) camera-to-world (non-finite ones are never chosen).
    """
    valid = np.isfinite(poses).all(axis=(1, 2))
    keys: list[int] = []
    for i in np.flatnonzero(valid):  # sequential by nature: each test depends on the last
        if not keys:
            keys.append(int(i))
            continue
        last = poses[keys[-1]]
        moved = np.linalg.norm(poses[i, :3, 3] - last[:3, 3])
        turned = np.degrees(rotation_angle(poses[i, :3, :3], last[:3, :3]))
        if moved >= min_translation or turned >= min_rotation_deg:
            keys.append(int(i))
    return np.array(keys, dtype=np.int64)


def select_neighbours(
    poses: np.ndarray,
    ref: int,
    n: int,
    depth: float,
    min_baseline: float = 0.05,
    max_angle_deg: float = 40.0,
) -> np.ndarray:
    """Up to ``n`` views to match keyframe ``ref`` against.

    Candidates see the point ``depth`` metres ahead of the reference camera (in front of
    them, within ``max_angle_deg`` of their own optical axis) and have a baseline of at
    least ``min_baseline``; they are ranked by how close the triangulation angle at that
    point is to 10 degrees (wide enough for precision, narrow enough to look alike).
    poses: (N, 4, 4) camera-to-world. Returns indices (<= n), best first.
    """
    valid = np.isfinite(poses).all(axis=(1, 2))
    valid[ref] = False
    centre = poses[ref, :3, 3]
    target = centre + depth * poses[ref, :3, 2]
    to_target = target - poses[:, :3, 3]
    dist = np.linalg.norm(to_target, axis=1)
    cos_axis = np.einsum("ij,ij->i", to_target, poses[:, :3, 2]) / np.maximum(dist, 1e-9)
    baseline = np.linalg.norm(poses[:, :3, 3] - centre, axis=1)
    ray_ref = target - centre
    cos_tri = (to_target @ ray_ref) / np.maximum(dist * np.linalg.norm(ray_ref), 1e-9)
    tri = np.degrees(np.arccos(np.clip(cos_tri, -1, 1)))
    ok = valid & (cos_axis > np.cos(np.radians(max_angle_deg))) & (baseline >= min_baseline)
    ok &= np.nan_to_num(tri, nan=90.0) < 40.0
    candidates = np.flatnonzero(ok)
    order = np.argsort(np.abs(tri[candidates] - 10.0))
    return candidates[order[:n]]
