"""Back-projection: hand-computed values, the original's rounding, streaming, gradients."""

import numpy as np
import pytest
import torch

from atlas.model.atlas_net import feature_projection
from atlas.model.backproject import FeatureVolume, voxel_centres


def tiny_case():
    """One 3x2 single-channel feature map (values 0..5, row-major), an identity camera
    with fx = fy = 1, cx = 1, cy = 0.5, and a 2x1x4 volume at z = -1, 0, 1, 2."""
    features = torch.arange(6, dtype=torch.float32).view(1, 1, 1, 2, 3)
    K = torch.tensor([[1.0, 0, 1], [0, 1, 0.5], [0, 0, 1]])
    projection = torch.cat([K, torch.zeros(3, 1)], 1).view(1, 1, 3, 4)
    origin = torch.tensor([[0.0, 0.0, -1.0]])
    return features, projection, origin


def test_bilinear_matches_hand_computed_values():
    features, projection, origin = tiny_case()
    vol = FeatureVolume(origin, 1.0, (2, 1, 4), 1, "bilinear")
    vol.add(features, projection)
    mean = vol.mean()[0, 0, :, 0]
    # voxel (x, 0, z) lands at u = x / z + 1, v = 0.5: between rows 0 and 1.
    # x=0: u=1 -> (1 + 4) / 2; x=1, z=1: u=2 -> (2 + 5) / 2; x=1, z=2: u=1.5 -> 3.
    expected = torch.tensor([[0, 0, 2.5, 2.5], [0, 0, 3.5, 3.0]])
    torch.testing.assert_close(mean, expected)
    # z = -1 is behind the camera and z = 0 on its plane: no view sees them.
    assert vol.count[0, 0, :, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1]]


def test_nearest_rounds_like_the_original():
    features, projection, origin = tiny_case()
    vol = FeatureVolume(origin, 1.0, (2, 1, 4), 1, "nearest")
    vol.add(features, projection)
    # v = 0.5 rounds half to even (row 0); u = 1.5 rounds to 2.
    torch.testing.assert_close(vol.mean()[0, 0, :, 0], torch.tensor([[0.0, 0, 1, 1], [0, 0, 2, 2]]))


def original_backproject(shape, voxel_size, origin, projection, features):
    """The original ATLAS algorithm, written plainly for comparison: per-(item, view)
    loop, rounding, boolean-mask gather. Returns (B, C, X, Y, Z) mean and count."""
    b, v, c, h, w = features.shape
    points = voxel_centres(origin, voxel_size, shape)  # (B, N, 3)
    n = points.shape[1]
    total = torch.zeros(b, c, n)
    count = torch.zeros(b, 1, n)
    for i in range(b):
        world = torch.cat([points[i].T, torch.ones(1, n)], 0)
        for j in range(v):
            cam = projection[i, j] @ world
            px = (cam[0] / cam[2]).round().long()
            py = (cam[1] / cam[2]).round().long()
            valid = (px >= 0) & (py >= 0) & (px < w) & (py < h) & (cam[2] > 0)
            vol = torch.zeros(c, n)
            vol[:, valid] = features[i, j][:, py[valid], px[valid]]
            total[i] += vol
            count[i, 0] += valid.float()
    mean = total / count.clamp(min=1)
    return mean.view(b, c, *shape), count.view(b, 1, *shape)


def random_views(b=2, v=5, c=4, h=12, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(b, v, c, h, w, generator=g)
    K = torch.tensor([[10.0, 0, 7.5], [0, 10, 5.5], [0, 0, 1]])
    projection = torch.zeros(b, v, 3, 4)
    for i in range(b):
        for j in range(v):
            angle = 0.3 * j + 0.1 * i
            R = torch.tensor(
                [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]],
                dtype=torch.float32,
            )
            t = torch.tensor([0.1 * j, -0.05 * i, 2.0])
            projection[i, j] = K @ torch.cat([R, t[:, None]], 1)
    origin = torch.tensor([[-2.0, -1.6, -3.5], [-1.9, -1.5, -3.6]])[:b]
    return features, projection, origin


def test_nearest_equals_the_original_algorithm():
    features, projection, origin = random_views()
    shape = (10, 8, 9)
    vol = FeatureVolume(origin, 0.4, shape, features.shape[2], "nearest")
    vol.add(features, projection)
    mean, count = original_backproject(shape, 0.4, origin, projection, features)
    assert count.sum() > 100 and (count == 0).any()
    torch.testing.assert_close(vol.count, count)
    torch.testing.assert_close(vol.mean(), mean)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_streaming_equals_all_at_once(mode):
    features, projection, origin = random_views()
    shape = (10, 8, 9)
    whole = FeatureVolume(origin, 0.4, shape, features.shape[2], mode)
    whole.add(features, projection)
    streamed = FeatureVolume(origin, 0.4, shape, features.shape[2], mode)
    for start in (0, 2, 3):
        stop = {0: 2, 2: 3, 3: 5}[start]
        streamed.add(features[:, start:stop], projection[:, start:stop])
    torch.testing.assert_close(streamed.mean(), whole.mean(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(streamed.count, whole.count)


def test_unseen_voxel_is_zero_and_gradients_flow():
    features, projection, origin = random_views(b=1)
    features.requires_grad_(True)
    vol = FeatureVolume(origin, 0.4, (10, 8, 9), features.shape[2])
    vol.add(features, projection)
    mean = vol.mean()
    unseen = vol.count[0, 0] == 0
    assert unseen.any()
    assert (mean[0][:, unseen] == 0).all()
    mean.sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_feature_projection_is_pixel_exact():
    """A point at image pixel centre (u, v) lands at ((u + 0.5) / 4 - 0.5, ...) on a
    stride-4 feature map."""
    P = torch.tensor([[100.0, 0, 63.5, 0], [0, 100, 47.5, 0], [0, 0, 1, 0]])
    Pf = feature_projection(P, (128, 96), (32, 24))
    point = torch.tensor([0.2, -0.1, 2.0, 1.0])
    u, v, z = P @ point
    uf, vf, zf = Pf @ point
    assert float(uf / zf) == pytest.approx((float(u / z) + 0.5) / 4 - 0.5)
    assert float(vf / zf) == pytest.approx((float(v / z) + 0.5) / 4 - 0.5)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_autocast_keeps_the_geometry_in_float32(mode):
    """Under bfloat16 autocast (trainer=gpu's bf16-mixed; the CPU has the same autocast)
    the projection stays float32: counts are identical and means equal the float32
    result up to the features' own bfloat16 rounding. A bfloat16 projection put flat
    pixel indices past the feature map (a CUDA index assertion on an H200)."""
    features, projection, origin = random_views()
    shape = (10, 8, 9)
    ref = FeatureVolume(origin, 0.4, shape, features.shape[2], mode)
    ref.add(features, projection)
    image_projection = feature_projection(projection, (80, 60), (80, 60))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert feature_projection(projection, (80, 60), (80, 60)).dtype == torch.float32
        torch.testing.assert_close(
            feature_projection(projection, (80, 60), (80, 60)), image_projection
        )
        vol = FeatureVolume(origin, 0.4, shape, features.shape[2], mode)
        vol.add(features.bfloat16(), projection)
    torch.testing.assert_close(vol.count, ref.count)
    assert vol.mean().dtype == torch.float32
    torch.testing.assert_close(vol.mean(), ref.mean(), atol=0.02, rtol=0.01)
    # training: bf16 features that need gradients (the backbone's output under autocast)
    trained = features.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vol = FeatureVolume(origin, 0.4, shape, features.shape[2], mode)
        vol.add(trained, projection)
        vol.mean().sum().backward()
    assert trained.grad is not None and trained.grad.abs().sum() > 0


def test_a_kernel_that_fails_to_compile_runs_eagerly(monkeypatch):
    """No compiler toolchain: the first call of a compiled kernel falls back to eager."""
    from atlas import compile as compile_module

    def broken_compile(fn, dynamic):
        def kernel(*args, **kwargs):
            raise RuntimeError("no C++ compiler")

        return kernel

    monkeypatch.setattr(compile_module.torch, "compile", broken_compile)
    monkeypatch.setattr(compile_module, "_COMPILED", {})
    monkeypatch.delenv("ATLAS_COMPILE", raising=False)
    kernel = compile_module.compiled("double", lambda x: 2 * x)
    assert kernel(torch.ones(3)).tolist() == [2.0, 2.0, 2.0]
    assert kernel(torch.ones(2)).tolist() == [2.0, 2.0]  # eager from then on
