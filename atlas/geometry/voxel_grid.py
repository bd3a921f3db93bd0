"""A dense voxel grid of TSDF values, with ``.npz`` storage and coarsening.

Conventions (docs/architecture.md): ``origin`` is the world position (metres) of the
centre of voxel (0, 0, 0); voxel (i, j, k) has centre ``origin + voxel_size * (i, j, k)``.
TSDF values are signed distances divided by the truncation distance, clamped to
[-1, 1], positive in front of surfaces; unobserved voxels have weight 0 and value 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.io_utils import load_npz, save_npz

REQUIRED_KEYS = ("tsdf", "weight", "origin", "voxel_size")


@dataclass
class VoxelGrid:
    """TSDF volume.

    tsdf: (X, Y, Z) float32 in [-1, 1]; weight: (X, Y, Z) float32, 0 = unobserved;
    origin: (3,) float64 world metres of voxel (0,0,0)'s centre; voxel_size: metres;
    color: optional (X, Y, Z, 3) uint8 RGB; trunc_voxels: truncation distance in voxels;
    world_from_grid: optional (4, 4) rigid transform from the frame the grid's axes and
    ``origin`` live in to the world frame of the input poses (a grid fused in a
    gravity-aligned frame and written for the input's frame); None = the same frame.
    """

    tsdf: np.ndarray
    weight: np.ndarray
    origin: np.ndarray
    voxel_size: float
    color: np.ndarray | None = None
    trunc_voxels: float = 3.0
    world_from_grid: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.tsdf = np.asarray(self.tsdf, dtype=np.float32)
        self.weight = np.asarray(self.weight, dtype=np.float32)
        self.origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        self.voxel_size = float(self.voxel_size)
        if self.tsdf.ndim != 3 or self.tsdf.shape != self.weight.shape:
            raise ValueError(
                f"tsdf {self.tsdf.shape} and weight {self.weight.shape} must be equal 3-D shapes"
            )
        if self.color is not None and self.color.shape != (*self.tsdf.shape, 3):
            raise ValueError(
                f"color shape {self.color.shape} does not match tsdf {self.tsdf.shape}"
            )
        if not self.voxel_size > 0:
            raise ValueError(f"voxel_size must be positive, got {self.voxel_size}")
        if self.world_from_grid is not None:
            self.world_from_grid = np.asarray(self.world_from_grid, dtype=np.float64)
            if self.world_from_grid.shape != (4, 4):
                raise ValueError(f"world_from_grid must be 4x4, got {self.world_from_grid.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.tsdf.shape  # type: ignore[return-value]

    @property
    def observed(self) -> np.ndarray:
        """(X, Y, Z) bool: voxels with weight > 0."""
        return self.weight > 0

    @property
    def trunc_distance(self) -> float:
        """Truncation distance in metres."""
        return self.trunc_voxels * self.voxel_size

    def voxel_centers(self) -> np.ndarray:
        """(X, Y, Z, 3) float64 world metres of every voxel centre."""
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), axis=-1)
        return self.origin + self.voxel_size * idx

    def world_to_index(self, points: np.ndarray) -> np.ndarray:
        """Continuous voxel coordinates (N, 3) of world points (N, 3) metres."""
        return (np.asarray(points, dtype=np.float64) - self.origin) / self.voxel_size

    def save(self, path: str | Path) -> None:
        """Write a compressed ``.npz`` (tsdf, weight, origin, voxel_size[, color,
        world_from_grid]) atomically."""
        arrays = {
            "tsdf": self.tsdf,
            "weight": self.weight,
            "origin": self.origin,
            "voxel_size": np.float64(self.voxel_size),
            "trunc_voxels": np.float64(self.trunc_voxels),
        }
        if self.color is not None:
            arrays["color"] = self.color
        if self.world_from_grid is not None:
            arrays["world_from_grid"] = self.world_from_grid
        save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> VoxelGrid:
        """Read a grid written by :meth:`save`; a clear ``ValueError`` names a bad file."""
        arrays = load_npz(path, "TSDF grid", REQUIRED_KEYS)
        try:
            return cls(
                tsdf=arrays["tsdf"],
                weight=arrays["weight"],
                origin=arrays["origin"],
                voxel_size=float(arrays["voxel_size"]),
                color=arrays.get("color"),
                trunc_voxels=float(arrays.get("trunc_voxels", 3.0)),
                world_from_grid=arrays.get("world_from_grid"),
            )
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    def coarsen(self, voxel_size: float) -> VoxelGrid:
        """The grid at a coarser ``voxel_size`` (an integer multiple of the current one).

        Voxel (i, j, k) of the result is voxel (k*i, k*j, k*k) of this grid (same origin,
        same world positions, no interpolation); TSDF values are re-normalised to the
        new truncation distance (``trunc_voxels`` coarse voxels). Values saturated at
        +-1 here stay +-1 (their distance is only known to exceed the old truncation), so
        zero crossings are exact when the coarse spacing is at most the fine truncation
        distance (4 -> 8 cm with 3-voxel truncation); fuse depth directly at the coarse
        size when exact values far from the surface matter.
        """
        factor = voxel_size / self.voxel_size
        k = round(factor)
        if k < 1 or abs(factor - k) > 1e-6:
            raise ValueError(
                f"coarsen: {voxel_size} m is not an integer multiple of {self.voxel_size} m"
            )
        tsdf = self.tsdf[::k, ::k, ::k]
        saturated = np.abs(tsdf) >= 1.0
        tsdf = np.where(saturated, np.sign(tsdf), tsdf / k).astype(np.float32)
        weight = self.weight[::k, ::k, ::k]
        tsdf[weight <= 0] = 1.0
        color = None if self.color is None else self.color[::k, ::k, ::k]
        return VoxelGrid(
            tsdf,
            weight.copy(),
            self.origin.copy(),
            voxel_size,
            color,
            self.trunc_voxels,
            self.world_from_grid,
        )
