import numpy as np
import pytest
import torch

from atlas.geometry.camera import (
    check_intrinsics,
    check_pose,
    frustum_bounds,
    project_points,
    projection_matrix,
    resize_intrinsics,
    scale_intrinsics,
)

K = np.array([[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]])


def pose_at(t):
    T = np.eye(4)
    T[:3, 3] = t
    return T


def test_project_point_in_front_of_camera():
    # Camera at (1, 2, 3) with identity rotation: a point 2 m ahead, 0.5 m right.
    pts = torch.tensor([[1.5, 2.0, 5.0]], dtype=torch.float64)
    uv, z = project_points(pts, torch.tensor(K), torch.tensor(pose_at([1, 2, 3])))
    assert z.item() == pytest.approx(2.0)
    assert uv[0].tolist() == pytest.approx([320 + 500 * 0.5 / 2, 240.0])


def test_project_batched_views_and_behind():
    pts = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]], dtype=torch.float64)
    poses = torch.tensor(np.stack([pose_at([0, 0, 0]), pose_at([0, 0, 2])]))
    uv, z = project_points(pts, torch.tensor(K), poses)
    assert uv.shape == (2, 2, 2)
    np.testing.assert_allclose(z.numpy(), [[1.0, -1.0], [-1.0, -3.0]])


def test_projection_matrix_matches_definition():
    T = np.eye(4)
    T[:3, :3] = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]])
    T[:3, 3] = [0.3, -0.2, 1.0]
    P = projection_matrix(torch.tensor(K), torch.tensor(T)).numpy()
    np.testing.assert_allclose(P, K @ np.linalg.inv(T)[:3], atol=1e-12)


def test_scale_intrinsics():
    K2 = scale_intrinsics(K, 0.5, 0.25)
    # Pixel edges map to edges: cx' = 0.5 * (320 + 0.5) - 0.5, cy' = 0.25 * 240.5 - 0.5.
    np.testing.assert_allclose(K2, [[250, 0, 159.75], [0, 100, 59.625], [0, 0, 1]])
    K3 = resize_intrinsics(K, (640, 480), (320, 240))
    np.testing.assert_allclose(K3, scale_intrinsics(K, 0.5, 0.5))


def test_scaled_intrinsics_match_a_resized_image():
    """A bright pixel's centre, projected with the scaled K, lands on the resized image's
    brightest spot (PIL bilinear resize)."""
    from PIL import Image

    img = np.zeros((480, 640), np.float32)
    img[100:104, 200:204] = 1.0  # a 4x4 block centred at (201.5, 101.5)
    small = np.asarray(Image.fromarray(img).resize((160, 120), Image.BILINEAR))
    v, u = np.unravel_index(np.argmax(small), small.shape)
    K2 = scale_intrinsics(K, 0.25, 0.25)
    # The point seen at (201.5, 101.5) in the big image, in the small image:
    ray = np.linalg.inv(K) @ np.array([201.5, 101.5, 1.0])
    pix = K2 @ ray
    assert abs(pix[0] - u) < 0.01 and abs(pix[1] - v) < 0.01


def test_frustum_bounds_contain_camera_and_far_plane():
    lo, hi = frustum_bounds(K, np.stack([pose_at([0, 0, 0])]), (640, 480), max_depth=2.0)
    # Far plane half-width: 2 * (320.5 / 500); half-height: 2 * (240.5 / 400).
    np.testing.assert_allclose(lo, [-2 * 320.5 / 500, -2 * 240.5 / 400, 0.0])
    np.testing.assert_allclose(hi, [2 * 319.5 / 500, 2 * 239.5 / 400, 2.0])


def test_bad_pose_and_intrinsics_errors_name_the_frame():
    bad = np.eye(4)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="frame-7.*non-finite"):
        check_pose(bad, "frame-7")
    with pytest.raises(ValueError, match="not a rigid"):
        check_pose(np.diag([2.0, 1, 1, 1]), "f")
    with pytest.raises(ValueError, match="k.txt.*focal"):
        check_intrinsics(np.diag([0.0, 1, 1]), "k.txt")
