"""Capture noise of synthetic scenes: smooth pose error of the stated size in the pose
files (the images stay those of the true poses) and exposure changes between frames."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.views import rotation_angle
from atlas.synthetic.capture import (
    CaptureNoise,
    exposure_gains,
    reported_poses,
    smooth_noise,
)
from atlas.synthetic.generate import SceneConfig, main, make_scene, write_scene


def test_smooth_noise_has_unit_spread_and_the_stated_correlation():
    noise = smooth_noise(np.random.default_rng(0), 20000, 2, frames=10.0)
    assert noise.shape == (20000, 2)
    np.testing.assert_allclose(noise.std(0), 1.0, atol=0.1)
    np.testing.assert_allclose(noise.mean(0), 0.0, atol=0.1)
    lag = [float(np.corrcoef(noise[:-k, 0], noise[k:, 0])[0, 1]) for k in (1, 10, 60)]
    # a Gaussian kernel of sigma s correlates lag k by exp(-k^2 / (4 s^2))
    np.testing.assert_allclose(lag, np.exp(-(np.array([1, 10, 60]) ** 2) / 400), atol=0.05)


def test_reported_poses_are_off_by_the_stated_amounts():
    _, poses = make_scene(SceneConfig(seed=4, n_frames=300))
    noise = CaptureNoise(pose_translation=0.02, pose_rotation_deg=0.5, pose_frames=3.0)
    spread = []
    for seed in range(8):  # 2400 frames: the spreads are within a few percent
        out = reported_poses(poses, noise, np.random.default_rng(seed))
        off = out[:, :3, 3] - poses[:, :3, 3]
        turn = np.degrees(rotation_angle(out[:, :3, :3], poses[:, :3, :3]))
        spread.append((np.sqrt((off**2).mean()), np.sqrt((turn**2).mean())))  # per axis, all
        np.testing.assert_allclose(np.linalg.det(out[:, :3, :3]), 1.0, atol=1e-9)
        np.testing.assert_array_equal(out[:, 3], poses[:, 3])
    position, angle = np.mean(spread, 0)
    # the angle of three axes' turns of the stated standard deviation: sqrt(3) times it
    assert abs(position / 0.02 - 1) < 0.15, position
    assert abs(angle / (0.5 * np.sqrt(3)) - 1) < 0.15, angle
    none = reported_poses(poses, CaptureNoise(), np.random.default_rng(0))
    np.testing.assert_array_equal(none, poses)


def test_exposure_gains():
    assert (exposure_gains(50, CaptureNoise(), np.random.default_rng(0)) == 1).all()
    gains = exposure_gains(5000, CaptureNoise(exposure=0.1), np.random.default_rng(0))
    assert abs(np.log(gains).std() - 0.1) < 0.02 and (gains > 0).all()


def test_a_noisy_scene_keeps_the_images_and_room_of_its_seed(tmp_path):
    """Only the pose files (and, with exposure noise, the brightness) change: the room,
    the images and the depth are those of the true path."""
    base = SceneConfig(seed=7, n_frames=12, width=96, height=72)
    clean = ScanNetFolder(write_scene(tmp_path / "clean" / "scene0000_00", base))
    noisy_cfg = SceneConfig(**{**base.__dict__, "noise": CaptureNoise(0.02, 1.0, 3.0)})
    noisy = ScanNetFolder(write_scene(tmp_path / "noisy" / "scene0000_00", noisy_cfg))
    off = np.linalg.norm(noisy.poses[:, :3, 3] - clean.poses[:, :3, 3], axis=1)
    assert 0.002 < off.mean() < 0.1
    for a, b in zip(clean.iter_frames(range(12)), noisy.iter_frames(range(12)), strict=True):
        np.testing.assert_array_equal(a.color, b.color)
        np.testing.assert_array_equal(a.depth, b.depth)
    assert (clean.scene_dir / "scene0000_00_vh_clean_2.ply").read_bytes() == (
        noisy.scene_dir / "scene0000_00_vh_clean_2.ply"
    ).read_bytes()
    meta = (noisy.scene_dir / "scene0000_00.txt").read_text()
    assert "noise_pose_translation = 0.02" in meta
    bright_cfg = SceneConfig(**{**base.__dict__, "noise": CaptureNoise(exposure=0.2)})
    bright = write_scene(tmp_path / "bright" / "scene0000_00", bright_cfg)
    ratios = []
    for i in range(12):
        a = np.asarray(Image.open(clean.scene_dir / "color" / f"{i}.jpg"), dtype=float)
        b = np.asarray(Image.open(bright / "color" / f"{i}.jpg"), dtype=float)
        mid = (a > 30) & (a < 200)  # no clipping either way
        ratios.append(np.median(b[mid] / a[mid]))
    assert np.std(np.log(ratios)) > 0.02  # frames differ in brightness


@pytest.mark.parametrize("flag, value", [("--pose-noise-cm", "-1"), ("--exposure-noise", "nan")])
def test_bad_noise_settings_stop_before_writing(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as stop:
        main(["--out", str(tmp_path / "out"), "--frames", "30", flag, value])
    assert stop.value.code == 2 and "must be a number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
