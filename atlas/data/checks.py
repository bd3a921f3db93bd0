"""Plausibility checks on a scene before reconstructing it.

``check_metric_scale`` looks at the camera centres of the valid frames, in the order of
the reader's frames, and warns when the trajectory does not look like a room-scale
capture in metres. The thresholds:

- ``MAX_MEDIAN_STEP`` = 1.0 m: the median distance between consecutive cameras. Video
  moves about 1-5 cm between frames and even sparse photo captures rarely step a metre
  between consecutive shots; millimetre or centimetre units give 10-1000x larger steps.
- ``MAX_EXTENT`` = 100 m: the diagonal of the centres' bounding box. Indoor captures
  span a few to a few tens of metres.
- ``MIN_EXTENT`` = 0.05 m, with at least ``MIN_FRAMES_FOR_EXTENT`` = 5 valid frames:
  a capture of a room (or object) moves more than 5 cm in all; a smaller trajectory
  suggests units of kilometres or a normalised model (e.g. an SfM result scaled into a
  unit box). A camera that only rotates on a tripod also trips this check.

SfM models (COLMAP) have an arbitrary scale: one that happens to be near metric passes
these checks without being metric, so a silent check is no proof.
"""

from __future__ import annotations

import numpy as np

from atlas.data.frames import SceneReader

MAX_MEDIAN_STEP = 1.0  # metres between consecutive valid cameras
MAX_EXTENT = 100.0  # metres, bounding box diagonal of the camera centres
MIN_EXTENT = 0.05  # metres
MIN_FRAMES_FOR_EXTENT = 5


def trajectory_stats(poses: np.ndarray) -> tuple[float, float]:
    """(median consecutive step, bounding box diagonal), both in the poses' units, of the
    camera centres of ``poses`` (N, 4, 4) camera-to-world (all finite, N >= 2)."""
    centres = poses[:, :3, 3]
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    extent = np.linalg.norm(centres.max(axis=0) - centres.min(axis=0))
    return float(np.median(steps)), float(extent)


def check_metric_scale(reader: SceneReader) -> str | None:
    """A one-line warning when the valid cameras' trajectory suggests non-metric units
    (thresholds in the module docstring), else None; None too with fewer than 2 valid
    frames (nothing to judge)."""
    poses = reader.poses[reader.valid]
    if len(poses) < 2:
        return None
    step, extent = trajectory_stats(poses)
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
    if len(poses) >= MIN_FRAMES_FOR_EXTENT and extent < MIN_EXTENT:
        return (
            f"{reader.name}: the {len(poses)} cameras span only {extent:.3g} "
            f"(less than {MIN_EXTENT} m): {hint}"
        )
    return None
