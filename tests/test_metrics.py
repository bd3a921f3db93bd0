import numpy as np
import open3d as o3d
import pytest
from scipy.spatial import cKDTree

from atlas.evaluation.mesh_metrics import (
    METRIC_KEYS,
    mesh_metrics,
    point_metrics,
    voxel_downsample,
)
from atlas.evaluation.protocols import AtlasProtocol
from atlas.geometry.mesh import Mesh, read_ply, write_ply


def test_metrics_equal_hand_computed_values():
    gt = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    pred = np.array([[0.0, 0, 0.03], [1.0, 0, 0.2], [5.0, 0, 0]])
    m = point_metrics(pred, gt, threshold=0.05)
    # d1 (pred -> gt) = 0.03, 0.2, 4.0; d2 (gt -> pred) = 0.03, 0.2
    assert m["acc"] == pytest.approx((0.03 + 0.2 + 4.0) / 3)
    assert m["comp"] == pytest.approx((0.03 + 0.2) / 2)
    assert m["prec"] == pytest.approx(1 / 3)
    assert m["recal"] == pytest.approx(1 / 2)
    assert m["fscore"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert m["chamfer"] == pytest.approx((m["acc"] + m["comp"]) / 2)


def test_empty_prediction_scores_zero():
    m = point_metrics(np.zeros((0, 3)), np.zeros((4, 3)))
    assert m["fscore"] == 0 and m["acc"] == float("inf")


def test_voxel_downsample_averages_per_cell():
    pts = np.array([[0.001, 0, 0], [0.003, 0, 0], [0.05, 0, 0]])
    out = voxel_downsample(pts, 0.02)
    np.testing.assert_allclose(sorted(out[:, 0]), [0.002, 0.05])


def test_voxel_downsample_anchors_the_grid_half_a_voxel_below_the_minimum():
    """Open3D's rule: with the minimum at x = 0.001 the cells are [-0.009, 0.011),
    [0.011, 0.031) ..., so 0.012 and 0.029 share one (a grid anchored at the world
    origin, floor(p / 0.02), would put 0.001 and 0.012 together instead)."""
    pts = np.array([[0.001, 0, 0], [0.012, 0, 0], [0.029, 0, 0]])
    np.testing.assert_allclose(voxel_downsample(pts, 0.02), [[0.001, 0, 0], [0.0205, 0, 0]])


def test_voxel_downsample_rejects_non_finite_points_with_their_count():
    pts = np.array([[0.0, 0, 0], [np.nan, 0, 0], [1, np.inf, 0]])
    with pytest.raises(ValueError, match="2 of 3 points are not finite"):
        voxel_downsample(pts, 0.02)


def same_point_sets(a: np.ndarray, b: np.ndarray) -> float:
    """The largest distance from a point of one set to the nearest of the other (both
    ways), after checking that the sets have the same size."""
    assert a.shape == b.shape
    return max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max())


@pytest.mark.parametrize("seed", range(6))
def test_voxel_downsample_equals_open3d(seed):
    """Same points as Open3D's voxel_down_sample (to 1e-9 m) on random clouds with
    arbitrary offsets and extents, some with every point on a 1 cm lattice (points on
    cell boundaries)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2_000, 20_000))
    points = rng.uniform(-1, 1, (n, 3)) * rng.uniform(0.05, 3, 3) + rng.uniform(-50, 50, 3)
    if seed % 2:
        points = np.round(points / 0.01) * 0.01
    voxel = (0.02, 0.05, 0.013)[seed % 3]
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    theirs = np.asarray(cloud.voxel_down_sample(voxel).points)
    assert same_point_sets(voxel_downsample(points, voxel), theirs) < 1e-9


def eval_mesh_open3d(file_pred, file_trgt, threshold=0.05, down_sample=0.02) -> dict:
    """ATLAS's ``eval_mesh`` (atlas/evaluation.py of magicleap/Atlas): vertices read by
    Open3D, ``voxel_down_sample`` on both, nearest neighbours both ways (SciPy here
    instead of its per-point Open3D loop: the same exact distances), and its
    precision and recall, which are swapped (``dist1`` is per ground-truth point)."""
    pcd_pred = o3d.io.read_point_cloud(str(file_pred)).voxel_down_sample(down_sample)
    pcd_trgt = o3d.io.read_point_cloud(str(file_trgt)).voxel_down_sample(down_sample)
    verts_pred, verts_trgt = np.asarray(pcd_pred.points), np.asarray(pcd_trgt.points)
    dist1 = cKDTree(verts_pred).query(verts_trgt)[0]  # nn_correspondance(pred, trgt)
    dist2 = cKDTree(verts_trgt).query(verts_pred)[0]
    precision = np.mean((dist1 < threshold).astype("float"))
    recal = np.mean((dist2 < threshold).astype("float"))
    fscore = 2 * precision * recal / (precision + recal)
    return {"dist1": dist1.mean(), "dist2": dist2.mean(), "prec": precision, "recal": recal,
            "fscore": fscore}  # fmt: skip


def random_mesh(rng: np.random.Generator, n: int, offset: np.ndarray, jitter: float) -> Mesh:
    """n vertices on a wavy 2 x 1.5 m sheet (``jitter`` metres of noise across it),
    random triangles."""
    xy = rng.uniform(0, 1, (n, 2)) * [2.0, 1.5]
    z = 0.1 * np.sin(3 * xy[:, 0]) * np.cos(2 * xy[:, 1]) + rng.normal(0, jitter, n)
    faces = rng.integers(0, n, (n, 3))
    return Mesh(np.column_stack([xy, z]) + offset, faces)


def test_atlas_metrics_equal_the_original_eval_mesh(tmp_path):
    rng = np.random.default_rng(7)
    offset = np.array([3.217, -1.0093, 0.4561])
    gt = random_mesh(rng, 40_000, offset, jitter=0.003)
    pred = random_mesh(rng, 30_000, offset + np.array([0.3, 0.0, 0.03]), jitter=0.02)
    write_ply(gt, tmp_path / "gt.ply")
    write_ply(pred, tmp_path / "pred.ply")
    theirs = eval_mesh_open3d(tmp_path / "pred.ply", tmp_path / "gt.ply")
    protocol = AtlasProtocol()
    pred, gt = read_ply(tmp_path / "pred.ply"), read_ply(tmp_path / "gt.ply")
    ours = protocol.evaluate(pred, protocol.reference(gt)).metrics
    assert mesh_metrics(pred, gt) == {k: ours[k] for k in METRIC_KEYS}
    assert 0.3 < ours["fscore"] < 0.9  # distances straddle the threshold
    expected = {
        "acc": theirs["dist2"],  # per predicted point
        "comp": theirs["dist1"],  # per ground-truth point
        "prec": theirs["recal"],  # the original's swap
        "recal": theirs["prec"],
        "fscore": theirs["fscore"],
    }
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key
    # A grid anchored at the world origin (floor(p / 2 cm), used before) misses by more.
    world = point_metrics(world_anchored(pred.vertices), world_anchored(gt.vertices))
    assert abs(world["fscore"] - theirs["fscore"]) > 1e-3


def world_anchored(points: np.ndarray, voxel: float = 0.02) -> np.ndarray:
    """Means of the points in the cells floor(p / voxel): the rule this project used
    before matching Open3D."""
    points = np.asarray(points, np.float64)
    _, inverse, counts = np.unique(
        np.floor(points / voxel).astype(np.int64), axis=0, return_inverse=True, return_counts=True
    )
    sums = np.zeros((len(counts), 3))
    np.add.at(sums, inverse.ravel(), points)
    return sums / counts[:, None]
