"""Model inference: tiling, translation, frame choice, and the bundled model end to end."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import VoxelGrid, extract_mesh, read_ply
from atlas.model.checkpoint import save_model
from atlas.model.config import ModelConfig, build_model
from atlas.model.contract import InputContract, make_contract
from atlas.model.inference import (
    ModelInferenceConfig,
    chosen_frames,
    reconstruct_volume,
    rotation_averaged,
    tiles,
)
from atlas.pipeline.methods import reconstruct_model
from atlas.pipeline.outputs import save_reconstruction
from atlas.readers.alignment import AlignedReader, Alignment
from atlas.readers.frames import SubsetReader
from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import prior_stereo_config, stereo_depths
from atlas.synthetic.generate import SceneConfig, write_scene
from tests.conftest import run_main

ROOT = Path(__file__).resolve().parents[1]
SEVEN_SCENES = ROOT.parent / "shared" / "data" / "7scenes-dev"
TINY = {
    "backbone": {"depth": 18, "width": 8, "out_channels": 8},
    "net": {"channels": [8, 16, 32]},
    "voxel_sizes": [0.08, 0.16, 0.32],
}


@pytest.fixture(scope="module")
def scene(room_24) -> ScanNetFolder:
    return room_24


def make_tiny_model(color_variance: bool = False):
    torch.manual_seed(0)
    cfg = ModelConfig.from_dict({**TINY, "net": {**TINY["net"], "color_variance": color_variance}})
    net = build_model(cfg).eval()
    # Non-trivial BatchNorm statistics, as a trained network has.
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net, cfg


CPU = "cpu"
DEFAULTS = ModelInferenceConfig(evidence=False)  # the tests here are about the network


def contract(cfg: ModelConfig) -> InputContract:
    """The tests' models' input: the model_prior preset's prior and 80x60 images."""
    return make_contract(cfg, prior_stereo_config(), (80, 60))


@pytest.fixture(scope="module")
def prior():
    """``stereo_depths`` remembered per camera path, passed to ``reconstruct_volume`` as
    ``prior_depths``: the tests here compare volumes of one scene, not its stereo."""
    seen = {}

    def depths(reader, cfg, device, refined_scale):
        key = (reader.name, reader.poses.tobytes(), repr(cfg), refined_scale)
        if key not in seen:
            seen[key] = stereo_depths(reader, cfg, device, refined_scale)
        return seen[key]

    return depths


@pytest.fixture(scope="module")
def tiny_model():
    return make_tiny_model()


def test_tiles_cover_the_volume_once():
    shape = (52, 36, 20)
    covered = np.zeros(shape[:2], int)
    parts = tiles(shape, 24 * 24 * 20, 8)
    assert len(parts) > 4
    for cx, cy, mx, my in parts:
        covered[cx, cy] += 1
        assert mx.start <= cx.start and mx.stop >= cx.stop and my.start <= cy.start
        assert all(s % 4 == 0 for s in (cx.start, cy.start, mx.start, my.start))
    assert (covered == 1).all()


@pytest.mark.parametrize("color_variance", [False, True])
def test_chunked_equals_whole(scene, prior, color_variance):
    net, cfg = make_tiny_model(color_variance)
    pred = reconstruct_volume(scene, net, cfg, DEFAULTS, contract(cfg), CPU, prior)
    assert pred.grid is pred.model_grid and pred.facts["evidence"] == "off"
    whole = pred.grid
    X, Y, Z = whole.shape
    small = ModelInferenceConfig(
        chunk_voxels=(X // 2) * (Y // 2) * Z, chunk_margin=16, evidence=False
    )
    assert len(tiles(whole.shape, small.chunk_voxels, 16)) >= 4
    chunked = reconstruct_volume(scene, net, cfg, small, contract(cfg), CPU, prior).model_grid
    seen = whole.observed & chunked.observed
    assert (whole.observed == chunked.observed).mean() > 0.999
    diff = np.abs(whole.tsdf - chunked.tsdf)[seen]
    assert diff.mean() < 1e-3 and diff.max() < 0.1, (diff.mean(), diff.max())


def test_translation_by_whole_voxels_translates_the_result(scene, tiny_model, prior):
    net, cfg = tiny_model
    shift = np.array([0.32, -0.64, 0.32])  # whole coarsest (32 cm) voxels
    T = np.eye(4)
    T[:3, 3] = shift
    moved = AlignedReader(scene, Alignment(T, "test"))
    a = reconstruct_volume(scene, net, cfg, DEFAULTS, contract(cfg), CPU, prior).model_grid
    b = reconstruct_volume(moved, net, cfg, DEFAULTS, contract(cfg), CPU, prior).model_grid
    np.testing.assert_allclose(b.origin, a.origin + shift, atol=1e-9)
    assert a.shape == b.shape
    assert (a.observed == b.observed).mean() > 0.999
    both = a.observed & b.observed
    assert np.abs(a.tsdf - b.tsdf)[both].max() < 0.02


@pytest.fixture(scope="module")
def semantic_model():
    """The tiny network with a 5-class semantic head and no stereo prior (the fastest),
    random weights; its observed head says every voxel some view saw would be observed,
    so labels and a mesh exist."""
    torch.manual_seed(2)
    net_cfg = {**TINY["net"], "semantic_classes": 5, "prior": "none"}
    cfg = ModelConfig.from_dict({**TINY, "net": net_cfg})
    net = build_model(cfg).eval()
    with torch.no_grad():
        net.net.observed_head.bias.fill_(10.0)
    return net, cfg


def test_rotation_averaging_is_equivariant(semantic_model):
    """Averaged over four quarter turns, turning the input turns every output the same
    way (each pass is turned back correctly); one rotation is the plain network."""
    net, _ = semantic_model
    torch.manual_seed(1)
    stem = next(m for m in net.net.modules() if isinstance(m, torch.nn.Conv3d))
    x = torch.randn(1, stem.in_channels, 16, 24, 8)
    with torch.no_grad():
        plain = net.net(x)[0]
        tsdf1, logits1, sem1 = rotation_averaged(net, x, 1)
        tsdf4, logits4, sem4 = rotation_averaged(net, x, 4)
        turned = rotation_averaged(net, torch.rot90(x, 1, dims=(2, 3)), 4)
    assert torch.equal(tsdf1, plain.tsdf[0, 0]) and torch.equal(logits1, plain.observed[0, 0])
    assert torch.equal(sem1, plain.semantic[0]) and sem4.shape == (5, 16, 24, 8)
    dims_of = ((0, 1), (0, 1), (1, 2))
    for out, ref, dims in zip(turned, (tsdf4, logits4, sem4), dims_of, strict=True):
        torch.testing.assert_close(out, torch.rot90(ref, 1, dims=dims), atol=1e-5, rtol=0)
    assert (tsdf4 - tsdf1).abs().max() > 1e-3  # the turns do differ
    with pytest.raises(ValueError, match="rotations"):
        rotation_averaged(net, x, 3)


def test_semantic_labels_are_tiled_and_saved(scene, semantic_model, prior, tmp_path):
    """A model with a semantic head labels every voxel (the argmax of its head, the same
    tiled or whole) and every mesh vertex; both are saved in semantics.npz."""
    net, cfg = semantic_model
    whole = reconstruct_volume(scene, net, cfg, DEFAULTS, contract(cfg), CPU, prior)
    X, Y, Z = whole.grid.shape
    assert whole.labels.shape == (X, Y, Z) and set(np.unique(whole.labels)) <= set(range(5))
    assert len(np.unique(whole.labels[whole.grid.observed])) > 1
    small = ModelInferenceConfig(chunk_voxels=(X // 2) * (Y // 2) * Z, chunk_margin=16)
    chunked = reconstruct_volume(scene, net, cfg, small, contract(cfg), CPU, prior)
    observed = whole.grid.observed
    assert (chunked.labels[observed] == whole.labels[observed]).mean() > 0.999

    path = save_model(net, cfg, tmp_path / "semantic.pt", contract(cfg))
    rec = reconstruct_model(scene, path)
    assert rec.summary["semantic_classes"] == 5
    save_reconstruction(rec, tmp_path / "out")
    with np.load(tmp_path / "out" / "semantics.npz") as f:
        voxels, vertices = f["voxels"], f["vertices"]
    grid = rec.grid
    np.testing.assert_array_equal(voxels[~grid.observed], -1)
    assert len(vertices) == len(rec.mesh.vertices) > 0
    ijk = np.rint((rec.mesh.vertices - grid.origin) / grid.voxel_size).astype(int)
    np.testing.assert_array_equal(vertices, whole.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]])


def test_frame_choice(scene):
    assert len(chosen_frames(scene, ModelInferenceConfig(frame_stride=5))) == 5
    few = chosen_frames(scene, ModelInferenceConfig(keyframe_translation=0.3))
    assert 1 < len(few) < len(scene)
    with pytest.raises(ValueError, match="frame_stride"):
        chosen_frames(scene, ModelInferenceConfig(frame_stride=0))


def test_single_frame_is_reported_not_invented(scene):
    """One frame gives no stereo prior; the bundled model, trained always with one, then
    finds little or no surface. That is reported in the summary, and whatever it finds
    lies in front of the camera, inside its view. (The inference issue asks for a
    surface here: not met by this model; see the model card.)"""
    one = SubsetReader(scene, [0])
    rec = reconstruct_model(one)
    assert rec.summary["frames_used"] == 1
    assert "two frames" in rec.summary["stereo"]["warning"]
    if rec.mesh.is_empty:
        assert "empty mesh" in rec.summary["warning"]
        return
    pose, K = one.poses[0], one.K_color
    cam = (rec.mesh.vertices - pose[:3, 3]) @ pose[:3, :3]
    assert (cam[:, 2] > 0.1).mean() > 0.99
    u = cam[:, 0] / cam[:, 2] * K[0, 0] + K[0, 2]
    v = cam[:, 1] / cam[:, 2] * K[1, 1] + K[1, 2]
    w, h = one.color_size
    margin = 0.1 * w  # a voxel's reach beyond the image border
    inside = (u > -margin) & (u < w + margin) & (v > -margin) & (v < h + margin)
    assert inside.mean() > 0.95


def test_bundled_model_beats_its_stereo_prior_on_an_unseen_room(scene):
    rec = reconstruct_model(scene)
    gt = read_ply(scene.gt_mesh_path)
    model = mesh_metrics(rec.mesh, gt, 0.05)["fscore"]
    prior = mesh_metrics(extract_mesh(rec.prior), gt, 0.05)["fscore"]
    assert model > prior + 0.05 and model > 0.25, (model, prior)


@pytest.mark.skipif(not SEVEN_SCENES.is_dir(), reason="../shared/data/7scenes-dev is absent")
def test_infer_cli_on_raw_7scenes(tmp_path, capsys):
    out = tmp_path / "out"
    overrides = [f"scene={SEVEN_SCENES}", f"out_dir={out}", "model.frame_stride=20"]
    code, _, lines = run_main("infer", overrides, capsys)
    assert code == 0, lines
    summary = json.loads((out / SEVEN_SCENES.name / "summary.json").read_text())
    assert summary["method"] == "model" and summary["frames_used"] == 25
    assert summary["alignment"]["method"] != "none"
    assert summary["mesh_vertices"] > 1000
    for name in ("mesh.ply", "tsdf.npz", "preview.png"):
        assert (out / SEVEN_SCENES.name / name).is_file()


def test_views_touching_box_culls_only_views_that_cannot_see_it():
    from atlas.model.inference import views_touching_box

    K = torch.tensor([[50.0, 0, 39.5], [0, 50, 29.5], [0, 0, 1]])
    at_origin = torch.cat([K, torch.zeros(3, 1)], 1)  # camera at 0 looking down +z
    lo, hi = torch.tensor([-0.5, -0.5, 2.0]), torch.tensor([0.5, 0.5, 3.0])
    shifted = at_origin.clone()
    shifted[:, 3] = K @ torch.tensor([-20.0, 0, 0])  # box far to the image's left
    straddling = at_origin.clone()
    straddling[:, 3] = K @ torch.tensor([0.0, 0, -2.5])  # camera inside the box's depth
    behind = at_origin.clone()
    behind[:, 3] = K @ torch.tensor([0.0, 0, -5.0])
    keep = views_touching_box(torch.stack([at_origin, shifted, straddling, behind]), lo, hi, 80, 60)
    assert keep.tolist() == [True, False, True, False]


def test_killed_multi_scene_inference_resumes_without_redoing(tmp_path, capsys):
    """SIGKILL while ``infer.py`` works through two scenes: finished scenes are whole
    and kept on re-run (not redone), no partial scene is visible, and every result
    equals an uninterrupted run's."""
    names = [f"scene{i:04d}_00" for i in range(2)]
    raw = [
        write_scene(
            tmp_path / "raw" / n, SceneConfig(seed=30 + i, n_frames=12, width=80, height=60)
        )
        for i, n in enumerate(names)
    ]
    # A 2 m depth cut and meshing on the grid itself: small volumes, the same code path.
    args = ["scenes=[" + ",".join(str(p) for p in raw) + "]", "model.max_depth=2.0"]
    args.append("model.mesh_upsample=1")

    def command(out: Path) -> list[str]:
        return [sys.executable, "infer.py", *args, f"out_dir={out}", f"hydra.run.dir={out}/h"]

    # The uninterrupted run and the re-run in this process; the killed one in its own.
    whole = tmp_path / "whole"
    code, _, lines = run_main("infer", [*args, f"out_dir={whole}"], capsys)
    assert code == 0, lines

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        command(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if (out / names[0] / "summary.json").is_file():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = {n: (out / n / "mesh.ply").stat().st_mtime_ns for n in names if (out / n).is_dir()}
    assert names[0] in finished and len(finished) < 2, finished  # killed mid-run
    visible = [p for p in out.iterdir() if not p.name.startswith(".") and p.name != "h"]
    assert all((p / "summary.json").is_file() for p in visible)  # no partial scene

    code, again, lines = run_main("infer", [*args, f"out_dir={out}"], capsys)
    assert code == 0, lines
    for n in finished:
        assert f"{n}: done already" in again
        assert (out / n / "mesh.ply").stat().st_mtime_ns == finished[n]  # not redone
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no leftovers
    for n in names:
        # equal up to float noise: two processes can differ in the last bits of the
        # TSDF (seen: 9e-5), which moves marching cubes' vertices a little
        a, b = read_ply(whole / n / "mesh.ply"), read_ply(out / n / "mesh.ply")
        assert len(a.vertices) > 100
        ta, tb = VoxelGrid.load(whole / n / "tsdf.npz"), VoxelGrid.load(out / n / "tsdf.npz")
        np.testing.assert_allclose(tb.tsdf, ta.tsdf, atol=1e-3)
        from scipy.spatial import cKDTree

        assert cKDTree(a.vertices).query(b.vertices)[0].max() < 2e-3
        assert cKDTree(b.vertices).query(a.vertices)[0].max() < 2e-3
