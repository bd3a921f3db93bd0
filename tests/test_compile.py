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
    """Run ``fn`` with the kernels compiled from their first call (always) or eager (0),
    each from a fresh cache."""

    def run(fn, compile_flag: str):
        monkeypatch.setattr(compile_module, "_COMPILED", {})
        monkeypatch.setenv("ATLAS_COMPILE", compile_flag)
        out = fn()
        if compile_flag == "always":  # compiled indeed, not fallen back to eager
            used = compile_module._COMPILED.values()
            assert used and all(k.kernel is not k.fn for k in used), list(used)
        return out

    return run


def test_compiled_kernels_equal_eager(kernels):
    for with_color in (False, True):
        eager = kernels(lambda c=with_color: fuse_wall(c), "0")
        compiled = kernels(lambda c=with_color: fuse_wall(c), "always")
        assert eager.observed.sum() > 100
        np.testing.assert_array_equal(compiled.observed, eager.observed)
        np.testing.assert_allclose(compiled.tsdf, eager.tsdf, atol=1e-5)
        np.testing.assert_allclose(compiled.weight, eager.weight, atol=1e-5)
        if with_color:
            assert np.abs(compiled.color.astype(int) - eager.color).max() <= 1
    (mean_e, count_e), (mean_c, count_c) = kernels(backproject, "0"), kernels(backproject, "always")
    assert count_e.sum() > 0
    torch.testing.assert_close(count_c, count_e)
    torch.testing.assert_close(mean_c, mean_e, atol=1e-5, rtol=1e-5)


def test_kernel_runs_eagerly_for_its_first_calls(monkeypatch):
    """By default a kernel runs eagerly for ``eager_calls`` calls, then compiled; with
    ATLAS_COMPILE=always it is compiled from its first call; a typo is an error."""
    monkeypatch.setattr(compile_module, "_COMPILED", {})
    monkeypatch.setenv("ATLAS_COMPILE", "1")
    ran = []

    def kernel(x):
        ran.append("eager")
        return x + 1

    wrapped = compile_module.compiled("test_kernel", kernel, eager_calls=2)
    wrapped.kernel = lambda x: ran.append("compiled") or x + 1  # stands for the compiled one
    assert [wrapped(torch.zeros(1)).item() for _ in range(4)] == [1, 1, 1, 1]
    assert ran == ["eager", "eager", "compiled", "compiled"]
    assert compile_module.compiled("test_kernel", kernel, eager_calls=2) is wrapped  # cached

    compile_module.reset()
    monkeypatch.setenv("ATLAS_COMPILE", "always")
    assert compile_module.compiled("test_kernel", kernel, eager_calls=2).eager_calls == 0
    compile_module.reset()
    monkeypatch.setenv("ATLAS_COMPILE", "yes")
    with pytest.raises(ValueError, match="ATLAS_COMPILE must be 0, 1 or always, got 'yes'"):
        compile_module.compiled("test_kernel", kernel)
