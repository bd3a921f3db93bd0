"""Synthetic ScanNet-format scenes: layout, determinism, ground truth, .sens."""

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import TSDFFusion, extract_mesh, frustum_bounds, read_ply
from atlas.readers.sens import iter_sens
from atlas.synthetic.generate import SceneConfig, make_scene, write_scene
from atlas.synthetic.room import generate_room

SCENE = "scene0000_00"


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_layout_and_formats(small_dataset):
    scene = small_dataset / "scans" / SCENE
    for split in ("train", "val", "test"):
        assert (small_dataset / f"scannetv2_{split}.txt").exists()
    assert (small_dataset / "scannetv2_train.txt").read_text() == f"{SCENE}\n"
    assert len(list((scene / "color").glob("*.jpg"))) == 60
    depth = np.asarray(Image.open(scene / "depth" / "0.png"))
    assert depth.dtype == np.uint16 and depth.shape == (240, 320)
    assert 300 < np.median(depth[depth > 0]) < 9000  # millimetres inside a room
    color = Image.open(scene / "color" / "0.jpg")
    assert color.size == (320, 240) and color.mode == "RGB"
    assert np.asarray(color).std() > 10  # textured, not flat
    pose = np.loadtxt(scene / "pose" / "0.txt")
    np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-6)
    assert 1.1 < pose[2, 3] < 1.9  # hand-held height, Z-up world
    K = np.loadtxt(scene / "intrinsic" / "intrinsic_color.txt")
    assert K.shape == (4, 4) and K[0, 2] == 159.5
    gt = read_ply(scene / f"{SCENE}_vh_clean_2.ply")
    assert gt.colors is not None and len(gt.vertices) > 10000
    assert gt.vertices[:, 2].min() > -1e-4  # floor at z = 0


def test_depth_agrees_with_ground_truth_mesh(small_dataset):
    """Back-projected depth pixels lie on the ground-truth mesh (poses, K, mm all right)."""
    scene = small_dataset / "scans" / SCENE
    K = np.loadtxt(scene / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    pose = np.loadtxt(scene / "pose" / "10.txt")
    depth = np.asarray(Image.open(scene / "depth" / "10.png")) / 1000.0
    v, u = np.nonzero(depth > 0)
    d = depth[v, u]
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * d, (v - K[1, 2]) / K[1, 1] * d, d], -1)
    world = cam @ pose[:3, :3].T + pose[:3, 3]
    from scipy.spatial import cKDTree

    gt = read_ply(scene / f"{SCENE}_vh_clean_2.ply")
    dist, _ = cKDTree(gt.vertices).query(world[::7])
    assert np.percentile(dist, 95) < 0.025  # vertices are <= 3 cm apart


def test_same_seed_same_bytes_different_seed_different_room(tmp_path):
    cfg = SceneConfig(seed=11, n_frames=30, width=160, height=120)
    a = write_scene(tmp_path / "a" / SCENE, cfg)
    b = write_scene(tmp_path / "b" / SCENE, cfg)
    assert tree_digest(a) == tree_digest(b)
    room_a, _ = make_scene(cfg)
    room_c, _ = make_scene(SceneConfig(seed=12, n_frames=30))
    assert not np.allclose(room_a.size, room_c.size)
    assert room_a.objects != room_c.objects


def test_rooms_cover_the_specified_ranges():
    for seed in range(12):
        rng = np.random.default_rng(seed)
        room = generate_room(rng)
        assert 3 <= room.size[0] <= 8 and 3 <= room.size[1] <= 8
        assert 2.4 <= room.size[2] <= 3.0
        assert 5 <= len(room.objects) <= 20
        kinds = {k for k, _, _ in room.objects}
        assert len(kinds) >= 2


def test_fused_depth_matches_ground_truth_mesh(small_dataset):
    """Fusing every depth map at 4 cm reproduces the ground-truth mesh: F@5cm >= 0.95."""
    scene = small_dataset / "scans" / SCENE
    K = np.loadtxt(scene / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    poses = [np.loadtxt(scene / "pose" / f"{i}.txt") for i in range(60)]
    lo, hi = frustum_bounds(K, np.stack(poses), (320, 240), 6.0)
    fusion = TSDFFusion.from_bounds(lo, hi, 0.04, max_depth=6.0)
    for i, pose in enumerate(poses):
        depth = np.array(Image.open(scene / "depth" / f"{i}.png"), np.float32) / 1000
        fusion.integrate(depth, K, pose)
    metrics = mesh_metrics(
        extract_mesh(fusion.to_grid()), read_ply(scene / f"{SCENE}_vh_clean_2.ply")
    )
    assert metrics["fscore"] >= 0.95, metrics


def test_sens_file_reads_back(tmp_path):
    cfg = SceneConfig(seed=5, n_frames=30, width=160, height=120, write_sens=True)
    scene = write_scene(tmp_path / SCENE, cfg)
    header, frames = iter_sens(scene / f"{SCENE}.sens")
    assert header.num_frames == 30 and header.color_size == (160, 120)
    np.testing.assert_allclose(header.K_depth, cfg.intrinsics(), atol=1e-4)
    for i, frame in enumerate(frames):
        np.testing.assert_allclose(frame.pose, np.loadtxt(scene / "pose" / f"{i}.txt"), atol=1e-6)
        np.testing.assert_array_equal(
            frame.depth, np.asarray(Image.open(scene / "depth" / f"{i}.png"))
        )
        assert frame.color_jpeg == (scene / "color" / f"{i}.jpg").read_bytes()
    assert i == 29
    # A truncated file names the frame where it ends.
    data = (scene / f"{SCENE}.sens").read_bytes()
    (tmp_path / "cut.sens").write_bytes(data[: len(data) // 2])
    _, frames = iter_sens(tmp_path / "cut.sens")
    try:
        for _ in frames:
            pass
        raise AssertionError("truncated file read without error")
    except ValueError as err:
        assert "cut.sens" in str(err) and "frame" in str(err)
