"""Plausibility checks on a scene before reconstructing it.

``check_metric_scale`` looks at the camera centres of the valid frames, in the order of
the reader's frames, and warns when the trajectory does not look like a room-scale
capture in metres. The thresholds:

- ``MAX_MEDIAN_STEP`` = 1.0 m: the median distance between consecutive cameras. Video
  moves about 1-5 cm between frames and even sparse photo captures rarely step a metre
  between consecutive shots; millimetre or centimetre units give 10-1000x larger steps.
- ``MAX_EXTENT`` = 100 m: the diagonal of the centres' bounding box. Indoor captures
  span a few to a few tens of metres.
- ``MIN_TRAVEL`` = 0.01 m, with at least ``MIN_FRAMES_FOR_EXTENT`` = 5 valid frames:
  the length of the whole path the camera centres follow (the sum of every step, not
  the box of where they are). Hand-held video moves a few millimetres a frame even
  when it starts slowly (7-Scenes frames 0-29: boxed in 5 cm, 6.6 cm of path); units of
  kilometres make a room-sized walk a centimetre or less. A camera that only rotates
  on a tripod also trips this check.

SfM models (COLMAP) have an arbitrary scale: one that happens to be near metric passes
these checks without being metric, so a silent check is no proof.
"""

from __future__ import annotations

import numpy as np

from atlas.readers.frames import SceneReader

MAX_MEDIAN_STEP = 1.0  # metres between consecutive valid cameras
MAX_EXTENT = 100.0  # metres, bounding box diagonal of the camera centres
MIN_TRAVEL = 0.01  # metres along the whole path of the camera centres
MIN_FRAMES_FOR_EXTENT = 5


def trajectory_stats(poses: np.ndarray) -> tuple[float, float, float]:
    """(median consecutive step, bounding box diagonal, path length), all in the poses'
    units, of the camera centres of ``poses`` (N, 4, 4) camera-to-world (all finite,
    N >= 2)."""
    centres = poses[:, :3, 3]
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    extent = np.linalg.norm(centres.max(axis=0) - centres.min(axis=0))
    return float(np.median(steps)), float(extent), float(steps.sum())


def check_metric_scale(reader: SceneReader) -> str | None:
    """A one-line warning when the valid cameras' trajectory suggests non-metric units
    (thresholds in the module docstring), else None; None too with fewer than 2 valid
    frames (nothing to judge)."""
    poses = reader.poses[reader.valid]
    if len(poses) < 2:
        return None
    step, extent, travel = trajectory_stats(poses)
    hint = (
        "poses may not be in metres (millimetres? an SfM model's arbitrary scale?); "
        "rescale the camera positions to metres"
    )
    if step > MAX_MEDIAN_STEP:
        return (
            f"{reader.name}: median distance between consecutive cameras is {step:.3g} "
            f"(more than {MAX_MEDIAN_STEP} m): {hint}"
        )
    if extent > MAX_EXTENT:
        return f"{reader.name}: the cameras span {extent:.3g} (more than {MAX_EXTENT} m): {hint}"
    if len(poses) >= MIN_FRAMES_FOR_EXTENT and travel < MIN_TRAVEL:
        return (
            f"{reader.name}: the {len(poses)} cameras span only {extent:.3g} and travel "
            f"{travel:.3g} along their whole path (less than {MIN_TRAVEL} m): {hint}"
        )
    return None
