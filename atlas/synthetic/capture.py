"""Imperfections of a real capture, put into a synthetic one so that stereo on it errs as
it does on real scans: the pose error a SLAM tracker leaves (smooth over time, so the
error between neighbouring frames is correlated, as real trackers' is) and auto-exposure
changes between frames. The images are rendered at the true poses; the pose files hold
the perturbed ones, as a tracker would report them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from atlas.validate import is_finite_number


@dataclass
class CaptureNoise:
    """pose_translation: metres, standard deviation of each axis of the reported
    positions' error; pose_rotation_deg: degrees, of each axis of the reported
    orientations' error (about the camera centre, in the camera frame); pose_frames:
    frames over which the pose error is correlated (the standard deviation of the
    Gaussian that smooths white noise); exposure: standard deviation of the natural log
    of each frame's brightness gain, smooth over exposure_frames frames. All 0: a
    perfect capture."""

    pose_translation: float = 0.0
    pose_rotation_deg: float = 0.0
    pose_frames: float = 10.0
    exposure: float = 0.0
    exposure_frames: float = 5.0

    def check(self) -> None:
        """``ValueError`` naming the first setting that is negative or not a number
        (the two correlation lengths must be positive)."""
        for name in ("pose_translation", "pose_rotation_deg", "exposure"):
            value = getattr(self, name)
            if not (is_finite_number(value) and value >= 0):
                raise ValueError(f"capture noise {name} must be a number >= 0, got {value!r}")
        for name in ("pose_frames", "exposure_frames"):
            value = getattr(self, name)
            if not (is_finite_number(value) and value > 0):
                raise ValueError(f"capture noise {name} must be a number > 0, got {value!r}")


def smooth_noise(rng: np.random.Generator, n: int, dims: int, frames: float) -> np.ndarray:
    """(n, dims) zero-mean noise of unit standard deviation per column, correlated over
    ``frames`` (white noise convolved with a Gaussian of that standard deviation, then
    rescaled to unit spread)."""
    half = int(np.ceil(3 * frames))
    white = rng.standard_normal((n + 2 * half, dims))
    t = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (t / frames) ** 2)
    kernel /= np.sqrt((kernel**2).sum())  # unit variance for white input
    return np.stack([np.convolve(white[:, d], kernel, mode="valid") for d in range(dims)], 1)


def reported_poses(poses: np.ndarray, noise: CaptureNoise, rng: np.random.Generator) -> np.ndarray:
    """(N, 4, 4) camera-to-world poses as a tracker would report the true ``poses``
    (N, 4, 4): positions off by smooth noise of ``pose_translation`` metres per axis,
    orientations turned in the camera frame by ``pose_rotation_deg`` per axis."""
    n = len(poses)
    out = poses.copy()
    if noise.pose_translation > 0:
        out[:, :3, 3] += noise.pose_translation * smooth_noise(rng, n, 3, noise.pose_frames)
    if noise.pose_rotation_deg > 0:
        turn = np.radians(noise.pose_rotation_deg) * smooth_noise(rng, n, 3, noise.pose_frames)
        out[:, :3, :3] = poses[:, :3, :3] @ Rotation.from_rotvec(turn).as_matrix()
    return out


def exposure_gains(n: int, noise: CaptureNoise, rng: np.random.Generator) -> np.ndarray:
    """(n,) brightness gain of each frame (1 without exposure noise)."""
    if noise.exposure <= 0:
        return np.ones(n)
    return np.exp(noise.exposure * smooth_noise(rng, n, 1, noise.exposure_frames)[:, 0])
