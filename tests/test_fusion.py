"""TSDF fusion and marching cubes against analytic shapes."""

import numpy as np
import pytest
import torch

from atlas.geometry import Mesh, TSDFFusion, VoxelGrid, extract_mesh
from atlas.geometry.raycast import MeshRaycaster
from atlas.geometry.render import look_at
from tests.conftest import PINHOLE_K, orbit_poses, uv_sphere

VOXEL = 0.04


def fuse_mesh(mesh: Mesh, poses, lo, hi, **kwargs) -> VoxelGrid:
    caster = MeshRaycaster(mesh)
    fusion = TSDFFusion.from_bounds(lo, hi, VOXEL, max_depth=5.0, **kwargs)
    for T in poses:
        hit = caster.render(PINHOLE_K, T, 320, 240)
        fusion.integrate(np.where(hit.hit, hit.depth, 0).astype(np.float32), PINHOLE_K, T)
    return fusion.to_grid()


def box_mesh(half: np.ndarray) -> Mesh:
    import open3d as o3d

    b = o3d.geometry.TriangleMesh.create_box(*(2 * half))
    b = b.subdivide_midpoint(3)
    return Mesh(np.asarray(b.vertices) - half, np.asarray(b.triangles))


def box_distance(points: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Unsigned distance of points to the surface of the box [-half, half]."""
    q = np.abs(points) - half
    outside = np.linalg.norm(np.maximum(q, 0), axis=1)
    inside = np.minimum(q.max(axis=1), 0)
    return np.abs(outside + inside)


@pytest.mark.parametrize("mode", ["surface", "frustum"])
def test_sphere_surface_within_half_voxel(mode):
    poses = orbit_poses(30, 2.0)
    grid = fuse_mesh(uv_sphere(0.5), poses, np.full(3, -0.8), np.full(3, 0.8), mode=mode)
    mesh = extract_mesh(grid)
    err = np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.5)
    assert len(mesh.vertices) > 1000
    assert err.mean() < VOXEL / 2 and np.percentile(err, 95) < VOXEL / 2
    assert err.mean() < 0.005  # measured 2.6 mm
    # Normals point to free space (outward).
    centres = mesh.vertices[mesh.faces].mean(axis=1)
    assert np.mean(np.sum(mesh.face_normals() * centres, axis=1) > 0) > 0.99


def test_box_surface_within_half_voxel():
    half = np.array([0.4, 0.3, 0.25])
    # Three rings of views (below, level, above) so every face is seen.
    poses = [
        look_at(np.array([2 * np.cos(a + h), 2 * np.sin(a + h), h]), np.zeros(3))
        for h in (-1.0, 0.0, 1.0)
        for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)
    ]
    grid = fuse_mesh(box_mesh(half), poses, np.full(3, -0.7), np.full(3, 0.7))
    mesh = extract_mesh(grid)
    err = box_distance(mesh.vertices.astype(np.float64), half)
    assert len(mesh.vertices) > 1000
    assert err.mean() < VOXEL / 2 and np.percentile(err, 95) < VOXEL / 2
    assert err.mean() < 0.004  # measured 1.9 mm (6.4 mm at the 95th percentile)


def test_single_layer_no_shell_behind_surface():
    """A wall seen from one side gives one sheet, not a second layer behind it."""
    wall = Mesh(
        np.array([[1.0, -2, -2], [1.0, 2, -2], [1.0, 2, 2], [1.0, -2, 2]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
    )
    pose = np.eye(4)[[1, 2, 0, 3]].T.copy()  # camera at origin looking along +x
    pose[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]])
    grid = fuse_mesh(wall, [pose], np.array([0.3, -0.5, -0.4]), np.array([1.6, 0.5, 0.4]))
    mesh = extract_mesh(grid)
    assert len(mesh.vertices) > 100
    np.testing.assert_allclose(mesh.vertices[:, 0], 1.0, atol=0.005)
    # Voxels beyond the truncation band behind the wall stay unobserved (weight 0, value 1).
    behind = grid.world_to_index(np.array([[1.3, 0.0, 0.0]]))[0].round().astype(int)
    assert grid.weight[tuple(behind)] == 0 and grid.tsdf[tuple(behind)] == 1


def test_origin_is_centre_of_voxel_zero():
    """A plane at x = origin_x + 5.5 voxels crosses zero midway between voxels 5 and 6."""
    wall_x = 0.22  # origin 0, voxel 0.04 -> 5.5 voxels
    wall = Mesh(
        np.array([[wall_x, -2, -2], [wall_x, 2, -2], [wall_x, 2, 2], [wall_x, -2, 2]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
    )
    pose = np.eye(4)
    pose[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]])
    pose[:3, 3] = [-0.5, 0.0, 0.0]
    caster = MeshRaycaster(wall)
    hit = caster.render(PINHOLE_K, pose, 320, 240)
    fusion = TSDFFusion(np.zeros(3), (12, 8, 8), VOXEL, max_depth=5.0)
    fusion.integrate(hit.depth.astype(np.float32), PINHOLE_K, pose)
    grid = fusion.to_grid()
    # Voxel 5 centre is 2 cm in front (tsdf = 0.02 / 0.12), voxel 6 is 2 cm behind.
    assert grid.tsdf[5, 4, 4] == pytest.approx(0.02 / 0.12, abs=1e-3)
    assert grid.tsdf[6, 4, 4] == pytest.approx(-0.02 / 0.12, abs=1e-3)
    mesh = extract_mesh(grid)
    np.testing.assert_allclose(mesh.vertices[:, 0], wall_x, atol=1e-4)


def test_coarsen_keeps_the_surface():
    poses = orbit_poses(30, 2.0)
    grid = fuse_mesh(uv_sphere(0.5), poses, np.full(3, -0.8), np.full(3, 0.8))
    coarse = grid.coarsen(0.08)
    assert coarse.voxel_size == 0.08
    np.testing.assert_allclose(coarse.origin, grid.origin)
    assert coarse.shape == tuple(-(-s // 2) for s in grid.shape)
    err = np.abs(np.linalg.norm(extract_mesh(coarse).vertices, axis=1) - 0.5)
    assert err.mean() < 0.04 and np.percentile(err, 95) < 0.04  # half a coarse voxel
    with pytest.raises(ValueError, match="integer multiple"):
        grid.coarsen(0.06)


def test_color_is_averaged():
    wall = Mesh(
        np.array([[1.0, -2, -2], [1.0, 2, -2], [1.0, 2, 2], [1.0, -2, 2]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
    )
    pose = np.eye(4)
    pose[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]])
    hit = MeshRaycaster(wall).render(PINHOLE_K, pose, 320, 240)
    fusion = TSDFFusion.from_bounds(
        np.array([0.5, -0.3, -0.3]),
        np.array([1.3, 0.3, 0.3]),
        VOXEL,
        max_depth=5.0,
        with_color=True,
    )
    for value in (100, 200):
        color = np.full((240, 320, 3), value, np.uint8)
        fusion.integrate(hit.depth.astype(np.float32), PINHOLE_K, pose, color)
    mesh = extract_mesh(fusion.to_grid())
    assert mesh.colors is not None
    np.testing.assert_allclose(mesh.colors, 150, atol=1)


def test_frustum_mode_observes_free_space():
    wall = Mesh(
        np.array([[2.0, -3, -3], [2.0, 3, -3], [2.0, 3, 3], [2.0, -3, 3]]),
        np.array([[0, 1, 2], [0, 2, 3]]),
    )
    pose = np.eye(4)
    pose[:3, :3] = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]])
    lo, hi = np.array([0.2, -0.3, -0.3]), np.array([2.2, 0.3, 0.3])
    surface = fuse_mesh(wall, [pose], lo, hi, mode="surface")
    frustum = fuse_mesh(wall, [pose], lo, hi, mode="frustum")
    near = tuple(surface.world_to_index(np.array([[0.6, 0, 0]]))[0].round().astype(int))
    assert surface.weight[near] == 0
    assert frustum.weight[near] == 1 and frustum.tsdf[near] == 1


@pytest.mark.parametrize(
    ("depth", "pose", "message"),
    [
        (np.zeros((240, 320), np.uint16), np.eye(4), "frame-3.*float metres"),
        (np.zeros((240, 320, 3), np.float32), np.eye(4), "frame-3.*2-D"),
        (np.zeros((240, 320), np.float32), np.full((4, 4), np.inf), "frame-3.*non-finite"),
    ],
)
def test_bad_input_names_the_frame(depth, pose, message):
    fusion = TSDFFusion(np.zeros(3), (8, 8, 8), VOXEL)
    with pytest.raises(ValueError, match=message):
        fusion.integrate(depth, PINHOLE_K, pose, name="frame-3")
    assert fusion.frames_integrated == 0
    assert torch.all(fusion.weight == 0)


def test_color_shape_mismatch_is_an_error():
    fusion = TSDFFusion(np.zeros(3), (8, 8, 8), VOXEL, with_color=True)
    with pytest.raises(ValueError, match="f.png.*colour shape"):
        fusion.integrate(
            np.ones((240, 320), np.float32),
            PINHOLE_K,
            np.eye(4),
            np.zeros((120, 160, 3), np.uint8),
            name="f.png",
        )


def test_pixel_weights_pull_the_surface_and_zero_weight_drops_a_depth():
    # two views of a wall straight ahead, measured at 1.00 m and 1.06 m: the fused wall
    # moves towards the heavier one; a zero weight drops a depth altogether
    K = np.array([[40.0, 0, 15.5], [0, 40.0, 15.5], [0, 0, 1]])
    near, far = np.full((32, 32), 1.0, np.float32), np.full((32, 32), 1.06, np.float32)

    def wall_z(weights):
        fusion = TSDFFusion(np.array([-0.2, -0.2, 0.8]), (11, 11, 11), 0.04, trunc_voxels=3)
        for depth, w in zip((near, far), weights, strict=True):
            fusion.integrate(depth, K, np.eye(4), weight=np.full((32, 32), w, np.float32))
        mesh = extract_mesh(fusion.to_grid())
        return np.median(mesh.vertices[:, 2])

    even = wall_z((1.0, 1.0))
    assert 1.0 < even < 1.06
    assert wall_z((3.0, 1.0)) < even - 0.01
    assert wall_z((1.0, 3.0)) > even + 0.01
    assert wall_z((1.0, 0.0)) == pytest.approx(1.0, abs=0.003)
    assert wall_z((0.0, 1.0)) == pytest.approx(1.06, abs=0.003)
    with pytest.raises(ValueError, match="weight shape"):
        TSDFFusion(np.zeros(3), (4, 4, 4), 0.04).integrate(near, K, np.eye(4), weight=near[:4])
