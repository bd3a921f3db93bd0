"""Reading a prepared scene (``prepare.py`` output) back as a scene: its frames, in the
prepared (gravity-aligned) world frame, so inference can run on prepared datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas.data.frames import Frame, SceneReader
from atlas.data.image_io import read_color, read_depth
from atlas.data.prepare import frame_path, load_index


class PreparedSceneReader(SceneReader):
    """The frames of a prepared scene folder (``index.json``); poses are the prepared,
    aligned ones (frames without a valid pose have NaN poses)."""

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
