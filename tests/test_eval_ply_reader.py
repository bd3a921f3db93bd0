"""``read_ply`` reads binary triangle meshes with NumPy (no Open3D import): the same mesh
as Open3D's reader, which it falls back to for everything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from atlas.geometry.mesh import Mesh, read_ply, write_ply


def open3d_mesh(path: Path) -> Mesh:
    mesh = o3d.io.read_triangle_mesh(str(path))
    colors = None
    if mesh.has_vertex_colors():
        colors = np.rint(np.asarray(mesh.vertex_colors) * 255)
    return Mesh(np.asarray(mesh.vertices), np.asarray(mesh.triangles), colors)


def assert_same_mesh(a: Mesh, b: Mesh) -> None:
    np.testing.assert_array_equal(a.vertices, b.vertices)
    np.testing.assert_array_equal(a.faces, b.faces)
    assert (a.colors is None) == (b.colors is None)
    if a.colors is not None:
        np.testing.assert_array_equal(a.colors, b.colors)


@pytest.fixture(scope="module")
def sphere() -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_sphere(1.0, 12)
    mesh.compute_vertex_normals()
    rng = np.random.default_rng(0)
    mesh.vertex_colors = o3d.utility.Vector3dVector(
        rng.integers(0, 256, (len(mesh.vertices), 3)) / 255
    )
    return mesh


def test_binary_meshes_read_as_open3d_reads_them(sphere, tmp_path):
    o3d.io.write_triangle_mesh(str(tmp_path / "open3d.ply"), sphere)  # normals, colours
    plain = o3d.geometry.TriangleMesh(sphere.vertices, sphere.triangles)
    o3d.io.write_triangle_mesh(str(tmp_path / "plain.ply"), plain)
    v, f = np.asarray(sphere.vertices), np.asarray(sphere.triangles)
    colors = np.rint(np.asarray(sphere.vertex_colors) * 255)
    write_ply(Mesh(v, f, colors), tmp_path / "ours.ply")
    # Big-endian doubles, an extra vertex property, face properties around the list.
    header = (
        f"ply\nformat binary_big_endian 1.0\ncomment other tool\nelement vertex {len(v)}\n"
        "property double x\nproperty double y\nproperty double z\nproperty float quality\n"
        f"element face {len(f)}\nproperty uchar flags\nproperty list int uint vertex_indices\n"
        "property int label\nend_header\n"
    )
    vert = np.zeros(len(v), [("x", ">f8"), ("y", ">f8"), ("z", ">f8"), ("q", ">f4")])
    vert["x"], vert["y"], vert["z"] = v.T
    face = np.zeros(len(f), [("flags", "u1"), ("n", ">i4"), ("i", ">u4", (3,)), ("label", ">i4")])
    face["n"], face["i"] = 3, f
    (tmp_path / "big_endian.ply").write_bytes(header.encode() + vert.tobytes() + face.tobytes())
    for name in ("open3d", "plain", "ours", "big_endian"):
        mesh = read_ply(tmp_path / f"{name}.ply")
        assert len(mesh.faces) == len(f)
        assert (mesh.colors is not None) == (name in ("open3d", "ours"))
        assert_same_mesh(mesh, open3d_mesh(tmp_path / f"{name}.ply"))


def test_ascii_and_polygon_meshes_go_through_open3d(sphere, tmp_path):
    o3d.io.write_triangle_mesh(str(tmp_path / "ascii.ply"), sphere, write_ascii=True)
    assert_same_mesh(read_ply(tmp_path / "ascii.ply"), open3d_mesh(tmp_path / "ascii.ply"))
    header = (
        "ply\nformat binary_little_endian 1.0\nelement vertex 4\nproperty float x\n"
        "property float y\nproperty float z\nelement face 1\n"
        "property list uchar int vertex_indices\nend_header\n"
    )
    square = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], "<f4")
    quad = np.array([4], "u1").tobytes() + np.arange(4, dtype="<i4").tobytes()
    (tmp_path / "quad.ply").write_bytes(header.encode() + square.tobytes() + quad)
    mesh = read_ply(tmp_path / "quad.ply")
    assert len(mesh.faces) == 2  # triangulated, as Open3D does
    assert mesh.face_areas().sum() == pytest.approx(1.0)


def test_bad_face_indices_name_the_file(tmp_path):
    write_ply(Mesh(np.eye(3), [[0, 1, 2]]), tmp_path / "mesh.ply")
    data = bytearray((tmp_path / "mesh.ply").read_bytes())
    data[-4:] = np.array([7], "<i4").tobytes()  # the last index points past 3 vertices
    (tmp_path / "bad.ply").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"bad\.ply: corrupt PLY file \(face indices out of range"):
        read_ply(tmp_path / "bad.ply")
