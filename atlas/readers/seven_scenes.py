"""7-Scenes / 3DMatch "rgbd-frames" layout: ``camera-intrinsics.txt`` and
``frame-XXXXXX.{color.jpg,depth.png,pose.txt}`` in one folder.

The shipped intrinsics are the depth camera's; the colour camera was never calibrated
and published loaders use fx = fy = 525, cx = 320, cy = 240 for 640x480 colour, which is
the default here (using 585 for colour biases colour-based depth by about 12%).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from atlas.geometry.camera import scale_intrinsics
from atlas.readers.frames import Frame, SceneReader
from atlas.readers.image_io import read_color, read_depth, read_intrinsics, read_matrix
from atlas.readers.posed_images import first_image_size, image_size

KINECT_COLOR_K = np.array([[525.0, 0.0, 320.0], [0.0, 525.0, 240.0], [0.0, 0.0, 1.0]])
_FRAME = re.compile(r"^frame-(\d+)\.color\.(jpg|png)$")


class SevenScenesFolder(SceneReader):
    """One 7-Scenes sequence folder.

    color_intrinsics: (3, 3) for the colour images' size, or None for the standard
    Kinect v1 colour values (525, scaled to the image size).
    """

    def __init__(self, folder: str | Path, color_intrinsics: np.ndarray | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: 7-Scenes folder not found")
        found = {}
        for p in self.folder.iterdir():
            m = _FRAME.match(p.name)
            if m:
                found[int(m.group(1))] = p
        if not found:
            raise ValueError(f"{self.folder}: no frames (frame-XXXXXX.color.jpg)")
        self.frame_ids = sorted(found)
        self._color_paths = [found[i] for i in self.frame_ids]
        self._digits = len(self._color_paths[0].name.split(".")[0]) - len("frame-")
        self.name = self.folder.name
        self.K_depth = read_intrinsics(self.folder / "camera-intrinsics.txt")
        self.color_size = image_size(self._color_paths[0], "colour image")
        # A damaged depth map is named when (and if) it is read.
        depth_paths = (self._path(i, "depth.png") for i in self.frame_ids)
        self.depth_size = first_image_size(depth_paths, "depth image")
        if color_intrinsics is None:
            w, h = self.color_size
            color_intrinsics = scale_intrinsics(KINECT_COLOR_K, w / 640, h / 480)
        self.K_color = np.asarray(color_intrinsics, dtype=np.float64)
        self._poses: np.ndarray | None = None

    def _path(self, frame_id: int, suffix: str) -> Path:
        return self.folder / f"frame-{frame_id:0{self._digits}d}.{suffix}"

    @property
    def poses(self) -> np.ndarray:
        if self._poses is None:
            self._poses = np.stack(
                [read_matrix(self._path(i, "pose.txt"), (4, 4)) for i in self.frame_ids]
            )
        return self._poses

    def frame_files(self, index: int) -> tuple[Path, Path | None]:
        return self._color_paths[index], self._path(self.frame_ids[index], "depth.png")

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        frame_id = self.frame_ids[index]
        path = self._color_paths[index]
        return Frame(
            read_color(path, self.color_size, self._color_paths[0]),
            read_depth(self._path(frame_id, "depth.png"), size=self.depth_size) if depth else None,
            self.poses[index],
            self.K_color,
            self.K_depth,
            frame_id,
            str(path),
        )
