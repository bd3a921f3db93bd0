"""Plane-sweep stereo: accuracy on a textured synthetic scene, refusal of what cannot be
matched (a flat wall, a pair without baseline), and bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from atlas.config import PrepareConfig
from atlas.geometry.camera import scale_intrinsics
from atlas.model.checkpoint import load_model
from atlas.model.inference import ModelInferenceConfig
from atlas.preparation.prepare import PrepareSettings
from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import StereoConfig, grey_images, prior_stereo_config, stereo_depths
from atlas.stereo.plane_sweep import SweepConfig, _mean_of_smallest, plane_sweep
from atlas.stereo.presets import unrecorded_prior
from atlas.stereo.views import select_keyframes, select_neighbours

SCENE = "scene0000_00"


def test_keyframes_follow_pose_change():
    poses = np.tile(np.eye(4), (10, 1, 1))
    poses[:, 0, 3] = np.arange(10) * 0.03  # 3 cm steps
    poses[4] = np.nan  # never a keyframe
    np.testing.assert_array_equal(select_keyframes(poses, 0.1, 10.0), [0, 5, 9])


def test_neighbours_spread_apart():
    # a camera sliding sideways in 1 cm steps, all looking down +z at the same wall
    poses = np.tile(np.eye(4), (60, 1, 1))
    poses[:, 0, 3] = np.arange(60) * 0.01
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    ref = 30
    packed = select_neighbours(poses, ref, 4, 2.0, K, (160, 120))
    spread = select_neighbours(poses, ref, 4, 2.0, K, (160, 120), min_separation=0.05)
    # ranked by a triangulation angle near 8 degrees (28 cm at 2 m): the best four are
    # two pairs of adjacent frames; spread out, every pair is at least 5 cm apart
    assert np.abs(np.diff(np.sort(packed))).min() == 1
    assert len(spread) == 4
    gaps = np.abs(spread[:, None] - spread[None, :]) + 100 * np.eye(4, dtype=int)
    assert gaps.min() >= 5
    assert spread[0] == packed[0]  # the best candidate is always taken first


def test_prior_settings_do_not_follow_the_stereo_method():
    # the bundled model is fine-tuned on and scored with priors made with exactly these; tuning
    # method=stereo's defaults must not change the model's input anywhere it is made
    prior = dataclasses.asdict(prior_stereo_config())
    assert prior == {
        "image_size": (160, 120),
        "sweep": {
            "n_planes": 64,
            "min_depth": 0.5,
            "max_depth": 5.0,
            "window": 7,
            "top_k": 2,
            "max_cost": 0.8,
            "max_ratio": 0.97,
            "min_std": 0.01,
            "sgm": False,
            "sgm_p1": 0.03,
            "sgm_p2": 0.3,
            "sgm_edge": 0.05,
            "temperature": 0.05,
            "min_confidence": 0.0,
        },
        "n_neighbours": 5,
        "neighbour_separation": 0.0,
        "neighbour_angle_deg": 8.0,
        "keyframe_translation": 0.15,
        "keyframe_rotation_deg": 10.0,
        "refine_scale": 1,
        "refine_hypotheses": 8,
        "refine_range": 1.5,
        "refine_window": 7,
        "refine_fallback": False,
        "min_support": 0,
        "consistency_views": 4,
        "min_consistent": 1,
        "consistency_tol": 0.03,
        "weighted_fusion": False,
        "min_weight": 0.0,
        "voxel_size": 0.04,
        "trunc_voxels": 3.0,
        "max_depth": 3.0,
        "refine_poses": False,
    }
    for made_by in (PrepareSettings(), PrepareConfig()):
        assert dataclasses.asdict(made_by.stereo) == prior, type(made_by).__name__
    # inference takes the model file's own (its contract), the bundled one's is this
    assert ModelInferenceConfig().stereo is None
    assert dataclasses.asdict(load_model().contract.prior_stereo) == prior
    # files and prepared scenes that record no settings were made before planes from 0.5 m
    prior["sweep"]["min_depth"] = 0.3
    assert dataclasses.asdict(unrecorded_prior()) == prior


def test_neighbour_separation_must_be_a_distance():
    poses = np.tile(np.eye(4), (5, 1, 1))
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="min_separation"):
            select_neighbours(poses, 0, 3, 2.0, K, (160, 120), min_separation=bad)


def test_sweep_depth_on_textured_scene(small_dataset):
    reader = ScanNetFolder(small_dataset / "scans" / SCENE)
    size = (160, 120)
    K = scale_intrinsics(reader.K_color, 0.5, 0.5)
    (grey,) = grey_images(reader, size)
    grey = grey.float() / 255
    poses = torch.tensor(reader.poses, dtype=torch.float32)
    kept, rel_err = [], []
    for ref in (10, 30, 50):
        nbrs = select_neighbours(reader.poses, ref, 5, 2.0, K, size)
        assert len(nbrs) >= 2
        res = plane_sweep(
            grey[ref],
            grey[nbrs],
            torch.tensor(K, dtype=torch.float32),
            poses[ref],
            poses[nbrs],
            SweepConfig(),
        )
        gt = np.asarray(Image.fromarray(reader.read_frame(ref).depth).resize(size, Image.NEAREST))
        d = res.depth.numpy()
        mask = (d > 0) & (gt > 0)
        kept.append(mask.mean())
        rel_err.append(np.median(np.abs(d[mask] - gt[mask]) / gt[mask]))
    assert np.mean(kept) > 0.3  # measured ~0.5
    assert np.max(rel_err) < 0.05  # median relative error on kept pixels


def test_textureless_wall_is_rejected_not_filled():
    h, w = 60, 80
    K = torch.tensor([[60.0, 0, 39.5], [0, 60.0, 29.5], [0, 0, 1]])
    flat = torch.full((h, w), 0.5)
    ref_pose = torch.eye(4)
    src_poses = torch.eye(4).repeat(3, 1, 1)
    src_poses[:, 0, 3] = torch.tensor([0.1, 0.2, -0.1])
    res = plane_sweep(flat, flat.repeat(3, 1, 1), K, ref_pose, src_poses, SweepConfig())
    assert (res.depth > 0).sum() == 0
    assert res.confidence.max() == 0


def test_no_baseline_is_reported(small_dataset, tmp_path):
    """All frames at one pose: no keyframe has a neighbour; a clear error, no garbage."""
    reader = ScanNetFolder(small_dataset / "scans" / SCENE)
    reader._poses = np.repeat(reader.poses[:1], len(reader), axis=0)
    with pytest.raises(ValueError, match="no keyframe has a neighbour"):
        stereo_depths(reader, StereoConfig())


def test_fewer_than_two_valid_frames(small_dataset):
    reader = ScanNetFolder(small_dataset / "scans" / SCENE)
    reader._poses = reader.poses.copy()
    reader._poses[1:] = np.inf
    with pytest.raises(ValueError, match="at least two frames"):
        stereo_depths(reader, StereoConfig())


def test_image_of_another_size_is_named(small_dataset, tmp_path):
    import shutil

    scene = tmp_path / SCENE
    shutil.copytree(small_dataset / "scans" / SCENE, scene)
    Image.new("RGB", (100, 80)).save(scene / "color" / "7.jpg")
    with pytest.raises(
        ValueError, match=r"7\.jpg: colour image is 100x80, the scene.s are 320x240"
    ):
        stereo_depths(ScanNetFolder(scene), StereoConfig())


def test_refined_maps_are_the_refining_settings_own(room_24):
    """A sweep asked for refined maps keeps its own (coarse) maps exactly and gives the
    maps the refining settings would: the same sweeps, refined, filtered alike."""
    coarse_cfg = dataclasses.replace(prior_stereo_config(), image_size=(80, 60))
    fine_cfg = dataclasses.replace(coarse_cfg, refine_scale=2)
    both = stereo_depths(room_24, coarse_cfg, refined_scale=2)
    coarse = stereo_depths(room_24, coarse_cfg)
    fine = stereo_depths(room_24, fine_cfg)
    assert both.image_size == (80, 60) and both.refined.image_size == (160, 120)
    assert (both.depths > 0).float().mean() > 0.1
    torch.testing.assert_close(both.depths, coarse.depths, rtol=0, atol=0)
    torch.testing.assert_close(both.refined.depths, fine.depths, rtol=0, atol=0)
    torch.testing.assert_close(both.refined.K, fine.K)
    torch.testing.assert_close(both.refined.confidence, fine.confidence, rtol=0, atol=0)
    torch.testing.assert_close(both.refined.poses, both.poses, rtol=0, atol=0)
    np.testing.assert_array_equal(both.refined.keyframes, both.keyframes)
    # pose refinement moves the refined maps' poses only: the coarse maps stay exactly
    posed = stereo_depths(
        room_24, dataclasses.replace(coarse_cfg, refine_poses=True), refined_scale=2
    )
    torch.testing.assert_close(posed.depths, coarse.depths, rtol=0, atol=0)
    torch.testing.assert_close(posed.poses, coarse.poses, rtol=0, atol=0)
    # the rendered room's poses are exact: they move by noise only, and the refined maps
    # are matched with the moved poses
    moved = torch.linalg.norm(posed.refined.poses[:, :3, 3] - coarse.poses[:, :3, 3], dim=1)
    assert 0 < moved.max() < 0.02  # 80x60 and 160x120 images: noise of up to 1 cm
    assert not torch.equal(posed.refined.depths, both.refined.depths)
    assert coarse.refined is None  # not asked for
    assert stereo_depths(room_24, fine_cfg, refined_scale=2).refined is None  # already refined
    with pytest.raises(ValueError, match="refined_scale"):
        stereo_depths(room_24, coarse_cfg, refined_scale=0)


def test_neighbour_costs_average_the_k_smallest_per_pixel():
    cost = torch.tensor([[0.5, 2.0, 0.4], [0.2, 0.1, 0.4], [0.9, 0.3, 0.4]])  # (3 views, 3 px)
    torch.testing.assert_close(_mean_of_smallest(cost, 1), torch.tensor([0.2, 0.1, 0.4]))
    torch.testing.assert_close(_mean_of_smallest(cost, 2), torch.tensor([0.35, 0.2, 0.4]))
    torch.testing.assert_close(_mean_of_smallest(cost, 3), cost.mean(0))
