"""The prepared-scene format (``prepare.py`` output, layout in
:mod:`atlas.preparation.prepare`): its index and file names, and the reader that gives
a prepared scene back as a scene, its frames in the prepared (gravity-aligned) world
frame, so inference can run on prepared datasets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from atlas.readers.frames import Frame, SceneReader
from atlas.readers.image_io import read_color, read_depth

INDEX = "index.json"


def scale_key(voxel_size: float) -> str:
    """A voxel size's name in files and item keys: centimetres, two digits (0.08 -> 08)."""
    return f"{round(voxel_size * 100):02d}"


def prior_name(voxel_size: float) -> str:
    return f"prior_{scale_key(voxel_size)}.npz"


def tsdf_name(voxel_size: float) -> str:
    return f"tsdf_{scale_key(voxel_size)}.npz"


def is_prepared(scene_dir: Path) -> bool:
    return (scene_dir / INDEX).is_file()


def frame_path(scene_dir: str | Path, recorded: str) -> Path:
    """A frame file named in a prepared scene's index: absolute (raw data, recorded
    resolved) or relative to the prepared scene (frames extracted from a .sens file).
    A path with a ``..`` part, which could lead out of where the index says its files
    are, is a ``ValueError`` naming the index."""
    index = Path(scene_dir) / INDEX
    if not isinstance(recorded, str) or not recorded:
        raise ValueError(f"{index}: a file path must be a non-empty string, got {recorded!r}")
    path = Path(recorded)
    if ".." in path.parts:
        raise ValueError(
            f"{index}: refused file path {recorded!r}: it goes up out of its folder ('..'); "
            "a prepared scene names its files by absolute path or below the scene folder"
        )
    return path if path.is_absolute() else Path(scene_dir) / path


def load_index(scene_dir: str | Path) -> dict:
    """The index of a prepared scene (``ValueError`` naming the file when unreadable)."""
    path = Path(scene_dir) / INDEX
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not a prepared scene (no index)") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: corrupt index ({err})") from None


class PreparedSceneReader(SceneReader):
    """The frames of a prepared scene folder (``index.json``); poses are the prepared,
    aligned ones (frames without a valid pose have NaN poses)."""

    up = "none"  # aligned by preparation

    def __init__(self, scene_dir: str | Path) -> None:
        self.dir = Path(scene_dir)
        index = load_index(self.dir)
        self.name = index["scene"]
        frames = index["frames"]
        self.frame_ids = [f["frame_id"] for f in frames]
        self.K_color = np.array(index["K_color"], dtype=np.float64)
        self.K_depth = np.array(index["K_depth"], dtype=np.float64)
        self.color_size = tuple(index["color_size"])
        self.depth_size = tuple(index["depth_size"])
        nan = np.full((4, 4), np.nan)
        self._poses = np.array(
            [np.array(f["pose"]) if f["valid"] and f["pose"] else nan for f in frames]
        )
        # Every path the index names is checked now, before any work (see frame_path).
        self._files = [
            (
                frame_path(self.dir, f["color"]) if f["color"] else None,
                frame_path(self.dir, f["depth"]) if f["depth"] else None,
            )
            for f in frames
        ]
        self._mesh = frame_path(self.dir, index["mesh"])

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        color_path, depth_path = self._files[index]
        if color_path is None:
            raise ValueError(f"{self.dir}: frame {self.frame_ids[index]} was not prepared")
        return Frame(
            read_color(color_path, self.color_size),
            read_depth(depth_path, size=self.depth_size) if depth and depth_path else None,
            self._poses[index],
            self.K_color,
            self.K_depth,
            self.frame_ids[index],
            str(color_path),
        )

    def frame_files(self, index: int) -> tuple[Path, Path | None] | None:
        color_path, depth_path = self._files[index]
        return None if color_path is None else (color_path, depth_path)

    @property
    def gt_mesh_path(self) -> Path | None:
        return self._mesh if self._mesh.is_file() else None
