"""The evidence rule: stereo surface the model confirms is kept where stereo put it,
stereo surface the model contradicts is dropped, and the model fills what stereo left
unobserved."""

from __future__ import annotations

import numpy as np
import pytest

from atlas.geometry import VoxelGrid, extract_mesh
from atlas.model.evidence import keep_evidence, signed_distance_at


def plane_grid(height: float, voxel: float, n: int, trunc_voxels: float) -> VoxelGrid:
    """A TSDF of the plane z = ``height`` (free space above it) on an n^3 grid at the
    origin, everything observed."""
    z = np.arange(n) * voxel
    tsdf = np.clip((z - height) / (trunc_voxels * voxel), -1, 1).astype(np.float32)
    tsdf = np.broadcast_to(tsdf, (n, n, n)).copy()
    return VoxelGrid(tsdf, np.ones_like(tsdf), np.zeros(3), voxel, trunc_voxels=trunc_voxels)


def test_signed_distance_is_exact_for_a_plane_inside_the_band():
    model = plane_grid(0.8, 0.08, 20, 3.0)
    points = np.array([[0.5, 0.5, 0.75], [0.33, 0.71, 0.9], [0.4, 0.4, 1.5], [9.0, 9.0, 9.0]])
    d, seen = signed_distance_at(model, points)
    np.testing.assert_allclose(d[:2], [-0.05, 0.1], atol=1e-6)
    assert d[2] == pytest.approx(0.24)  # beyond the band: the truncation distance
    assert d[3] == pytest.approx(0.24) and seen.tolist() == [True, True, True, False]


@pytest.mark.parametrize("model_height, kept", [(0.85, True), (1.1, False)])
def test_stereo_surface_is_kept_only_where_the_model_agrees(model_height, kept):
    stereo = plane_grid(0.8, 0.04, 40, 5.0)
    model = plane_grid(model_height, 0.08, 20, 3.0)
    out = keep_evidence(stereo, model, agree=0.16)
    assert out.voxel_size == 0.04 and out.trunc_voxels == 5.0
    mesh = extract_mesh(out)
    if kept:  # 5 cm apart: stereo's surface, where stereo put it
        np.testing.assert_allclose(mesh.vertices[:, 2], 0.8, atol=1e-4)
    else:  # 30 cm apart: dropped, not moved to the model's
        assert mesh.is_empty
        near = np.abs(np.arange(40) * 0.04 - 0.8) < 0.1
        assert out.weight[:, :, near].max() == 0


def test_the_model_fills_what_stereo_did_not_observe():
    stereo = plane_grid(0.8, 0.04, 40, 5.0)
    stereo.weight[:20] = 0  # x < 0.8 m: no stereo
    stereo.tsdf[:20] = 1
    model = plane_grid(0.9, 0.08, 20, 3.0)
    out = keep_evidence(stereo, model, agree=0.16)
    mesh = extract_mesh(out)
    x, z = mesh.vertices[:, 0], mesh.vertices[:, 2]
    np.testing.assert_allclose(z[x < 0.7], 0.9, atol=1e-4)  # the model's surface
    np.testing.assert_allclose(z[x > 0.85], 0.8, atol=1e-4)  # stereo's, confirmed
    # with a reach, only within 20 cm (in 3D) of the stereo surface it kept (z = 0.8 from
    # x = 0.8 on): of the model's surface at z = 0.9, a band of x beyond 0.6
    near = extract_mesh(keep_evidence(stereo, model, agree=0.16, reach=0.2))
    x, z = near.vertices[:, 0], near.vertices[:, 2]
    assert 0.6 < x.min() <= 0.72, x.min()
    np.testing.assert_allclose(z[x < 0.75], 0.9, atol=1e-4)
    # where neither observed, nothing
    model.weight[:] = 0
    assert keep_evidence(stereo, model, 0.16).weight[:20].max() == 0


def test_agree_must_be_a_distance():
    grid = plane_grid(0.8, 0.04, 8, 5.0)
    with pytest.raises(ValueError, match="agree"):
        keep_evidence(grid, grid, 0.0)
    with pytest.raises(ValueError, match="reach"):
        keep_evidence(grid, grid, 0.1, reach=-1.0)


def test_with_a_perfect_prior_the_model_is_at_least_the_prior(small_dataset):
    """The bundled model given the depth sensor's maps at the stereo keyframes as its
    prior (a perfect prior): its output, with the evidence rule, scores at least the
    prior's own mesh on the room's ground truth."""
    from atlas.evaluation.mesh_metrics import mesh_metrics
    from atlas.geometry import read_ply
    from atlas.model_card import sensor_prior
    from atlas.pipeline.methods import reconstruct_model
    from atlas.readers.scannet import ScanNetFolder

    reader = ScanNetFolder(small_dataset / "scans" / "scene0000_00")
    gt = read_ply(reader.gt_mesh_path)
    rec = reconstruct_model(reader, prior_depths=sensor_prior("sensor"))
    assert rec.grid.voxel_size == 0.04 and rec.summary["seconds"]["evidence"] >= 0
    model = mesh_metrics(rec.mesh, gt)["fscore"]
    prior = mesh_metrics(extract_mesh(rec.prior, upsample=2), gt)["fscore"]
    assert model >= prior, (model, prior)
    assert rec.summary["evidence"] == "on"
