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


def view_overlap(
    poses: np.ndarray, ref: int, K: np.ndarray, size: tuple[int, int], depth: float
) -> np.ndarray:
    """(N,) share of a 7x7 grid of the reference image's pixels, placed ``depth`` metres
    ahead, that each view sees (in front of it and inside its image). K: (3, 3) for
    ``size`` (width, height), shared by all views."""
    w, h = size
    u, v = np.meshgrid(np.linspace(0, w - 1, 7), np.linspace(0, h - 1, 7))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
    pts = rays.reshape(-1, 3) * depth @ poses[ref, :3, :3].T + poses[ref, :3, 3]
    finite = np.isfinite(poses).all(axis=(1, 2))
    safe = np.where(finite[:, None, None], poses, np.eye(4))
    world_to_cam = np.linalg.inv(safe)
    cam = pts @ world_to_cam[:, :3, :3].transpose(0, 2, 1) + world_to_cam[:, None, :3, 3]
    z = cam[..., 2]
    pu = cam[..., 0] / np.maximum(z, 1e-6) * K[0, 0] + K[0, 2]
    pv = cam[..., 1] / np.maximum(z, 1e-6) * K[1, 1] + K[1, 2]
    seen = (z > 0.05) & (pu >= 0) & (pu <= w - 1) & (pv >= 0) & (pv <= h - 1)
    return np.where(finite, seen.mean(axis=1), 0.0)


def select_neighbours(
    poses: np.ndarray,
    ref: int,
    n: int,
    depth: float,
    K: np.ndarray,
    size: tuple[int, int],
    min_baseline: float = 0.05,
    min_overlap: float = 0.5,
    target_angle_deg: float = 8.0,
    min_separation: float = 0.0,
) -> np.ndarray:
    """Up to ``n`` views to match keyframe ``ref`` against.

    Candidates see at least ``min_overlap`` of the reference image (placed ``depth``
    metres ahead) and have a baseline of at least ``min_baseline`` metres; they are
    ranked by how close the triangulation angle at that depth is to
    ``target_angle_deg`` (wide enough for precision, narrow enough to look alike), with
    overlap breaking ties. With ``min_separation`` > 0 (metres), a candidate is taken
    only if its centre is that far from every view already taken, so the neighbours
    are not consecutive frames with one shared baseline (and one shared error) but
    spread around the keyframe. poses: (N, 4, 4) camera-to-world. Returns indices,
    best first.
    """
    if not min_separation >= 0:  # also catches NaN
        raise ValueError(f"min_separation must be >= 0 metres, got {min_separation}")
    overlap = view_overlap(poses, ref, K, size, depth)
    overlap[ref] = 0.0
    centre = poses[ref, :3, 3]
    target = centre + depth * poses[ref, :3, 2]
    with np.errstate(invalid="ignore"):
        to_target = target - poses[:, :3, 3]
        baseline = np.linalg.norm(poses[:, :3, 3] - centre, axis=1)
        cos_tri = (to_target @ (target - centre)) / np.maximum(
            np.linalg.norm(to_target, axis=1) * depth, 1e-9
        )
        tri = np.degrees(np.arccos(np.clip(cos_tri, -1, 1)))
        ok = (overlap >= min_overlap) & (baseline >= min_baseline)
    candidates = np.flatnonzero(ok)
    score = np.abs(tri[candidates] - target_angle_deg) - 5.0 * overlap[candidates]
    ranked = candidates[np.argsort(score)]
    if min_separation <= 0:
        return ranked[:n]
    return _spread(ranked, poses[ranked, :3, 3], n, min_separation)


def _spread(ranked: np.ndarray, centres: np.ndarray, n: int, min_separation: float) -> np.ndarray:
    """The first ``n`` of ``ranked`` views, in order, whose centres ((M, 3) metres) are
    at least ``min_separation`` from those of every view taken before them."""
    free = np.ones(len(ranked), dtype=bool)
    taken: list[int] = []
    while len(taken) < n and free.any():  # one pass per neighbour taken (n is small)
        best = int(np.argmax(free))
        taken.append(best)
        free &= np.linalg.norm(centres - centres[best], axis=1) >= min_separation
    return ranked[taken]
