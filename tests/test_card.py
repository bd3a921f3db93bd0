"""The model card's sensor-prior diagnostic: the depth sensor's maps stand in for stereo
at the same keyframes, on stereo's pixel grid."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from atlas.model_card import check_sensor_camera, sensor_depth_maps, sensor_prior
from atlas.readers.frames import SubsetReader
from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import prior_stereo_config, stereo_depths


def test_sensor_prior_replaces_stereo_depth_on_its_grid(small_dataset):
    # Every second of the first 30 frames: keyframes enough, a third of the stereo work.
    reader = SubsetReader(ScanNetFolder(small_dataset / "scans" / "scene0000_00"), range(0, 30, 2))
    cfg = prior_stereo_config()
    stereo = stereo_depths(reader, cfg)
    everywhere = sensor_prior("sensor")(reader, cfg, "cpu", 2)
    at_stereo = sensor_prior("sensor-at-stereo-pixels")(reader, cfg, "cpu", 1)
    assert sensor_prior("stereo") is stereo_depths
    assert everywhere.refined is None  # the evidence rule, if on, takes the sensor's maps
    np.testing.assert_array_equal(everywhere.keyframes, stereo.keyframes)
    torch.testing.assert_close(everywhere.poses, stereo.poses)

    # nearest resampling 320x240 -> 160x120: pixel (v, u) is the frame's (2v, 2u)
    first = reader.read_frame(int(stereo.keyframes[0])).depth
    np.testing.assert_array_equal(everywhere.depths[0].numpy(), first[::2, ::2])
    assert (everywhere.depths > 0).float().mean() > 0.95  # a closed room: depth everywhere

    kept = stereo.depths > 0
    assert torch.equal(at_stereo.depths > 0, kept & (everywhere.depths > 0))
    torch.testing.assert_close(at_stereo.depths[kept], everywhere.depths[kept])
    # the same pixel grid: stereo's depth matches the sensor's to a few percent
    rel = (stereo.depths[kept] - everywhere.depths[kept]).abs() / everywhere.depths[kept]
    assert rel.median() < 0.03


def test_sensor_prior_refuses_another_depth_camera():
    K = np.array([[200.0, 0, 159.5], [0, 200.0, 119.5], [0, 0, 1]])
    same = SimpleNamespace(
        name="rgbd",
        K_color=K,
        color_size=(320, 240),
        K_depth=K / [[2], [2], [1]],
        depth_size=(160, 120),
    )
    check_sensor_camera(same, (160, 120))  # the same camera at half the size
    other = SimpleNamespace(**{**vars(same), "name": "kinect", "K_depth": same.K_depth * 1.1})
    with pytest.raises(ValueError, match="kinect: the depth camera is not the colour camera"):
        sensor_depth_maps(other, np.array([0]), (160, 120))
    none = SimpleNamespace(**{**vars(same), "name": "rgb", "K_depth": None, "depth_size": None})
    with pytest.raises(ValueError, match="rgb: no depth frames"):
        check_sensor_camera(none, (160, 120))


def test_the_sensor_diagnostic_scores_the_network_on_a_held_out_room(tmp_path):
    """``python -m atlas.model_card --prior-source sensor`` end to end on one tiny test
    room: the bundled model's own grid (no evidence rule) and the sensor prior, scored."""
    from atlas.model_card import evaluate
    from atlas.synthetic.generate import SceneConfig, generate_dataset

    root = tmp_path / "synthetic"
    cfg = SceneConfig(seed=5, n_frames=12, width=160, height=120)
    generate_dataset(root, 1, cfg, first_index=9, progress=False)  # index 9: the test split
    rows, means = evaluate(None, root, tmp_path / "no_demo", tmp_path / "no_7scenes", None,
                           prior_source="sensor")  # fmt: skip
    methods = {r["method"]: r for r in rows}
    assert set(methods) == {"model", "sensor prior"}
    assert all(0 <= r["fscore"] <= 1 for r in rows) and methods["sensor prior"]["fscore"] > 0.3
    assert {m["method"] for m in means} == {"model", "sensor prior"}
