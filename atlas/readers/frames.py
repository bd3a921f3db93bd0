"""The frame record every reader yields, and the interface readers share."""

from __future__ import annotations

import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.readers.image_io import color_at_sizes, resize_image


@dataclass
class Frame:
    """One posed frame.

    color: (H, W, 3) uint8 RGB; depth: (h, w) float32 metres, 0 = no measurement, or None
    (no depth in the scene, or the frame read with ``depth=False``);
    pose: (4, 4) float64 camera-to-world (OpenCV axes, metres); K_color: (3, 3) for the
    colour image's size; K_depth: (3, 3) for the depth image's size, or None;
    frame_id: the dataset's frame number; name: where it came from (for messages).
    """

    color: np.ndarray
    depth: np.ndarray | None
    pose: np.ndarray
    K_color: np.ndarray
    K_depth: np.ndarray | None
    frame_id: int
    name: str


def check_color_size(frame: Frame, size: tuple[int, int]) -> None:
    """``ValueError`` naming the frame when its colour image is not ``size`` (width,
    height), the size its sequence declares."""
    if frame.color.shape[1::-1] != tuple(size):
        raise ValueError(
            f"{frame.name}: image is {frame.color.shape[1]}x{frame.color.shape[0]}, "
            f"the sequence's are {size[0]}x{size[1]}"
        )


def _drops_depth(method: Callable, iterates: bool) -> Callable:
    """``method`` (a reader's ``read_frame`` or ``iter_frames`` written without the
    ``depth`` flag) taking ``depth=`` too: with ``depth=False`` its frames' depth is
    dropped (read all the same, as the reader knows no other way)."""

    @functools.wraps(method)
    def wrapper(self, arg, depth: bool = True):
        out = method(self, arg)
        if depth:
            return out
        if not iterates:
            out.depth = None
            return out
        return (_without_depth(frame) for frame in out)

    return wrapper


def _takes_depth(method: Callable) -> bool:
    """Whether ``method`` accepts a ``depth`` keyword."""
    params = inspect.signature(method).parameters.values()
    return any(p.name == "depth" or p.kind is p.VAR_KEYWORD for p in params)


def _without_depth(frame: Frame) -> Frame:
    frame.depth = None
    return frame


class SceneReader(ABC):
    """A recorded scene: cameras available at once (cheap), images streamed per frame.

    ``poses`` may hold non-finite matrices (ScanNet has some); ``valid`` says which are
    usable. Poses are in the dataset's own world frame; gravity alignment
    (``atlas.readers.alignment``) is applied by the per-scene pipeline and by
    preparation, not by readers: a reader only declares its ``up``.

    ``read_frame(index, depth=False)`` and ``iter_frames(indices, depth=False)`` give the
    colour only: the depth file is not opened (``frame.depth`` is None), so what works
    from RGB alone never stops at a damaged depth map. Readers written without the flag
    (``read_frame(self, index)``) still work: their depth is read, then dropped.
    """

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name, iterates in (("read_frame", False), ("iter_frames", True)):
            method = cls.__dict__.get(name)
            if callable(method) and not _takes_depth(method):
                setattr(cls, name, _drops_depth(method, iterates))

    name: str
    frame_ids: list[int]
    K_color: np.ndarray
    K_depth: np.ndarray | None
    color_size: tuple[int, int]  # (width, height)
    depth_size: tuple[int, int] | None
    sequential: bool = False  # True: frames live in one stream (read them with iter_frames)
    # The gravity alignment this layout needs by default (``align=dataset``): "none" for
    # layouts that are Z-up already (ScanNet, prepared scenes), else "auto" (estimated).
    up: str = "auto"
    source: Path | None = None  # the folder or file it was opened from (for messages)

    @property
    def where(self) -> str:
        """The scene's source path when known, else its name: how messages name it."""
        return str(self.source) if self.source is not None else self.name

    @property
    @abstractmethod
    def poses(self) -> np.ndarray:
        """(N, 4, 4) float64 camera-to-world of every frame, in ``frame_ids`` order."""

    @abstractmethod
    def read_frame(self, index: int, depth: bool = True) -> Frame:
        """The ``index``-th frame (position in ``frame_ids``), images loaded (the depth
        map only with ``depth``)."""

    def iter_frames(self, indices: Iterable[int], depth: bool = True) -> Iterator[Frame]:
        """The frames at ``indices`` (increasing), one at a time (depth maps only with
        ``depth``); readers of sequential containers override this with a single pass."""
        for index in indices:
            yield self.read_frame(int(index), depth=depth)

    def frame_files(self, index: int) -> tuple[Path, Path | None] | None:
        """The colour and depth files of a frame (``read_frame`` decodes exactly these),
        or None when frames live inside a container file (``.sens``) and must be
        extracted to be referenced."""
        return None

    def iter_images(
        self, indices: Iterable[int], sizes: Sequence[tuple[int, int]], mode: str = "RGB"
    ) -> Iterator[list[np.ndarray]]:
        """For each frame at ``indices`` (increasing), its colour image in ``mode``
        ("RGB": (H, W, 3) uint8, or "L": (H, W) uint8 grey) resized to each of
        ``sizes`` (width, height), bilinearly (anti-aliased). From the frames' files
        (:meth:`frame_files`) each size is resized from the image decoded at the
        smallest JPEG scale (1, 1/2, 1/4 or 1/8) at least twice that size, several times
        faster than a full frame and the same whatever other sizes are asked; readers
        without files resize their full frames. A colour image not of ``color_size`` is
        an error naming it."""
        indices = [int(i) for i in indices]
        files = [self.frame_files(i) for i in indices]
        if all(f is not None for f in files):
            for color_path, _ in files:
                yield color_at_sizes(color_path, self.color_size, sizes, mode)
            return
        for frame in self.iter_frames(indices, depth=False):
            check_color_size(frame, self.color_size)
            full = Image.fromarray(frame.color).convert(mode)
            yield [resize_image(full, size) for size in sizes]

    @property
    def gt_mesh_path(self) -> Path | None:
        """The scene's ground-truth mesh file, if the dataset has one."""
        return None

    @property
    def valid(self) -> np.ndarray:
        """(N,) bool: frames whose pose is finite."""
        return np.isfinite(self.poses).all(axis=(1, 2))

    def __len__(self) -> int:
        return len(self.frame_ids)

    def __iter__(self) -> Iterator[Frame]:
        """Frames with valid poses, one at a time."""
        yield from self.iter_frames(np.flatnonzero(self.valid))


class ImageFilesReader(SceneReader):
    """A reader whose frames are image files: ``_color_paths`` (N paths), optional
    ``_depth_paths`` (N paths, depth PNGs in units of 1 / ``depth_shift`` metres)."""

    _color_paths: list[Path]
    _depth_paths: list[Path] | None = None
    depth_shift: float = 1000.0

    def frame_files(self, index: int) -> tuple[Path, Path | None]:
        depth = self._depth_paths[index] if self._depth_paths is not None else None
        return self._color_paths[index], depth

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        from atlas.readers.image_io import read_color, read_depth

        color_path, depth_path = self.frame_files(index)
        depth_map = (
            read_depth(depth_path, self.depth_shift, self.depth_size)
            if depth and depth_path is not None
            else None
        )
        return Frame(
            read_color(color_path, self.color_size),
            depth_map,
            self.poses[index],
            self.K_color,
            self.K_depth,
            self.frame_ids[index],
            str(color_path),
        )


class SubsetReader(SceneReader):
    """The frames ``indices`` (positions, increasing) of another reader, as a scene of
    their own (e.g. 7-Scenes frames 400-499 held out from training)."""

    def __init__(self, base: SceneReader, indices: Iterable[int], name: str | None = None) -> None:
        self.base = base
        self.indices = np.asarray(list(indices), dtype=np.int64)
        if len(self.indices) == 0 or self.indices.min() < 0 or self.indices.max() >= len(base):
            raise ValueError(f"{base.name}: frame subset out of range 0..{len(base) - 1}")
        self.name = name or base.name
        self.frame_ids = [base.frame_ids[i] for i in self.indices]
        self.K_color, self.K_depth = base.K_color, base.K_depth
        self.color_size, self.depth_size = base.color_size, base.depth_size
        self.sequential, self.up, self.source = base.sequential, base.up, base.source
        self._poses = base.poses[self.indices]

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        return self.base.read_frame(int(self.indices[index]), depth=depth)

    def iter_frames(self, indices: Iterable[int], depth: bool = True) -> Iterator[Frame]:
        return self.base.iter_frames(self.indices[list(indices)], depth=depth)

    def frame_files(self, index: int) -> tuple[Path, Path | None] | None:
        return self.base.frame_files(int(self.indices[index]))
