"""ScanNet scenes: extracted folders (``color/``, ``depth/``, ``pose/``, ``intrinsic/``),
``.sens`` files (streamed), and the split lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlas.readers.frames import Frame, SceneReader
from atlas.readers.image_io import (
    color_at_sizes,
    decode_color,
    decode_depth,
    read_color,
    read_depth,
    read_intrinsics,
    read_matrix,
)
from atlas.readers.posed_images import first_image_size, image_size
from atlas.readers.sens import iter_sens


def read_split(root: str | Path, split: str) -> list[str]:
    """Scene names listed in ``root/scannetv2_{split}.txt``."""
    path = Path(root) / f"scannetv2_{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split list not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def read_label_map(path: str | Path, target: str = "nyu40id") -> dict[str, int]:
    """ScanNet's ``scannetv2-labels.combined.tsv``: raw category name -> ``target`` id
    (default the NYU40 class). Rows without an id are left out."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label map not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    if not rows or "raw_category" not in rows[0] or target not in rows[0]:
        raise ValueError(f"{path}: not a ScanNet label map (needs raw_category and {target})")
    return {r["raw_category"]: int(r[target]) for r in rows if r[target].strip().isdigit()}


class ScanNetFolder(SceneReader):
    """An extracted ScanNet scene folder ``scans/sceneXXXX_XX``.

    Colour and depth may differ in size (real ScanNet: 1296x968 and 640x480), each with
    its own intrinsics; depth PNGs are uint16 millimetres.
    """

    up = "none"  # ScanNet scenes are Z-up

    def __init__(self, scene_dir: str | Path) -> None:
        self.scene_dir = Path(scene_dir)
        self.name = self.scene_dir.name
        if not self.scene_dir.is_dir():
            raise FileNotFoundError(f"{self.scene_dir}: scene folder not found")
        color_dir = self.scene_dir / "color"
        if not color_dir.is_dir():
            raise FileNotFoundError(f"{color_dir}: no colour folder in this ScanNet scene")
        ids = []
        for p in color_dir.glob("*.jpg"):
            if not p.stem.isdigit():
                raise ValueError(f"{p}: ScanNet frame files are named <number>.jpg")
            ids.append(int(p.stem))
        if not ids:
            raise ValueError(f"{color_dir}: no frames (*.jpg)")
        self.frame_ids = sorted(ids)
        intrinsic = self.scene_dir / "intrinsic"
        self.K_color = read_intrinsics(intrinsic / "intrinsic_color.txt")
        self.has_depth = (self.scene_dir / "depth").is_dir()
        self.K_depth = (
            read_intrinsics(intrinsic / "intrinsic_depth.txt") if self.has_depth else None
        )
        self._size_from = self._color_path(self.frame_ids[0])
        self.color_size = image_size(self._size_from, "colour image")
        self.depth_size = None
        if self.has_depth:  # a damaged depth map is named when (and if) it is read
            depth_paths = (self._depth_path(i) for i in self.frame_ids)
            self.depth_size = first_image_size(depth_paths, "depth image")
        self._poses: np.ndarray | None = None

    def _color_path(self, frame_id: int) -> Path:
        return self.scene_dir / "color" / f"{frame_id}.jpg"

    def _depth_path(self, frame_id: int) -> Path:
        return self.scene_dir / "depth" / f"{frame_id}.png"

    @property
    def poses(self) -> np.ndarray:
        if self._poses is None:
            self._poses = np.stack(
                [read_matrix(self.scene_dir / "pose" / f"{i}.txt", (4, 4)) for i in self.frame_ids]
            )
        return self._poses

    @property
    def gt_mesh_path(self) -> Path | None:
        path = self.scene_dir / f"{self.name}_vh_clean_2.ply"
        return path if path.is_file() else None

    def frame_files(self, index: int) -> tuple[Path, Path | None]:
        frame_id = self.frame_ids[index]
        return self._color_path(frame_id), (self._depth_path(frame_id) if self.has_depth else None)

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        frame_id = self.frame_ids[index]
        path = self._color_path(frame_id)
        depth_map = (
            read_depth(self._depth_path(frame_id), size=self.depth_size)
            if depth and self.has_depth
            else None
        )
        return Frame(
            read_color(path, self.color_size, self._size_from),
            depth_map,
            self.poses[index],
            self.K_color,
            self.K_depth,
            frame_id,
            str(path),
        )


class ScanNetSens(SceneReader):
    """A ScanNet ``.sens`` file, streamed: frames are read in order, one in memory."""

    sequential = True
    up = "none"  # ScanNet scenes are Z-up

    def __init__(self, sens_path: str | Path) -> None:
        self.path = Path(sens_path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: .sens file not found")
        header, frames = iter_sens(self.path, images=False)
        self.header = header
        self.name = self.path.stem
        self.K_color, self.K_depth = header.K_color, header.K_depth
        self.color_size, self.depth_size = header.color_size, header.depth_size
        self.frame_ids = list(range(header.num_frames))
        # One pass for the poses (image buffers are skipped, not read).
        self._poses = (
            np.stack([f.pose.astype(np.float64) for f in frames])
            if (header.num_frames)
            else np.zeros((0, 4, 4))
        )

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        """One frame: a pass over the file up to it (use ``iter_frames`` for many)."""
        return next(self.iter_frames([index], depth=depth))

    def _records(self, indices, depth: bool):
        """(index, the file's frame record) of the frames at ``indices`` in one pass
        over the file (depth decoded only with ``depth``)."""
        wanted = iter(sorted(int(i) for i in indices))
        target = next(wanted, None)
        _, frames = iter_sens(self.path, depth=depth)
        for i, f in enumerate(frames):
            if target is None:
                return
            if i != target:
                continue
            yield i, f
            target = next(wanted, None)
        if target is not None:
            raise IndexError(f"{self.path}: no frame {target}")

    def iter_frames(self, indices, depth: bool = True):
        """The frames at ``indices`` (increasing) in one pass over the file (depth
        decoded only with ``depth``)."""
        for i, f in self._records(indices, depth):
            name = f"{self.path} frame {i}"
            color = np.asarray(decode_color(f.color_jpeg, name=name))
            depth_map = decode_depth(f.depth, self.header.depth_shift, name) if depth else None
            yield Frame(color, depth_map, self._poses[i], self.K_color, self.K_depth, i, name)

    def iter_images(self, indices, sizes, mode: str = "RGB"):
        """:meth:`SceneReader.iter_images` from the JPEG bytes in the file (one pass),
        each size decoded downsized as from a frame's file."""
        for i, f in self._records(indices, depth=False):
            name = f"{self.path} frame {i}"
            yield color_at_sizes(f.color_jpeg, self.color_size, sizes, mode, name)
