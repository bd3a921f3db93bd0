"""Marching cubes on a k-times finer trilinear lattice (``extract_mesh(upsample=k)``)."""

import numpy as np
import pytest

from atlas.geometry import VoxelGrid, extract_mesh


def sphere_grid(radius=0.6, voxel=0.08, n=24, trunc=3.0, color=False):
    """Analytic truncated SDF of a sphere centred in an n^3 grid of ``voxel`` metres."""
    origin = np.full(3, -(n - 1) / 2 * voxel)
    ijk = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1)
    d = np.linalg.norm(origin + voxel * ijk, axis=-1) - radius
    tsdf = np.clip(d / (trunc * voxel), -1, 1)
    rgb = None
    if color:  # red grows with x, so interpolated colours can be checked
        rgb = np.zeros((n, n, n, 3), dtype=np.uint8)
        rgb[..., 0] = (255 * ijk[..., 0] / (n - 1)).astype(np.uint8)
    return VoxelGrid(tsdf, np.ones_like(tsdf), origin, voxel, color=rgb, trunc_voxels=trunc)


def test_upsampled_sphere_is_on_the_surface_and_denser():
    grid = sphere_grid()
    native, fine = extract_mesh(grid), extract_mesh(grid, upsample=2)
    for mesh in (native, fine):
        err = np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.6)
        assert err.max() < 0.01  # trilinear field of a 0.6 m sphere at 8 cm: < 1 cm
    assert 3.5 < len(fine.vertices) / len(native.vertices) < 4.5  # a surface: k^2 more
    edges = fine.vertices[fine.faces] - fine.vertices[np.roll(fine.faces, 1, axis=1)]
    assert np.linalg.norm(edges, axis=-1).max() < 0.04 * np.sqrt(3) + 1e-6  # in 4 cm cells


def test_slabs_weld_into_the_same_mesh():
    """Seams between x-slabs: a mesh made of 3-cell slabs equals the one-slab mesh."""
    grid = sphere_grid(color=True)
    one = extract_mesh(grid, upsample=3, slab_cells=1000)
    many = extract_mesh(grid, upsample=3, slab_cells=3)
    assert len(one.vertices) == len(many.vertices) and len(one.faces) == len(many.faces)
    # the same vertices up to float rounding of the slab offset
    order_one, order_many = np.lexsort(one.vertices.T), np.lexsort(many.vertices.T)
    np.testing.assert_allclose(one.vertices[order_one], many.vertices[order_many], atol=1e-6)
    edges = np.sort(np.concatenate([many.faces[:, [0, 1]], many.faces[:, [1, 2]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() <= 2  # a closed sphere: no seam left open or doubled
    red = many.colors[:, 0]
    expected = 255 * (many.vertices[:, 0] - grid.origin[0]) / (23 * grid.voxel_size)
    assert np.abs(red - expected).max() < 2.5  # interpolated across slabs (uint8 twice)


def test_upsample_one_is_the_native_mesh_and_bad_factor_is_an_error():
    grid = sphere_grid()
    a, b = extract_mesh(grid), extract_mesh(grid, upsample=1)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="upsample"):
            extract_mesh(grid, upsample=bad)


def test_upsampled_mesh_keeps_out_of_unobserved_cells():
    grid = sphere_grid()
    weight = grid.weight.copy()
    weight[13:] = 0  # x voxels 13.. unobserved: cells from x index 12 on are dropped
    half = VoxelGrid(grid.tsdf, weight, grid.origin, grid.voxel_size)
    mesh = extract_mesh(half, upsample=2)
    last = grid.origin[0] + 12 * grid.voxel_size
    assert len(mesh.vertices) > 100 and mesh.vertices[:, 0].max() <= last + 1e-9
