"""The ATLAS "sample" layout: ``intrinsics.txt`` (3x3, colour), ``color/*.jpg`` and
``pose/*.txt`` (4x4 camera-to-world) with matching names; no depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas.readers.frames import ImageFilesReader
from atlas.readers.image_io import read_intrinsics, read_matrix
from atlas.readers.posed_images import image_size


class AtlasSampleFolder(ImageFilesReader):
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        color_dir = self.folder / "color"
        if not color_dir.is_dir():
            raise FileNotFoundError(f"{color_dir}: no colour folder (ATLAS sample layout)")
        paths = [p for p in color_dir.iterdir() if p.suffix.lower() in (".jpg", ".png")]
        if not paths:
            raise ValueError(f"{color_dir}: no frames (*.jpg)")
        bad = [p for p in paths if not p.stem.isdigit()]
        if bad:
            raise ValueError(f"{bad[0]}: frame files must be named <number>.jpg")
        paths.sort(key=lambda p: int(p.stem))
        self._color_paths = paths
        self.frame_ids = [int(p.stem) for p in paths]
        self.name = self.folder.name
        self.K_color = read_intrinsics(self.folder / "intrinsics.txt")
        self.K_depth = None
        self.depth_size = None
        self.color_size = image_size(paths[0], "colour image")
        self._poses: np.ndarray | None = None

    @property
    def poses(self) -> np.ndarray:
        if self._poses is None:
            self._poses = np.stack(
                [
                    read_matrix(self.folder / "pose" / f"{p.stem}.txt", (4, 4))
                    for p in self._color_paths
                ]
            )
        return self._poses
