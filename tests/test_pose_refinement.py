"""Photometric pose refinement: pose errors of the size real SLAM poses carry are
undone from the keyframes' depths, and right poses stay put."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import grey_images
from atlas.stereo.pose_refinement import refine_poses
from atlas.stereo.views import rotation_angle, select_neighbours

SCENE = "scene0000_00"

SIZE = (320, 240)  # the scene's own size
FIT = {"steps": 250}  # a small scene: more steps than the default


def _relative_errors(true: np.ndarray, est: np.ndarray, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Rotation (degrees) and translation (metres) error of each pair's relative pose
    (the world frame is free, so only relative poses are compared)."""
    rot, trans = [], []
    for a, b in pairs:
        rel_true = np.linalg.inv(true[a]) @ true[b]
        rel_est = np.linalg.inv(est[a]) @ est[b]
        rot.append(float(np.degrees(rotation_angle(rel_true[:3, :3], rel_est[:3, :3]))))
        trans.append(float(np.linalg.norm(rel_true[:3, 3] - rel_est[:3, 3])))
    return np.array(rot), np.array(trans)


@pytest.fixture(scope="module")
def scene(small_dataset):
    """Grey images (uint8, as stereo passes them), K, true poses, keyframes, their
    sensor depths and neighbours."""
    reader = ScanNetFolder(small_dataset / "scans" / SCENE)
    K = reader.K_color
    (grey,) = grey_images(reader, SIZE)
    keyframes = np.arange(5, 56, 5)
    depths = torch.stack([torch.from_numpy(reader.read_frame(k).depth.copy()) for k in keyframes])
    neighbours = [select_neighbours(reader.poses, int(k), 4, 2.0, K, SIZE) for k in keyframes]
    pairs = [(int(k), int(n)) for k, nb in zip(keyframes, neighbours, strict=True) for n in nb]
    return grey, torch.tensor(K), reader.poses, keyframes, depths, neighbours, pairs


def _perturbed(poses: np.ndarray, degrees: float, metres: float, seed: int) -> np.ndarray:
    """Each pose moved by a rotation of ``degrees`` about a random axis and a
    translation of ``metres`` in a random direction (camera frame)."""
    rng = np.random.default_rng(seed)
    out = poses.copy()
    for i in range(len(poses)):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        step = rng.normal(size=3)
        delta = np.eye(4)
        delta[:3, :3] = Rotation.from_rotvec(np.radians(degrees) * axis).as_matrix()
        delta[:3, 3] = metres * step / np.linalg.norm(step)
        out[i] = poses[i] @ delta
    return out


def test_pose_errors_are_undone(scene):
    grey, K, true, keyframes, depths, neighbours, pairs = scene
    noisy = _perturbed(true, 0.5, 0.01, seed=0)
    out = refine_poses(grey, K, torch.tensor(noisy), keyframes, depths, neighbours, **FIT)
    rot_before, trans_before = _relative_errors(true, noisy, pairs)
    rot_after, trans_after = _relative_errors(true, out.poses, pairs)
    assert np.median(rot_after) < 0.5 * np.median(rot_before)
    assert np.median(trans_after) < 0.75 * np.median(trans_before)
    assert out.residual_after < 0.5 * out.residual_before
    assert out.poses.dtype == np.float64 and out.poses.shape == true.shape
    untouched = np.setdiff1d(np.arange(len(true)), [f for pair in pairs for f in pair])
    np.testing.assert_array_equal(out.poses[untouched], noisy[untouched])


def test_right_poses_stay_put(scene):
    grey, K, true, keyframes, depths, neighbours, pairs = scene
    out = refine_poses(grey, K, torch.tensor(true), keyframes, depths, neighbours, **FIT)
    rot, trans = _relative_errors(true, out.poses, pairs)
    assert np.median(rot) < 0.3 and np.median(trans) < 0.008


def test_nothing_to_match_leaves_the_poses(scene):
    grey, K, true, keyframes, depths, neighbours, _ = scene
    for nbrs, maps in (
        ([np.array([], dtype=int)] * len(keyframes), depths),
        (neighbours, depths * 0),
    ):
        out = refine_poses(grey, K, torch.tensor(true), keyframes, maps, nbrs)
        np.testing.assert_array_equal(out.poses, true)
