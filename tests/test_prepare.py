"""Scene preparation: ground truth quality, multi-scale alignment, bad poses, resuming,
sharding, and real 7-Scenes frames aligned Z-up."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import VoxelGrid, extract_mesh, read_ply
from atlas.preparation.prepare import PrepareSettings, prepare_dataset, prepare_scene, shard_of
from atlas.readers.datasets import ScanNetDataset, SevenScenesDataset
from atlas.readers.prepared import INDEX_VERSION, frame_path, is_prepared, load_index, tsdf_name
from atlas.readers.scannet import ScanNetFolder
from atlas.synthetic.generate import SceneConfig, generate_dataset
from tests.conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    """Three 30-frame 160x120 synthetic scenes."""
    root = tmp_path_factory.mktemp("tiny")
    generate_dataset(
        root, 3, SceneConfig(seed=20, n_frames=30, width=160, height=120), progress=False
    )
    return root


def test_prepared_ground_truth_matches_scene_mesh(small_dataset, small_prepared):
    reader = ScanNetFolder(small_dataset / "scans" / SCENE)
    root, summary = small_prepared
    out = root / SCENE
    assert summary["frames"] == 60 and is_prepared(out)
    index = load_index(out)
    assert index.version == INDEX_VERSION and index.alignment["method"] == "none"
    assert sorted(index.tsdf) == ["0.04", "0.08", "0.16"]
    assert Path(index.frames[5].color).is_file()
    fine = VoxelGrid.load(out / tsdf_name(0.04))
    metrics = mesh_metrics(extract_mesh(fine), read_ply(reader.gt_mesh_path))
    assert metrics["fscore"] >= 0.95, metrics
    # Frustum-mode fusion observes free space far from surfaces, too.
    assert (fine.observed & (fine.tsdf == 1)).sum() > 2 * (np.abs(fine.tsdf) < 0.5).sum()
    for coarse_size, k in ((0.08, 2), (0.16, 4)):
        coarse = VoxelGrid.load(out / tsdf_name(coarse_size))
        np.testing.assert_allclose(coarse.origin, fine.origin)  # voxel (0,0,0) shared
        assert all(abs(c * k - f) < k for c, f in zip(coarse.shape, fine.shape, strict=True))
        # Voxel i of the coarse grid is voxel k*i of the fine grid: same side of surfaces.
        both = (
            coarse.observed
            & fine.observed[::k, ::k, ::k][: coarse.shape[0], : coarse.shape[1], : coarse.shape[2]]
        )
        fine_sub = fine.tsdf[::k, ::k, ::k][: coarse.shape[0], : coarse.shape[1], : coarse.shape[2]]
        far = both & (np.abs(fine_sub) > 0.5)
        assert np.mean(np.sign(coarse.tsdf[far]) == np.sign(fine_sub[far])) > 0.97
        coarse_mesh = extract_mesh(coarse)
        m = mesh_metrics(coarse_mesh, extract_mesh(fine), threshold=coarse_size)
        assert m["prec"] > 0.9, m


def test_non_finite_poses_are_skipped_exactly(tiny_dataset, tmp_path):
    scene = tmp_path / "scans" / SCENE
    shutil.copytree(tiny_dataset / "scans" / SCENE, scene)
    bad = [3, 4, 17]
    for i in bad:
        (scene / "pose" / f"{i}.txt").write_text("\n".join(["-inf -inf -inf -inf"] * 4))
    summary = prepare_scene(
        ScanNetFolder(scene), tmp_path / "out", PrepareSettings(), "scannet", "none"
    )
    index = load_index(tmp_path / "out" / SCENE)
    assert summary["skipped_frames"] == 3 and index.frames_skipped == 3
    assert [f.frame_id for f in index.frames if not f.valid] == bad
    assert all(f.pose is not None for f in index.frames if f.valid)


def test_scene_without_valid_frames_fails_cleanly(tiny_dataset, tmp_path):
    scene = tmp_path / "scans" / SCENE
    shutil.copytree(tiny_dataset / "scans" / SCENE, scene)
    for p in (scene / "pose").iterdir():
        p.write_text("\n".join(["nan nan nan nan"] * 4))
    summary = prepare_dataset(ScanNetDataset(str(tmp_path)), tmp_path / "out", PrepareSettings())
    assert list(summary.failed) == [SCENE] and "finite pose" in summary.failed[SCENE]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_shards_cover_every_scene_once(tiny_dataset, tmp_path):
    names = [f"scene{i:04d}_00" for i in range(7)]
    parts = [shard_of(names, i, 3) for i in range(3)]
    assert sorted(n for part in parts for n in part) == names
    dataset = ScanNetDataset(str(tiny_dataset))
    s0 = prepare_dataset(dataset, tmp_path, PrepareSettings(), shard=0, num_shards=2)
    s1 = prepare_dataset(dataset, tmp_path, PrepareSettings(), shard=1, num_shards=2)
    assert sorted(s0.done + s1.done) == [f"scene{i:04d}_00" for i in range(3)]
    assert not set(s0.done) & set(s1.done)
    again = prepare_dataset(dataset, tmp_path, PrepareSettings(), shard=0, num_shards=1)
    assert again.done == [] and len(again.skipped) == 3


def test_killed_preparation_resumes_without_redoing(tiny_dataset, tmp_path):
    out = tmp_path / "prepared"
    cmd = [
        sys.executable,
        str(ROOT / "prepare.py"),
        "data=synthetic",
        f"data.raw.root={tiny_dataset}",
        f"out_dir={out}",
        "hydra.run.dir=" + str(tmp_path),
    ]
    env = {**os.environ, "ATLAS_COMPILE": "0"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while not is_prepared(out / SCENE) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert is_prepared(out / SCENE)
    finished = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if is_prepared(p)}
    # Every visible scene folder is complete; partial work is only in hidden folders.
    visible = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert all(is_prepared(p) for p in visible)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"prepared {3 - len(finished)}, already done {len(finished)}" in result.stdout
    for name, mtime in finished.items():
        assert (out / name).stat().st_mtime_ns == mtime  # not redone
    assert sorted(p.name for p in out.iterdir()) == [f"scene{i:04d}_00" for i in range(3)]


def test_config_typo_is_an_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "prepare.py"), "max_detph=2", f"hydra.run.dir={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0 and "max_detph" in result.stderr


@pytest.mark.skipif(
    not (SHARED_DATA / "7scenes-dev").is_dir(), reason="../shared/data/7scenes-dev not present"
)
def test_seven_scenes_prepare_gravity_aligned(tmp_path):
    dataset = SevenScenesDataset(str(SHARED_DATA / "7scenes-dev"))
    summary = prepare_dataset(dataset, tmp_path, PrepareSettings())
    assert summary.done == ["7scenes-dev"]
    out = tmp_path / "7scenes-dev"
    index = load_index(out)
    assert index.alignment["method"] == "floor plane"
    mesh = read_ply(out / "mesh.ply")
    normals, areas = mesh.face_normals(), mesh.face_areas()
    centres = mesh.vertices[mesh.faces].mean(axis=1)
    # Independent check on the fused mesh: faces at floor height face up, within 5 deg.
    floor = (np.abs(centres[:, 2]) < 0.05) & (normals[:, 2] > 0.5)
    assert areas[floor].sum() > 1.0  # square metres of floor
    up = (normals[floor] * areas[floor, None]).sum(0)
    angle = np.degrees(np.arccos(up[2] / np.linalg.norm(up)))
    assert angle < 5.0, angle
    assert centres[:, 2].min() > -0.15  # nothing far below the floor
    assert (out / "preview.png").stat().st_size > 10000  # the picture of the kitchen


def test_corrupt_frame_fails_or_is_skipped_when_asked(tiny_dataset, tmp_path):
    scene = tmp_path / "scans" / SCENE
    shutil.copytree(tiny_dataset / "scans" / SCENE, scene)
    (scene / "depth" / "6.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(ValueError, match=r"depth/6\.png: unreadable depth image"):
        prepare_scene(ScanNetFolder(scene), tmp_path / "out", PrepareSettings(), "scannet", "none")
    assert not (tmp_path / "out" / SCENE).exists()
    summary = prepare_scene(
        ScanNetFolder(scene),
        tmp_path / "out",
        PrepareSettings(skip_bad_frames=True),
        "scannet",
        "none",
    )
    assert summary["unreadable_frames"] == 1 and summary["frames"] == 29
    index = load_index(tmp_path / "out" / SCENE)
    assert [f.frame_id for f in index.frames if not f.valid] == [6]


def test_label_map(tmp_path):
    from atlas.readers.scannet import read_label_map

    tsv = tmp_path / "scannetv2-labels.combined.tsv"
    tsv.write_text(
        "id\traw_category\tcategory\tcount\tnyu40id\n1\twall\twall\t8277\t1\n"
        "2\tchair\tchair\t4646\t5\n3\tstuff\tstuff\t1\t\n"
    )
    assert read_label_map(tsv) == {"wall": 1, "chair": 5}
    (tmp_path / "bad.tsv").write_text("a\tb\n1\t2\n")
    with pytest.raises(ValueError, match="bad.tsv: not a ScanNet label map"):
        read_label_map(tmp_path / "bad.tsv")


def test_prepare_from_sens_file(tmp_path):
    """A scene given only as a .sens file is streamed once and its frames extracted."""
    from atlas.synthetic.generate import write_scene

    scene = tmp_path / "raw" / "scans" / SCENE
    write_scene(scene, SceneConfig(seed=4, n_frames=30, width=160, height=120, write_sens=True))
    for sub in ("color", "depth", "pose", "intrinsic"):
        shutil.rmtree(scene / sub)
    summary = prepare_dataset(
        ScanNetDataset(str(tmp_path / "raw")), tmp_path / "out", PrepareSettings()
    )
    assert summary.done == [SCENE], summary.failed
    index = load_index(tmp_path / "out" / SCENE)
    assert index.frames_total == 30
    frame = index.frames[12]
    assert frame.color == "frames/color/12.jpg"
    for recorded in (frame.color, frame.depth):
        assert frame_path(tmp_path / "out" / SCENE, recorded).is_file()


def test_aligned_reader_moves_poses_and_frames(tiny_dataset):
    from atlas.readers.alignment import AlignedReader, estimate_alignment

    reader = ScanNetFolder(tiny_dataset / "scans" / SCENE)
    alignment = estimate_alignment(reader, "-y")  # pretend -y is up
    aligned = AlignedReader(reader, alignment)
    T = alignment.transform
    np.testing.assert_allclose(T[:3, :3] @ [0, -1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(aligned.poses[5], T @ reader.poses[5])
    frames = list(aligned.iter_frames([2, 7]))
    np.testing.assert_allclose(frames[1].pose, T @ reader.poses[7])
    np.testing.assert_array_equal(frames[0].color, reader.read_frame(2).color)


def test_prepared_index_is_typed_and_versioned(tiny_dataset, tmp_path):
    """The index reads back as typed fields; an older index (no version) still loads; a
    newer version, an unknown or missing key, or a wrong type is an error naming the
    file and the key."""
    from atlas.readers.prepared import PreparedIndex

    out = tmp_path / "out"
    prepare_scene(
        ScanNetFolder(tiny_dataset / "scans" / SCENE), out, PrepareSettings(), "scannet", "none"
    )
    path = out / SCENE / "index.json"
    data = json.loads(path.read_text())
    assert data["version"] == INDEX_VERSION
    index = load_index(out / SCENE)
    assert isinstance(index, PreparedIndex) and index.frames[0].frame_id == 0
    assert index.to_json() == data
    legacy = {k: v for k, v in data.items() if k != "version"}
    assert PreparedIndex.from_json(legacy, path).version == 0
    bad = {
        "newer": ({**data, "version": INDEX_VERSION + 1}, f"index version {INDEX_VERSION + 1}"),
        "prior": ({**data, "prior_stereo": "7x7"}, "'prior_stereo' must be an object"),
        "unknown": ({**data, "colour_size": [1, 2]}, "unknown index key 'colour_size'"),
        "missing": ({k: v for k, v in data.items() if k != "K_depth"}, "has no 'K_depth'"),
        "size": ({**data, "color_size": [64, "48"]}, "'color_size' must be [width, height]"),
        "matrix": ({**data, "K_color": [[1, 0], [0, 1]]}, "'K_color' must be a 3x3 matrix"),
    }
    for name, (changed, message) in bad.items():
        with pytest.raises(ValueError, match=re.escape(f"{path}: ")) as err:
            PreparedIndex.from_json(changed, path)
        assert message in str(err.value), name
