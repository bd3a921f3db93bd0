"""Evaluation library: known answers on hand-built meshes, depth metrics, visibility."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atlas.evaluation.config import MissingPred
from atlas.evaluation.depth_metrics import depth_metrics, mesh_depth_metrics
from atlas.evaluation.mesh_metrics import (
    distance_metrics,
    mesh_metrics,
    sample_surface,
    threshold_curves,
    voxel_downsample,
)
from atlas.evaluation.protocols import AtlasProtocol, CulledProtocol, TrimmedProtocol
from atlas.evaluation.report import json_safe, markdown_table, mean_rows
from atlas.evaluation.runner import read_prediction
from atlas.evaluation.tsdf_metrics import tsdf_l1
from atlas.evaluation.views import Views, render_depths
from atlas.evaluation.visibility import VisibilityMask, mesh_visibility_mask
from atlas.geometry import Mesh, VoxelGrid, read_ply, write_ply
from atlas.geometry.render import look_at
from atlas.readers.scannet import ScanNetFolder
from tests.conftest import PINHOLE_K

EMPTY = Mesh(np.zeros((0, 3)), np.zeros((0, 3)))


@pytest.fixture(autouse=True)
def _eager_fusion(monkeypatch):
    """Small volumes fuse faster eagerly than after torch.compile's warm-up."""
    monkeypatch.setenv("ATLAS_COMPILE", "0")


def grid_plane(x: tuple[float, float], y: tuple[float, float], step: float = 0.01) -> Mesh:
    """A triangulated rectangle in the plane z = 0, vertices every ``step`` metres."""
    xs = np.arange(x[0], x[1] + step / 2, step)
    ys = np.arange(y[0], y[1] + step / 2, step)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    vertices = np.stack([gx, gy, np.zeros_like(gx)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(len(xs) - 1), np.arange(len(ys) - 1), indexing="ij")
    v00 = (i * len(ys) + j).ravel()
    v10, v01, v11 = v00 + len(ys), v00 + 1, v00 + len(ys) + 1
    faces = np.concatenate([np.stack([v00, v10, v11], 1), np.stack([v00, v11, v01], 1)])
    return Mesh(vertices, faces)


def wall(x: tuple[float, float], z: tuple[float, float], y: float, step: float = 0.02) -> Mesh:
    """A vertical wall at ``y``, facing -y (a plane mesh rotated upright)."""
    plane = grid_plane(x, z, step)
    v = plane.vertices
    return Mesh(np.stack([v[:, 0], np.full(len(v), y), v[:, 1]], 1), plane.faces[:, ::-1])


@pytest.fixture(scope="module")
def walls() -> tuple[Mesh, Mesh, Views]:
    """Wall A (2 x 2 m at y = 0), wall B (1 x 1 m at y = 1, behind A) and five cameras at
    y = -2 looking +y, from which B is hidden behind A."""
    front = wall((-1, 1), (0, 2), 0.0)
    back = wall((-0.5, 0.5), (0.5, 1.5), 1.0)
    poses = [
        look_at(np.array([x, -2.0, z]), np.array([x, 0.0, z]))
        for x, z in [(0, 1), (-0.2, 0.6), (0.2, 0.6), (-0.2, 1.4), (0.2, 1.4)]
    ]
    return front, back, Views(PINHOLE_K, np.stack(poses), 320, 240)


# ----------------------------------------------------------------- mesh metrics


def test_identical_meshes_are_perfect():
    plane = grid_plane((-1, 1), (-1, 1))
    m = mesh_metrics(plane, plane)
    assert m["acc"] == 0 and m["comp"] == 0 and m["fscore"] == 1


def test_plane_shifted_3cm():
    gt = grid_plane((-1, 1), (-1, 1))
    pred = gt.translated(np.array([0, 0, 0.03]))
    at5 = mesh_metrics(pred, gt, threshold=0.05)
    assert at5["acc"] == pytest.approx(0.03, abs=1e-6)
    assert at5["comp"] == pytest.approx(0.03, abs=1e-6)
    assert at5["chamfer"] == pytest.approx(0.03, abs=1e-6)
    assert at5["fscore"] == 1
    at2 = mesh_metrics(pred, gt, threshold=0.02)
    assert at2["prec"] == 0 and at2["recal"] == 0 and at2["fscore"] == 0


def test_half_prediction_has_half_recall_full_precision():
    gt = grid_plane((-1, 1), (-1, 1))
    pred = grid_plane((-1, 0), (-1, 1))
    m = mesh_metrics(pred, gt)
    assert m["prec"] == 1
    # Half the ground truth, plus the 5 cm strip beside the cut (2.5%).
    assert m["recal"] == pytest.approx(0.5, abs=0.04)
    assert m["acc"] < 0.005 and m["comp"] > 0.2  # cells at the cut average differently


def test_precision_and_recall_are_not_swapped():
    """A prediction with extra geometry far away loses precision, not recall."""
    gt = grid_plane((-1, 0), (-1, 1))
    pred = Mesh.concatenate([gt, gt.translated(np.array([5.0, 0, 0]))])
    m = mesh_metrics(pred, gt)
    assert m["recal"] == 1 and m["prec"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("protocol", [AtlasProtocol(), TrimmedProtocol(), CulledProtocol()])
def test_empty_prediction_scores_zero(protocol, walls):
    front, _, views = walls
    ev = protocol.evaluate(EMPTY, protocol.reference(front, views), views)
    assert ev.metrics["fscore"] == 0 and ev.metrics["prec"] == 0 and ev.metrics["recal"] == 0
    expected_acc = protocol.max_dist if isinstance(protocol, CulledProtocol) else np.inf
    assert ev.metrics["acc"] == expected_acc


def test_threshold_curves_agree_with_metrics():
    rng = np.random.default_rng(0)
    d_pred, d_gt = rng.uniform(0, 0.2, 500), rng.uniform(0, 0.2, 300)
    curves = threshold_curves(d_pred, d_gt, [0.01 * i for i in range(1, 21)])
    assert np.all(np.diff(curves["prec"]) >= 0) and curves["recal"][-1] == 1
    at5 = distance_metrics(d_pred, d_gt, 0.05)
    assert curves["fscore"][4] == pytest.approx(at5["fscore"])
    # Inclusive thresholds count a distance equal to t.
    assert distance_metrics(np.array([0.05]), np.array([0.05]), 0.05)["fscore"] == 0
    assert distance_metrics(np.array([0.05]), np.array([0.05]), 0.05, inclusive=True)["fscore"] == 1


def test_voxel_downsample_orders_cells_and_averages():
    pts = np.array([[0.05, 0, 0], [0.001, 0, 0], [0.003, 0, 0], [0.001, 0.03, 0]])
    np.testing.assert_allclose(
        voxel_downsample(pts, 0.02), [[0.002, 0, 0], [0.001, 0.03, 0], [0.05, 0, 0]]
    )


def test_sample_surface_is_uniform_and_seeded():
    plane = grid_plane((0, 2), (0, 1), step=0.25)
    a = sample_surface(plane, 200_000, seed=0)
    assert a.shape == (200_000, 3)
    np.testing.assert_array_equal(a, sample_surface(plane, 200_000, seed=0))
    assert not np.array_equal(a, sample_surface(plane, 200_000, seed=1))
    assert np.mean(a[:, 0] < 1) == pytest.approx(0.5, abs=0.01)  # area-uniform
    assert a[:, 0].min() >= 0 and a[:, 0].max() <= 2


# ----------------------------------------------------------------- visibility and protocols


def test_culling_mask_excludes_a_hidden_wall(walls, tmp_path):
    front, back, views = walls
    mask = mesh_visibility_mask(Mesh.concatenate([front, back]), views)
    assert mask.contains(front.vertices).mean() > 0.95
    assert not mask.contains(back.vertices).any()
    assert not mask.contains(np.array([[0.0, -2.5, 1.0]])).any()  # behind the cameras
    mask.save(tmp_path / "mask.npz")
    again = VisibilityMask.load(tmp_path / "mask.npz")
    np.testing.assert_array_equal(again.visible, mask.visible)
    with pytest.raises(ValueError, match="not a visibility mask"):
        (tmp_path / "bad.npz").write_bytes(b"junk")
        VisibilityMask.load(tmp_path / "bad.npz")


def test_culled_protocol_ignores_the_hidden_wall(walls):
    front, back, views = walls
    gt = Mesh.concatenate([front, back])
    atlas = AtlasProtocol()
    assert atlas.evaluate(front, atlas.reference(gt, views)).metrics["recal"] < 0.85
    culled = CulledProtocol(n_samples=50_000)
    ref = culled.reference(gt, views)
    m = culled.evaluate(front, ref, views).metrics
    assert m["recal"] == 1 and m["prec"] == 1 and m["fscore"] == 1
    # Predicted geometry in unobserved space is ignored for accuracy and precision.
    extra = culled.evaluate(Mesh.concatenate([front, back.translated([0, 0.5, 0])]), ref, views)
    assert extra.metrics["prec"] == 1
    assert np.isnan(extra.vertex_distance[len(front.vertices) :]).all()


def test_trimmed_protocol_drops_geometry_no_camera_saw(walls):
    front, back, views = walls
    pred = Mesh.concatenate([front, back])
    atlas, trimmed = AtlasProtocol(), TrimmedProtocol()
    assert atlas.evaluate(pred, atlas.reference(front)).metrics["prec"] < 0.85
    ev = trimmed.evaluate(pred, trimmed.reference(front), views)
    assert ev.metrics["prec"] > 0.99 and ev.metrics["recal"] > 0.95
    assert ev.mesh.vertices[:, 1].max() < 0.2  # the hidden wall is gone


def test_protocols_needing_cameras_say_so():
    plane = grid_plane((0, 1), (0, 1))
    with pytest.raises(ValueError, match="needs the scan's cameras"):
        CulledProtocol().reference(plane)
    with pytest.raises(ValueError, match="needs the scan's cameras"):
        TrimmedProtocol().evaluate(plane, TrimmedProtocol().reference(plane))


# ----------------------------------------------------------------- depth and TSDF metrics


def test_depth_metrics_known_answers(walls):
    front, _, views = walls
    gt = next(render_depths(front, views))
    perfect = depth_metrics(gt, gt)
    assert perfect["AbsRel"] == 0 and perfect["RMSE"] == 0 and perfect["LogRMSE"] == 0
    assert perfect["r1"] == 1 and perfect["complete"] == 1
    scaled = depth_metrics(gt * 1.1, gt)
    assert scaled["AbsRel"] == pytest.approx(0.1, rel=1e-5)
    assert scaled["AbsDiff"] == pytest.approx(0.1 * gt[gt > 0].mean(), rel=1e-5)
    assert scaled["r1"] == 1
    half = gt.copy()
    half[:, : gt.shape[1] // 2] = 0
    assert depth_metrics(half, gt)["complete"] == pytest.approx(0.5, abs=0.01)
    far = np.full_like(gt, 12.0)  # beyond 10 m: no valid ground truth
    assert np.isnan(depth_metrics(gt, far)["AbsRel"])


def test_rendered_ground_truth_against_itself_is_perfect(small_dataset):
    reader = ScanNetFolder(small_dataset / "scans" / "scene0000_00")
    views = Views(reader.K_depth, reader.poses[::6], *reader.depth_size)
    gt = read_ply(reader.gt_mesh_path)
    m = mesh_depth_metrics(gt, views, render_depths(gt, views))
    assert m["AbsRel"] == 0 and m["r1"] == 1 and m["complete"] == 1 and m["n_views"] == 10
    # Against the sensor depth (millimetre PNGs) it is near-perfect.
    sensor = (reader.read_frame(i).depth for i in range(0, len(reader), 6))
    m = mesh_depth_metrics(gt, views, sensor)
    assert m["AbsDiff"] < 1e-3 and m["complete"] > 0.999


def test_tsdf_l1():
    rng = np.random.default_rng(0)
    tsdf = rng.uniform(-1, 1, (8, 8, 8)).astype(np.float32)
    weight = np.ones_like(tsdf)
    gt = VoxelGrid(tsdf, weight, np.zeros(3), 0.04)
    assert tsdf_l1(gt, gt) == 0
    # Aligned by whole voxels: the prediction covers gt voxels 2..7 along x.
    pred = VoxelGrid(tsdf[2:] + 0.1, weight[2:], np.array([0.08, 0, 0]), 0.04)
    expected = np.concatenate([np.abs(1 - tsdf[:2]).ravel(), np.full(6 * 64, 0.1)]).mean()
    assert tsdf_l1(pred, gt) == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError, match="not aligned"):
        tsdf_l1(VoxelGrid(tsdf, weight, np.array([0.01, 0, 0]), 0.04), gt)
    with pytest.raises(ValueError, match="voxel sizes differ"):
        tsdf_l1(VoxelGrid(tsdf, weight, np.zeros(3), 0.08), gt)


# ----------------------------------------------------------------- predictions


def test_missing_or_unreadable_prediction_is_an_error_unless_missing_pred_zero(tmp_path):
    missing, text = tmp_path / "perd.ply", tmp_path / "notes.ply"
    text.write_text("not a mesh\n")
    with pytest.raises(FileNotFoundError, match=r"perd\.ply: prediction not found"):
        read_prediction(missing)
    with pytest.raises(ValueError, match=r"notes\.ply: not a PLY file"):
        read_prediction(text)
    mesh, warning = read_prediction(missing, MissingPred.zero)
    assert len(mesh.vertices) == 0 and warning == f"prediction missing: {missing}"
    mesh, warning = read_prediction(text, MissingPred.zero)
    assert len(mesh.vertices) == 0 and warning.startswith("prediction unreadable or empty: ")
    assert str(text) in warning


@pytest.mark.parametrize("missing_pred", list(MissingPred))
def test_empty_and_non_finite_predictions(tmp_path, missing_pred):
    """A readable empty mesh scores 0 with a warning, and non-finite vertices are an
    error naming the file and their count, whatever ``missing_pred`` says."""
    write_ply(EMPTY, tmp_path / "empty.ply")
    mesh, warning = read_prediction(tmp_path / "empty.ply", missing_pred)
    assert len(mesh.vertices) == 0 and "empty mesh (no vertices)" in warning
    plane = grid_plane((0, 1), (0, 1), step=0.1)
    vertices = plane.vertices.copy()
    vertices[[1, 5, 9], 0] = [np.nan, np.inf, -np.inf]
    write_ply(Mesh(vertices, plane.faces), tmp_path / "nan.ply")
    with pytest.raises(ValueError, match=r"nan\.ply: 3 of 121 vertices are not finite"):
        read_prediction(tmp_path / "nan.ply", missing_pred)


# ----------------------------------------------------------------- reports


def test_reports_mean_ok_rows_and_write_strict_json():
    rows = [
        {"scene": "a", "method": "prediction", "status": "ok", "fscore": 0.5, "acc": 0.1},
        {"scene": "b", "method": "prediction", "status": "ok", "fscore": 0.0, "acc": np.inf},
        {"scene": "c", "method": "prediction", "status": "failed", "error": "no mesh"},
    ]
    (mean,) = mean_rows(rows)
    assert mean["fscore"] == 0.25 and mean["acc"] == np.inf
    assert mean["n_scenes"] == 2 and mean["n_failed"] == 1
    text = json.dumps(json_safe(mean))
    assert json.loads(text)["acc"] is None
    table = markdown_table([*rows, mean])
    assert "failed: no mesh" in table and "| mean | prediction |" in table
