"""Readers for custom captures: posed images folders, transforms.json, COLMAP text models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial.transform import Rotation

from atlas.readers.checks import check_metric_scale
from atlas.readers.colmap import ColmapText, quat_to_rot
from atlas.readers.detect import detect_format, open_scene
from atlas.readers.nerfstudio import TransformsJson
from atlas.readers.posed_images import PosedImagesFolder

W, H = 64, 48
# Intrinsics in this package's convention (top-left pixel centre at (0, 0)).
K = np.array([[50.0, 0.0, 31.0], [0.0, 52.0, 24.0], [0.0, 0.0, 1.0]])
FLIP = np.diag([1.0, -1.0, -1.0, 1.0])


def known_poses(n: int = 4, scale: float = 1.0) -> np.ndarray:
    """(n, 4, 4) OpenCV camera-to-world poses a few centimetres apart (times ``scale``)."""
    rng = np.random.default_rng(0)
    poses = np.tile(np.eye(4), (n, 1, 1))
    angles = rng.uniform(-0.5, 0.5, size=(n, 3))
    poses[:, :3, :3] = Rotation.from_euler("xyz", angles).as_matrix()
    poses[:, :3, 3] = (np.array([1.0, 2.0, 1.5]) + 0.05 * np.arange(n)[:, None]) * scale
    return poses


def image(i: int, size: tuple[int, int] = (W, H)) -> np.ndarray:
    """(h, w, 3) uint8 test image, different for every ``i``."""
    w, h = size
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    return np.stack([u * 3 % 256, v * 5 % 256, np.full_like(u, 40 * i)], axis=-1).astype(np.uint8)


def depth_mm(i: int) -> np.ndarray:
    """(H, W) uint16 millimetres, 0 in the top row (missing)."""
    d = np.full((H, W), 1000 + 100 * i, dtype=np.uint16)
    d[0] = 0
    return d


def save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def write_posed(folder: Path, names: list[str], poses: np.ndarray, depth: bool = False) -> Path:
    for i, (name, pose) in enumerate(zip(names, poses, strict=True)):
        save(image(i), folder / "images" / f"{name}.png")
        (folder / "poses").mkdir(exist_ok=True)
        np.savetxt(folder / "poses" / f"{name}.txt", pose, fmt="%.17g")
        if depth:
            save(depth_mm(i), folder / "depth" / f"{name}.png")
    np.savetxt(folder / "intrinsics.txt", K, fmt="%.17g")
    return folder


def write_transforms(folder: Path, poses: np.ndarray, **extra) -> Path:
    """Frames listed in reverse order, the odd ones without extension."""
    frames = []
    for i, pose in enumerate(poses):
        save(image(i), folder / "images" / f"frame_{i:05d}.png")
        path = f"images/frame_{i:05d}" + ("" if i % 2 else ".png")
        frames.append({"file_path": path, "transform_matrix": (pose @ FLIP).tolist()})
    meta = {
        "fl_x": K[0, 0],
        "fl_y": K[1, 1],
        "cx": K[0, 2] + 0.5,
        "cy": K[1, 2] + 0.5,
        "w": W,
        "h": H,
        "frames": frames[::-1],
        **extra,
    }
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder


def colmap_lines(poses: np.ndarray, names: list[str], camera_ids: list[int]) -> str:
    """images.txt text for camera-to-world ``poses`` (world-to-camera quaternions)."""
    lines = ["# Image list with two lines of data per image:", "# IMAGE_ID, QW, ..."]
    for i, (pose, name, cam) in enumerate(zip(poses, names, camera_ids, strict=True)):
        R_wc = pose[:3, :3].T
        t = -R_wc @ pose[:3, 3]
        x, y, z, w = Rotation.from_matrix(R_wc).as_quat()
        if i % 2:  # COLMAP's sign ambiguity: -q is the same rotation
            x, y, z, w = -x, -y, -z, -w
        values = " ".join(f"{v:.17g}" for v in (w, x, y, z, *t))
        lines.append(f"{i + 1} {values} {cam} {name}")
        lines.append("" if i % 2 else "10.5 20.5 -1 30.0 12.0 7")
    return "\n".join(lines) + "\n"


def write_colmap(
    folder: Path,
    poses: np.ndarray,
    sparse: bool = True,
    cameras: str | None = None,
    camera_ids: list[int] | None = None,
) -> Path:
    names = [f"img{i + 1}.png" for i in range(len(poses))][::-1]  # listed out of order
    for i, name in enumerate(names):
        save(image(len(poses) - 1 - i), folder / "images" / name)
    model = folder / "sparse" / "0" if sparse else folder
    model.mkdir(parents=True, exist_ok=True)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5
    cameras = cameras or f"# Camera list\n1 PINHOLE {W} {H} {fx} {fy} {cx} {cy}\n"
    (model / "cameras.txt").write_text(cameras)
    ids = camera_ids or [1] * len(poses)
    (model / "images.txt").write_text(colmap_lines(poses[::-1], names, ids))
    (model / "points3D.txt").write_text("# 3D point list\n1 0.1 0.2 0.3 255 0 0 0.5 1 0\n")
    return folder


# ------------------------------------------------------------------ posed images


def test_posed_images_round_trip(tmp_path):
    poses = known_poses()
    names = ["f1", "f10", "f2", "f9"]  # natural order: f1, f2, f9, f10
    folder = write_posed(tmp_path / "capture", names, poses, depth=True)
    reader = open_scene(folder)
    assert isinstance(reader, PosedImagesFolder)
    order = [0, 2, 3, 1]
    np.testing.assert_allclose(reader.poses, poses[order], atol=1e-6)
    np.testing.assert_allclose(reader.K_color, K)
    assert reader.color_size == (W, H) and reader.depth_size == (W, H)
    np.testing.assert_allclose(reader.K_depth, K)
    assert reader.frame_ids == [0, 1, 2, 3]
    assert [Path(reader.frame_files(i)[0]).stem for i in range(4)] == ["f1", "f2", "f9", "f10"]
    frame = reader.read_frame(1)
    np.testing.assert_array_equal(frame.color, image(2))
    assert frame.depth.dtype == np.float32
    np.testing.assert_allclose(frame.depth[1:], 1.2)
    assert (frame.depth[0] == 0).all()


def test_posed_images_numeric_names_and_no_depth(tmp_path):
    folder = write_posed(tmp_path / "s", ["000010", "000002"], known_poses(2))
    reader = PosedImagesFolder(folder)
    assert reader.frame_ids == [2, 10]
    assert reader.K_depth is None and reader.depth_size is None
    assert reader.read_frame(0).depth is None


def test_posed_images_missing_pose_names_image(tmp_path):
    folder = write_posed(tmp_path / "s", ["a", "b"], known_poses(2))
    (folder / "poses" / "b.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"b\.txt.*images/b\.png"):
        PosedImagesFolder(folder)


def test_posed_images_bad_matrix_and_mixed_sizes(tmp_path):
    folder = write_posed(tmp_path / "s", ["a", "b"], known_poses(2))
    (folder / "poses" / "a.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(ValueError, match=r"a\.txt: expected a 4x4 matrix"):
        _ = PosedImagesFolder(folder).poses
    save(image(0, (32, 24)), folder / "images" / "b.png")
    with pytest.raises(ValueError, match=r"b\.png: colour image is 32x24 but .*a\.png is 64x48"):
        PosedImagesFolder(folder)


# ------------------------------------------------------------------ transforms.json


def test_transforms_round_trip(tmp_path):
    poses = known_poses()
    folder = write_transforms(tmp_path / "ns", poses)
    reader = open_scene(folder / "transforms.json")
    assert isinstance(reader, TransformsJson)
    assert reader.name == "ns"
    np.testing.assert_allclose(reader.poses, poses, atol=1e-6)  # sorted back by file name
    np.testing.assert_allclose(reader.K_color, K)  # cx, cy shifted by -0.5
    assert reader.color_size == (W, H) and reader.depth_size is None
    assert reader.frame_ids == [0, 1, 2, 3]
    for i in range(4):
        np.testing.assert_array_equal(reader.read_frame(i).color, image(i))
    assert isinstance(open_scene(folder), TransformsJson)


def test_transforms_camera_angle_depth_and_invalid_pose(tmp_path):
    poses = known_poses(3)
    folder = write_transforms(tmp_path / "ngp", poses)
    meta = json.loads((folder / "transforms.json").read_text())
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        del meta[key]
    meta["camera_angle_x"] = 2 * np.arctan(0.5 * W / 40.0)  # fx = 40
    meta["integer_depth_scale"] = 0.0005
    for f in meta["frames"]:
        i = int(Path(f["file_path"]).stem[-5:])
        f["depth_file_path"] = f"depth/{i}.png"
        save(depth_mm(i), folder / "depth" / f"{i}.png")
    meta["frames"][0]["transform_matrix"] = None  # frame 2 (listed first)
    meta["frames"][1]["transform_matrix"][0][0] = float("nan")  # frame 1
    (folder / "transforms.json").write_text(json.dumps(meta))
    reader = TransformsJson(folder)
    np.testing.assert_allclose(reader.K_color, [[40, 0, 31.5], [0, 40, 23.5], [0, 0, 1]])
    assert reader.valid.tolist() == [True, False, False]
    assert np.isnan(reader.poses[2]).all()
    np.testing.assert_allclose(reader.poses[0], poses[0], atol=1e-6)
    frame = reader.read_frame(0)
    np.testing.assert_allclose(frame.depth[1:], 0.5)  # 1000 units of 0.5 mm
    np.testing.assert_allclose(frame.K_depth, reader.K_color)


def test_transforms_errors(tmp_path):
    folder = write_transforms(tmp_path / "ns", known_poses(2))
    (folder / "images" / "frame_00001.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"images/frame_00001: image not found"):
        TransformsJson(folder)
    folder = write_transforms(tmp_path / "ns2", known_poses(2))
    meta = json.loads((folder / "transforms.json").read_text())
    meta["frames"][0]["fl_x"] = 60.0
    (folder / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"transforms\.json frame 0: intrinsics differ"):
        TransformsJson(folder)
    meta["frames"][0]["transform_matrix"] = [[1, 2], [3, 4]]
    del meta["frames"][0]["fl_x"]
    (folder / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"frame 0: transform_matrix must be 4x4"):
        _ = TransformsJson(folder).poses


def test_transforms_distortion_warns(tmp_path):
    folder = write_transforms(tmp_path / "ns", known_poses(2), k1=0.1, camera_model="OPENCV")
    with pytest.warns(UserWarning, match="distortion parameters are ignored"):
        TransformsJson(folder)


# ------------------------------------------------------------------ COLMAP


def test_quat_to_rot_known_rotation():
    c = np.cos(np.pi / 4)
    R = quat_to_rot(np.array([c, 0.0, 0.0, c]))  # 90 degrees about z
    np.testing.assert_allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


@pytest.mark.parametrize("sparse", [True, False])
def test_colmap_round_trip(tmp_path, sparse):
    poses = known_poses()
    folder = write_colmap(tmp_path / "sfm", poses, sparse=sparse)
    assert detect_format(folder) == "colmap"
    reader = open_scene(folder)
    assert isinstance(reader, ColmapText)
    np.testing.assert_allclose(reader.poses, poses, atol=1e-6)
    np.testing.assert_allclose(reader.K_color, K)  # COLMAP cx, cy minus 0.5
    assert reader.color_size == (W, H)
    assert reader.frame_ids == [0, 1, 2, 3]
    assert [p.name for p in (reader.frame_files(i)[0] for i in range(4))] == [
        "img1.png",
        "img2.png",
        "img3.png",
        "img4.png",
    ]
    for i in range(4):
        np.testing.assert_array_equal(reader.read_frame(i).color, image(i))


def test_colmap_distortion_and_simple_models(tmp_path):
    fx, cx, cy = K[0, 0], K[0, 2] + 0.5, K[1, 2] + 0.5
    cams = f"1 SIMPLE_RADIAL {W} {H} {fx} {cx} {cy} 0.01\n"
    folder = write_colmap(tmp_path / "a", known_poses(2), cameras=cams)
    with pytest.warns(UserWarning, match="distortion is ignored"):
        reader = ColmapText(folder)
    np.testing.assert_allclose(reader.K_color, [[fx, 0, K[0, 2]], [0, fx, K[1, 2]], [0, 0, 1]])
    cams = f"1 SIMPLE_PINHOLE {W} {H} {fx} {cx} {cy}\n2 SIMPLE_PINHOLE {W} {H} {fx} {cx} {cy}\n"
    folder = write_colmap(tmp_path / "b", known_poses(2), cameras=cams, camera_ids=[1, 2])
    assert ColmapText(folder).K_color[1, 1] == fx  # equal cameras are fine


def test_colmap_errors(tmp_path):
    cams = f"1 OPENCV_FISHEYE {W} {H} 50 50 32 24 0 0 0 0\n"
    with pytest.raises(ValueError, match="camera model OPENCV_FISHEYE is not supported"):
        ColmapText(write_colmap(tmp_path / "a", known_poses(2), cameras=cams))
    cams = f"1 PINHOLE {W} {H} 50 50 32 24\n2 PINHOLE 32 24 25 25 16 12\n"
    folder = write_colmap(tmp_path / "b", known_poses(2), cameras=cams, camera_ids=[1, 2])
    with pytest.raises(ValueError, match=r"cameras 2 \(32x24\) and 1 \(64x48\) differ"):
        ColmapText(folder)
    cams = f"1 PINHOLE {W} {H} 50 50 32 24\n2 PINHOLE {W} {H} 60 60 32 24\n"
    folder = write_colmap(tmp_path / "c", known_poses(2), cameras=cams, camera_ids=[1, 2])
    with pytest.raises(ValueError, match="different intrinsics"):
        ColmapText(folder)
    folder = write_colmap(tmp_path / "d", known_poses(2))
    for name in ("cameras", "images"):
        (folder / "sparse" / "0" / f"{name}.txt").rename(folder / "sparse" / "0" / f"{name}.bin")
    with pytest.raises(ValueError, match="model_converter"):
        ColmapText(folder)


# ------------------------------------------------------------------ detection, scale


def test_detect_lists_new_formats(tmp_path):
    with pytest.raises(ValueError, match="transforms.json.*COLMAP"):
        open_scene(tmp_path)
    with pytest.raises(ValueError, match="posed images: images/, poses/"):
        detect_format(tmp_path)


def test_check_metric_scale(tmp_path):
    folder = write_posed(tmp_path / "m", list("abcdef"), known_poses(6))
    assert check_metric_scale(PosedImagesFolder(folder)) is None
    folder = write_posed(tmp_path / "mm", list("abcdef"), known_poses(6, scale=1000.0))
    message = check_metric_scale(PosedImagesFolder(folder))
    assert message is not None and "not be in metres" in message
    tiny = write_posed(tmp_path / "km", list("abcdef"), known_poses(6, scale=0.001))
    assert "span only" in check_metric_scale(PosedImagesFolder(tiny))
