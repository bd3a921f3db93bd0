"""What a reconstruction method returns: the fused grid, its coloured mesh and a summary."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from atlas.geometry import Mesh, VoxelGrid, extract_mesh
from atlas.geometry.camera import scale_intrinsics
from atlas.geometry.colorize import color_vertices
from atlas.readers.frames import SceneReader
from atlas.stereo.pipeline import StereoDepths


@dataclass
class SemanticLabels:
    """voxels: (X, Y, Z) int16 class per voxel of the reconstruction's grid, -1 where
    unobserved; vertices: (V,) int16 class of each mesh vertex (its nearest voxel's)."""

    voxels: np.ndarray
    vertices: np.ndarray

    @classmethod
    def from_volume(cls, labels: np.ndarray, grid: VoxelGrid, mesh: Mesh) -> SemanticLabels:
        """From per-voxel classes ``labels`` (X, Y, Z) on ``grid`` and its ``mesh``
        (vertices in the grid's frame)."""
        voxels = np.where(grid.observed, labels, -1).astype(np.int16)
        ijk = np.rint((mesh.vertices - grid.origin) / grid.voxel_size).astype(np.int64)
        ijk = np.clip(ijk, 0, np.array(grid.shape) - 1)
        return cls(voxels, labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]].astype(np.int16))


@dataclass
class Reconstruction:
    """grid: the fused TSDF; mesh: its surface with vertex colours (world metres, the
    grid's frame until :func:`atlas.pipeline.outputs.to_input_frame`); summary:
    JSON-ready facts (frames used and skipped, bounds, voxel count, timings, method);
    prior: the stereo prior a model was given (same grid), if any; snapshots: (frames,
    mesh) of the sequence's first frames (see :func:`atlas.pipeline.scene.add_snapshots`);
    labels: semantic classes of a model with a semantic head, else None; depths: the
    filtered keyframe depth maps of ``method=stereo`` (what was fused), else None.
    The grids, labels and depth-map poses stay in the frame the scene was reconstructed
    in; ``grid.world_from_grid`` says how to reach the input's frame when it differs."""

    name: str
    grid: VoxelGrid
    mesh: Mesh
    summary: dict = field(default_factory=dict)
    prior: VoxelGrid | None = None
    snapshots: list[tuple[int, Mesh]] = field(default_factory=list)
    labels: SemanticLabels | None = None
    depths: StereoDepths | None = None


def spread_frames(indices: np.ndarray, count: int = 60) -> np.ndarray:
    """At most ``count`` of the frame ``indices``, evenly spread: the frames vertex
    colours are taken from."""
    return indices[np.linspace(0, len(indices) - 1, min(len(indices), count)).round().astype(int)]


def _color_views(
    reader: SceneReader, indices: np.ndarray, width: int = 320
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(colour (H, W, 3) uint8, K (3, 3), camera-to-world pose (4, 4)) of the given
    frames, downsized to ``width`` pixels."""
    w0, h0 = reader.color_size
    size = (width, round(h0 * width / w0))
    K = scale_intrinsics(reader.K_color, size[0] / w0, size[1] / h0)
    poses = reader.poses
    for index, (img,) in zip(indices, reader.iter_images(indices, [size]), strict=True):
        yield img, K, poses[index]


def finish(
    reader: SceneReader,
    grid: VoxelGrid,
    method: str,
    facts: dict,
    color_frames: np.ndarray,
    seconds: dict,
    mesh_upsample: int = 1,
) -> Reconstruction:
    """Mesh (see :func:`extract_mesh`'s ``upsample``), vertex colours from
    ``color_frames`` and the summary of a fused grid."""
    t0 = time.perf_counter()
    mesh = extract_mesh(grid, upsample=mesh_upsample)
    t1 = time.perf_counter()
    if not mesh.is_empty:
        mesh.colors = color_vertices(mesh, _color_views(reader, color_frames))
    t2 = time.perf_counter()
    summary = {
        "scene": reader.name,
        "method": method,
        "frames": len(reader),
        "frames_skipped_invalid_pose": int((~reader.valid).sum()),
        **facts,
        "voxel_size": grid.voxel_size,
        "grid_shape": list(grid.shape),
        "observed_voxels": int(grid.observed.sum()),
        "mesh_vertices": len(mesh.vertices),
        "mesh_upsample": mesh_upsample,
        "seconds": {**seconds, "mesh": round(t1 - t0, 2), "color": round(t2 - t1, 2)},
    }
    if mesh.is_empty:
        summary["warning"] = (
            "empty mesh: no surface was found; check that the poses are camera-to-world "
            "in metres (OpenCV axes) and match the images"
        )
    return Reconstruction(reader.name, grid, mesh, summary)
