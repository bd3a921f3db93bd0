"""The one per-scene pipeline (atlas/pipeline/scene.py): the Python API and infer.py agree,
outputs lie in the input's world frame, and method=fusion fuses the sensor depth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial import cKDTree

from atlas.geometry import VoxelGrid, extract_mesh, fuse_depth_frames, read_ply
from atlas.pipeline.methods import FusionConfig, MethodSettings
from atlas.pipeline.outputs import save_reconstruction
from atlas.pipeline.scene import reconstruct_scene
from atlas.readers.detect import open_scene
from atlas.readers.scannet import ScanNetFolder
from tests.conftest import run_main, seven_scenes_layout

SCENE = "scene0000_00"
# A world frame whose up is -y (as 7-Scenes and OpenCV-style SLAM output are): the
# synthetic room's Z-up world turned a quarter turn about x, then moved.
Y_DOWN = np.array([[1.0, 0, 0, 0.3], [0, 0, -1, 1.2], [0, 1, 0, -0.4], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def turned_capture(small_dataset, tmp_path_factory) -> Path:
    """Frames 0-29 of the synthetic room as a 7-Scenes folder whose world frame is not
    Z-up (poses premultiplied by ``Y_DOWN``)."""
    dest = tmp_path_factory.mktemp("turned") / "turned"
    seven_scenes_layout(small_dataset / "scans" / SCENE, dest, frames=30)
    for pose_file in dest.glob("*.pose.txt"):
        np.savetxt(pose_file, Y_DOWN @ np.loadtxt(pose_file))
    return dest


def fused_depth_mesh(reader, voxel_size: float = 0.04):
    """The mesh of the reader's depth frames fused in its own world frame."""
    idx = np.flatnonzero(reader.valid)
    frames = ((f.depth, None) for f in reader.iter_frames(idx))
    grid = fuse_depth_frames(
        frames, reader.K_depth, reader.poses[idx], reader.depth_size, voxel_size, 5.0
    )
    return extract_mesh(grid)


def test_mesh_of_a_turned_capture_lies_on_its_depth_in_its_own_frame(turned_capture):
    reader = open_scene(turned_capture)
    assert reader.up == "auto"  # 7-Scenes declares no up axis: it is estimated
    rec = reconstruct_scene(reader, "fusion")
    assert rec.summary["alignment"]["method"] != "none"
    assert rec.summary["alignment"]["frame"] == "input"
    truth = cKDTree(fused_depth_mesh(reader).vertices)
    near = truth.query(rec.mesh.vertices)[0]
    assert np.percentile(near, 90) < 0.02, np.percentile(near, [50, 90, 99])
    # The grid stays upright and says how to reach the input frame.
    T = np.array(rec.summary["alignment"]["transform"])
    np.testing.assert_allclose(rec.grid.world_from_grid, np.linalg.inv(T), atol=1e-9)
    # The same reconstruction kept in the aligned frame is far from the input's depth.
    aligned = reconstruct_scene(reader, "fusion", frame="aligned")
    assert np.median(truth.query(aligned.mesh.vertices)[0]) > 0.2
    assert aligned.grid.world_from_grid is None


def test_python_api_and_infer_give_the_same_mesh(turned_capture, tmp_path, capsys):
    api = tmp_path / "api"
    save_reconstruction(reconstruct_scene(open_scene(turned_capture), "fusion"), api)
    code, _, lines = run_main(
        "infer", [f"scene={turned_capture}", "method=fusion", f"out_dir={tmp_path}"], capsys
    )
    assert code == 0, lines
    cli = read_ply(tmp_path / "turned" / "mesh.ply")
    np.testing.assert_array_equal(cli.vertices, read_ply(api / "mesh.ply").vertices)
    np.testing.assert_array_equal(cli.faces, read_ply(api / "mesh.ply").faces)
    summary = json.loads((tmp_path / "turned" / "summary.json").read_text())
    grid = VoxelGrid.load(tmp_path / "turned" / "tsdf.npz")
    np.testing.assert_allclose(
        grid.world_from_grid, np.linalg.inv(summary["alignment"]["transform"]), atol=1e-9
    )
    # The observed bounds are given in the input frame: the mesh lies inside them.
    lo, hi = np.array(summary["observed_min"]), np.array(summary["observed_max"])
    assert (cli.vertices >= lo - 0.05).all() and (cli.vertices <= hi + 0.05).all()


def test_fusion_method_is_the_depth_fusion_reference(small_dataset):
    reader = ScanNetFolder(small_dataset / "scans" / SCENE)
    rec = reconstruct_scene(reader, "fusion", MethodSettings(fusion=FusionConfig(0.04)))
    assert rec.summary["method"] == "fusion" and rec.summary["alignment"]["method"] == "none"
    assert rec.grid.world_from_grid is None  # not aligned: the grid is in the input frame
    assert rec.summary["frames_fused"] == int(reader.valid.sum())
    reference = fused_depth_mesh(reader)  # ScanNet is Z-up: no alignment, same grid
    np.testing.assert_allclose(rec.mesh.vertices, reference.vertices, atol=1e-6)
    assert rec.mesh.colors is not None and rec.mesh.colors.std() > 10  # textured room


def test_fusion_without_depth_names_the_capture(small_dataset, tmp_path, capsys):
    """An ATLAS-sample folder (colour and poses only) asked for method=fusion."""
    scene = small_dataset / "scans" / SCENE
    sample = tmp_path / "rgb_only"
    (sample / "color").mkdir(parents=True)
    (sample / "pose").mkdir()
    for i in range(4):
        shutil.copy(scene / "color" / f"{i}.jpg", sample / "color" / f"{i}.jpg")
        shutil.copy(scene / "pose" / f"{i}.txt", sample / "pose" / f"{i}.txt")
    K = np.loadtxt(scene / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    np.savetxt(sample / "intrinsics.txt", K)
    out = tmp_path / "out"
    code, _, lines = run_main(
        "infer", [f"scene={sample}", "method=fusion", f"out_dir={out}"], capsys
    )
    assert code == 1
    assert f"error: {sample}: method=fusion needs depth images" in lines[0], lines
    assert not (out / "rgb_only").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("method=fuse", "method must be one of model, stereo, fusion, got 'fuse'"),
        ("frame=world", "frame must be input or aligned, got 'world'"),
        ("fusion.voxel_size=0", "fusion.voxel_size must be a positive number, got 0.0"),
        ("fusion.frame_stride=0", "fusion.frame_stride must be an integer >= 1, got 0"),
    ],
)
def test_pipeline_settings_are_checked_before_any_scene(
    small_dataset, tmp_path, capsys, override, message
):
    scene = small_dataset / "scans" / SCENE
    code, _, lines = run_main("infer", [f"scene={scene}", f"out_dir={tmp_path}", override], capsys)
    assert code == 2 and lines[-1] == f"error: {message}", lines
    assert not any(tmp_path.iterdir())
