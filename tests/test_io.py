"""Voxel-grid .npz and PLY round trips, bad files, colour frames decoded downsized."""

import numpy as np
import pytest

from atlas.geometry import Mesh, VoxelGrid, read_ply, write_ply


def test_voxel_grid_npz_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    grid = VoxelGrid(
        rng.uniform(-1, 1, (4, 5, 6)),
        rng.uniform(0, 3, (4, 5, 6)),
        np.array([0.1, -2.0, 0.5]),
        0.04,
        color=rng.integers(0, 255, (4, 5, 6, 3), dtype=np.uint8),
    )
    grid.save(tmp_path / "g.npz")
    back = VoxelGrid.load(tmp_path / "g.npz")
    np.testing.assert_array_equal(back.tsdf, grid.tsdf)
    np.testing.assert_array_equal(back.weight, grid.weight)
    np.testing.assert_array_equal(back.color, grid.color)
    np.testing.assert_array_equal(back.origin, grid.origin)
    assert back.voxel_size == 0.04
    assert [p.name for p in tmp_path.iterdir()] == ["g.npz"]  # no temporary left behind


def test_voxel_centres_follow_the_convention():
    grid = VoxelGrid(np.ones((3, 3, 3)), np.zeros((3, 3, 3)), np.array([1.0, 2.0, 3.0]), 0.5)
    np.testing.assert_allclose(grid.voxel_centers()[2, 1, 0], [2.0, 2.5, 3.0])
    np.testing.assert_allclose(grid.world_to_index(np.array([[2.0, 2.5, 3.0]])), [[2, 1, 0]])


def test_bad_npz_files_are_named(tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="other.npz.*missing keys"):
        VoxelGrid.load(tmp_path / "other.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="broken.npz"):
        VoxelGrid.load(tmp_path / "broken.npz")
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        VoxelGrid.load(tmp_path / "absent.npz")


def test_ply_round_trip_with_colors(tmp_path):
    rng = np.random.default_rng(1)
    mesh = Mesh(
        rng.normal(size=(50, 3)),
        rng.integers(0, 50, (80, 3)),
        rng.integers(0, 256, (50, 3), dtype=np.uint8),
    )
    write_ply(mesh, tmp_path / "m.ply")
    back = read_ply(tmp_path / "m.ply")
    np.testing.assert_allclose(back.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(back.faces, mesh.faces)
    np.testing.assert_array_equal(back.colors, mesh.colors)


def test_bad_ply_is_named(tmp_path):
    (tmp_path / "bad.ply").write_text("garbage")
    with pytest.raises(ValueError, match="bad.ply"):
        read_ply(tmp_path / "bad.ply")
    with pytest.raises(FileNotFoundError, match="nope.ply"):
        read_ply(tmp_path / "nope.ply")


def test_frames_decoded_at_a_reduced_scale(room_24, tmp_path):
    """``iter_images`` resizes each frame from its JPEG file decoded at the smallest
    scale still twice the size asked: close to the full frame resized, the same whatever
    other sizes are asked; a reader without files resizes its full frames; a file of
    another size than the scene's is named."""
    from PIL import Image

    from atlas.readers.frames import SubsetReader
    from atlas.readers.image_io import decode_color

    assert decode_color(room_24.frame_files(0)[0], "RGB", (160, 120), (80, 60)).size == (80, 60)
    assert decode_color(room_24.frame_files(0)[0], "RGB", (160, 120), (81, 60)).size == (160, 120)
    indices = [0, 5]
    full = [f.color for f in room_24.iter_frames(indices, depth=False)]
    sizes = [(40, 30), (60, 40)]
    want = [
        [np.array(Image.fromarray(f).convert("L").resize(s, Image.BILINEAR)) for s in sizes]
        for f in full
    ]
    images = list(room_24.iter_images(indices, sizes, "L"))
    for got, expected in zip(images, want, strict=True):
        for a, b in zip(got, expected, strict=True):
            assert a.shape == b.shape and a.dtype == np.uint8
            assert np.abs(a.astype(float) - b).mean() < 3  # grey levels
    alone = next(room_24.iter_images([0], [(40, 30)], "L"))[0]
    assert np.array_equal(alone, images[0][0])

    class NoFiles(SubsetReader):
        def frame_files(self, index):
            return None

    whole = list(NoFiles(room_24, range(len(room_24))).iter_images(indices, [(160, 120)]))
    assert all(np.array_equal(a, b) for (a,), b in zip(whole, full, strict=True))

    odd = tmp_path / "odd.jpg"
    Image.fromarray(full[0][:100]).save(odd)
    with pytest.raises(ValueError, match=r"odd\.jpg: colour image is 160x100"):
        decode_color(odd, "RGB", (160, 120), (40, 30))


def test_sens_frames_decoded_at_a_reduced_scale(tmp_path):
    """A ``.sens`` file's frames decode downsized exactly as the same JPEG files in the
    extracted folder do, in one pass, and a frame's unreadable JPEG is named."""
    from atlas.readers.image_io import decode_color
    from atlas.readers.scannet import ScanNetFolder, ScanNetSens
    from atlas.synthetic.generate import SceneConfig, write_scene

    cfg = SceneConfig(seed=5, n_frames=6, width=160, height=120, write_sens=True)
    scene = write_scene(tmp_path / "scene0000_00", cfg)
    sens, folder = ScanNetSens(scene / "scene0000_00.sens"), ScanNetFolder(scene)
    sizes = [(40, 30), (80, 60)]
    for mode in ("L", "RGB"):
        got = list(sens.iter_images([1, 4], sizes, mode))
        want = list(folder.iter_images([1, 4], sizes, mode))
        assert len(got) == 2
        for a, b in zip(got, want, strict=True):
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        assert got[0][1].shape[:2] == (60, 80)
    with pytest.raises(ValueError, match="frame 3: unreadable colour image"):
        decode_color(b"not a jpeg", "RGB", (160, 120), (40, 30), name="x.sens frame 3")
