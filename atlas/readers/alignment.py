"""Gravity alignment: a rigid transform taking a scene's world frame to Z-up, floor at 0.

Estimated from the cameras' up vectors (hand-held cameras are held roughly upright) and
refined by the dominant floor plane of the depth points (RANSAC over planes whose normal
is near that guess, keeping the lowest well-supported one); or given as an axis.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from atlas.readers.frames import Frame, SceneReader

log = logging.getLogger(__name__)
AXES = {"x": 0, "y": 1, "z": 2}


def check_up(up: str, extra: tuple[str, ...] = ()) -> None:
    """``ValueError`` (naming the ``align`` setting) unless ``up`` is ``auto``, ``none``,
    one of ``extra`` or an axis that points up (``z``, ``-y``, ``+x``...)."""
    if up in ("auto", "none", *extra):
        return
    if isinstance(up, str) and up.lstrip("+-") in AXES and len(up) <= 2:
        return
    choices = ", ".join(("auto", "none", *extra))
    raise ValueError(f"align must be {choices} or an up axis such as -y or z, got {up!r}")


@dataclass
class Alignment:
    """transform: (4, 4) world -> aligned world; method: how it was found;
    floor_inliers: share of sampled depth points on the floor plane (0 if none used)."""

    transform: np.ndarray
    method: str
    floor_inliers: float = 0.0


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) rotation taking unit vector ``a`` onto unit vector ``b`` (the shortest one)."""
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: rotate by pi about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def camera_up(poses: np.ndarray) -> np.ndarray:
    """(3,) mean world direction of the cameras' up (-y image axis) over finite poses."""
    ok = np.isfinite(poses).all(axis=(1, 2))
    up = -poses[ok, :3, 1].mean(axis=0)
    return up / np.linalg.norm(up)


def fit_floor(
    points: np.ndarray,
    up_guess: np.ndarray,
    rng: np.random.Generator,
    max_angle_deg: float = 30.0,
    inlier_dist: float = 0.03,
    n_planes: int = 3000,
) -> tuple[np.ndarray, float, float] | None:
    """The lowest well-supported plane roughly perpendicular to ``up_guess``.

    Plane hypotheses come from local triples (a random point and two of its neighbours),
    so a floor that holds only a few percent of the points is still proposed often.
    points: (N, 3) world metres. Returns (unit normal oriented like up_guess, height of
    the plane along that normal, share of points on it) or None when there is none.
    """
    from scipy.spatial import cKDTree

    if len(points) < 200:
        return None
    scoring = points[rng.choice(len(points), min(len(points), 8000), replace=False)]
    seeds = rng.integers(0, len(points), n_planes)
    _, nbrs = cKDTree(points).query(points[seeds], k=16)
    triples = points[np.stack([seeds, nbrs[:, 7], nbrs[:, 15]], axis=1)]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    norms = np.linalg.norm(normals, axis=1)
    keep = norms > 1e-9
    normals = normals[keep] / norms[keep, None]
    normals *= np.sign(normals @ up_guess)[:, None]
    horizontal = normals @ up_guess > np.cos(np.deg2rad(max_angle_deg))
    if not horizontal.any():
        return None
    normals = normals[horizontal]
    offsets = np.einsum("ij,ij->i", normals, triples[keep][horizontal][:, 0])
    on_plane = np.abs(scoring @ normals.T - offsets) < inlier_dist  # (N, P)
    support = on_plane.sum(axis=0)
    strong = np.flatnonzero(support >= max(0.1 * support.max(), 0.02 * len(scoring)))
    # The floor: the strongly supported plane whose points lie lowest along the guess.
    heights = (on_plane[:, strong].T @ (scoring @ up_guess)) / support[strong]
    best = strong[np.argmin(heights)]
    normal = normals[best]
    offset = offsets[best]
    for _ in range(3):  # refine on all points: inliers, then a least-squares plane
        inliers = points[np.abs(points @ normal - offset) < inlier_dist]
        centre = inliers.mean(axis=0)
        normal = np.linalg.svd(inliers - centre, full_matrices=False)[2][2]
        normal *= np.sign(normal @ up_guess)
        offset = normal @ centre
    return normal, float(normal @ centre), len(inliers) / len(points)


def sample_depth_points(
    reader: SceneReader, n_frames: int = 24, stride: int = 8, max_depth: float = 4.0
) -> np.ndarray:
    """(N, 3) world points back-projected from evenly spaced frames' depth (subsampled).
    A frame that cannot be read is left out with a warning: the floor is a refinement,
    found from the others (a reconstruction from RGB must not stop at a damaged depth
    map it never needs)."""
    valid = np.flatnonzero(reader.valid)
    chosen = valid[np.linspace(0, len(valid) - 1, min(n_frames, len(valid))).astype(int)]
    out = []
    for frame in _readable_frames(reader, chosen):
        if frame.depth is None or frame.K_depth is None:
            return np.zeros((0, 3))
        d = frame.depth[::stride, ::stride]
        v, u = np.nonzero((d > 0) & (d < max_depth))
        z = d[v, u]
        K = frame.K_depth
        cam = np.stack(
            [(u * stride - K[0, 2]) / K[0, 0] * z, (v * stride - K[1, 2]) / K[1, 1] * z, z], -1
        )
        out.append(cam @ frame.pose[:3, :3].T + frame.pose[:3, 3])
    return np.concatenate(out) if out else np.zeros((0, 3))


def _readable_frames(reader: SceneReader, indices: np.ndarray) -> Iterator[Frame]:
    """The frames at ``indices`` that can be read, each failure logged; a sequential
    reader's stream ends at its first failure."""
    if reader.sequential:
        frames = reader.iter_frames(indices)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except (OSError, ValueError) as err:
                log.warning("%s: floor search stops at an unreadable frame: %s", reader.name, err)
                return
            yield frame
    for index in indices:
        try:
            frame = reader.read_frame(int(index))
        except (OSError, ValueError) as err:
            log.warning("%s: floor search leaves out an unreadable frame: %s", reader.name, err)
            continue
        yield frame


def estimate_alignment(reader: SceneReader, up: str = "auto", seed: int = 0) -> Alignment:
    """The gravity alignment of a scene.

    up: ``"auto"`` (camera up vectors refined by the floor plane), ``"none"`` (identity),
    or an axis of the scene's world frame that points up: ``"z"``, ``"-y"``, ...
    """
    check_up(up)
    if up == "none":
        return Alignment(np.eye(4), "none")
    if up != "auto":
        sign = -1.0 if up.startswith("-") else 1.0
        axis = up.lstrip("+-")
        vec = np.zeros(3)
        vec[AXES[axis]] = sign
        T = np.eye(4)
        T[:3, :3] = rotation_between(vec, np.array([0.0, 0.0, 1.0]))
        return Alignment(T, f"axis {up}")
    guess = camera_up(reader.poses)
    floor = fit_floor(sample_depth_points(reader), guess, np.random.default_rng(seed))
    T = np.eye(4)
    if floor is None:
        T[:3, :3] = rotation_between(guess, np.array([0.0, 0.0, 1.0]))
        return Alignment(T, "camera up vectors")
    normal, height, share = floor
    T[:3, :3] = rotation_between(normal, np.array([0.0, 0.0, 1.0]))
    T[2, 3] = -height
    return Alignment(T, "floor plane", share)


class AlignedReader(SceneReader):
    """A reader whose poses are premultiplied by an alignment transform (4, 4)."""

    def __init__(self, base: SceneReader, alignment: Alignment) -> None:
        self.base = base
        self.alignment = alignment
        self.name, self.frame_ids = base.name, base.frame_ids
        self.K_color, self.K_depth = base.K_color, base.K_depth
        self.color_size, self.depth_size = base.color_size, base.depth_size
        self.sequential, self.source = base.sequential, base.source
        self.up = "none"  # aligned already
        poses = base.poses.copy()
        valid = base.valid
        poses[valid] = alignment.transform @ poses[valid]
        self._poses = poses

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def _aligned(self, frame: Frame, index: int) -> Frame:
        frame.pose = self._poses[index]
        return frame

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        return self._aligned(self.base.read_frame(index, depth=depth), index)

    def iter_frames(self, indices, depth: bool = True):
        indices = [int(i) for i in indices]
        frames = self.base.iter_frames(indices, depth=depth)
        for index, frame in zip(indices, frames, strict=True):
            yield self._aligned(frame, index)

    def frame_files(self, index: int):
        return self.base.frame_files(index)

    @property
    def gt_mesh_path(self):
        return self.base.gt_mesh_path
