"""The torch.compile path of the package's kernels equals the eager one.

Every other test runs the kernels eagerly (``ATLAS_COMPILE=0``, set in conftest.py, to
spare each process the compile warm-up); the entry points compile them by default, so
this checks that what users run computes what the tests check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atlas import compile as compile_module
from atlas.geometry import TSDFFusion
from atlas.model.backproject import FeatureVolume
from tests.conftest import PINHOLE_K

W, H = 80, 60
K = PINHOLE_K * np.array([[0.25], [0.25], [1.0]])  # 320x240 intrinsics at 80x60


def fuse_wall(with_color: bool):
    """A wall 1.2 m in front of two cameras, fused at 5 cm with colour."""
    fusion = TSDFFusion.from_bounds(
        np.array([-0.6, -0.5, 0.6]), np.array([0.6, 0.5, 1.6]), 0.05, with_color=with_color
    )
    depth = np.full((H, W), 1.2, np.float32)
    depth[:, : W // 4] = 1.0  # a step, so the surface is not a single plane
    color = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    for x in (0.0, 0.1):
        pose = np.eye(4)
        pose[0, 3] = x
        fusion.integrate(depth, K, pose, color if with_color else None)
    return fusion.to_grid()


def backproject():
    torch.manual_seed(0)
    volume = FeatureVolume(torch.zeros(1, 3), 0.1, (8, 6, 5), channels=3)
    P = torch.from_numpy(K).float() @ torch.eye(4)[:3]
    P = P.clone()
    P[:, 3] = torch.tensor([0.0, 0.0, 0.2]) @ torch.from_numpy(K).float().T  # shift in z
    volume.add(torch.rand(1, 2, 3, H, W), P.expand(1, 2, 3, 4))
    return volume.mean(), volume.count


@pytest.fixture
def kernels(monkeypatch):
    """Run ``fn`` with the kernels compiled (1) or eager (0), each from a fresh cache."""

    def run(fn, compile_flag: str):
        monkeypatch.setattr(compile_module, "_COMPILED", {})
        monkeypatch.setenv("ATLAS_COMPILE", compile_flag)
        out = fn()
        if compile_flag == "1":  # compiled indeed, not fallen back to eager
            used = compile_module._COMPILED.values()
            assert used and all(k.kernel is not k.fn for k in used), list(used)
        return out

    return run


def test_compiled_kernels_equal_eager(kernels):
    for with_color in (False, True):
        eager = kernels(lambda c=with_color: fuse_wall(c), "0")
        compiled = kernels(lambda c=with_color: fuse_wall(c), "1")
        assert eager.observed.sum() > 100
        np.testing.assert_array_equal(compiled.observed, eager.observed)
        np.testing.assert_allclose(compiled.tsdf, eager.tsdf, atol=1e-5)
        np.testing.assert_allclose(compiled.weight, eager.weight, atol=1e-5)
        if with_color:
            assert np.abs(compiled.color.astype(int) - eager.color).max() <= 1
    (mean_e, count_e), (mean_c, count_c) = kernels(backproject, "0"), kernels(backproject, "1")
    assert count_e.sum() > 0
    torch.testing.assert_close(count_c, count_e)
    torch.testing.assert_close(mean_c, mean_e, atol=1e-5, rtol=1e-5)
