import numpy as np
import pytest

from atlas.evaluation.mesh_metrics import point_metrics, voxel_downsample


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
