"""A generic "posed images" folder, for captures from phones, SLAM or SfM tools.

Layout (``<name>`` is a file name without its extension, e.g. ``IMG_0001``)::

    folder/
      intrinsics.txt          3x3 colour intrinsics K in pixels for the images' size
                              (a 4x4 with K in its top-left 3x3 is accepted too)
      images/<name>.jpg       colour images (.jpg, .jpeg or .png, any case), all one size;
                              other files in images/ are ignored
      poses/<name>.txt        4x4 camera-to-world, OpenCV camera axes (x right, y down,
                              z forward), metres, whitespace-separated numbers; one per
                              image (pose files without an image are ignored). Non-finite
                              values (inf, nan) mark a frame without a pose: it is skipped.
      depth/<name>.png        optional: depth as 16-bit PNG in millimetres, 0 = missing;
                              when depth/ exists every image needs one, all one size
      intrinsics_depth.txt    optional: 3x3 K for the depth images' size; without it depth
                              is taken as registered to the colour camera, and K_depth is
                              K scaled from the colour size to the depth size

Intrinsics follow the OpenCV pixel convention of the whole package: the centre of the
top-left pixel is (0, 0), so for an ideal camera ``cx = (width - 1) / 2``. (COLMAP and
nerfstudio put that centre at (0.5, 0.5); subtract 0.5 from their cx and cy.)

Frames are sorted by name in natural order (runs of digits compare as numbers, so
``frame2`` comes before ``frame10``). ``frame_ids`` are the names' numbers when every name
is a number (``000123`` -> 123), otherwise positions 0..N-1 in that order.

Errors name the file and the problem: an image without a pose file, an unreadable matrix,
images (or depth maps) of different sizes, two images sharing a name.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from atlas.geometry.camera import resize_intrinsics
from atlas.readers.frames import ImageFilesReader
from atlas.readers.image_io import read_intrinsics, read_matrix

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple:
    """Sort key comparing runs of digits as numbers (``a2`` < ``a10``), case-insensitive."""
    parts = _DIGITS.split(name.lower())
    return tuple((0, int(p), p) if p.isdigit() else (1, 0, p) for p in parts)


def frame_ids_for(names: Sequence[str]) -> list[int]:
    """Frame numbers for frames named ``names`` (already in order): the names' numbers when
    all are distinct non-negative integers, otherwise positions 0..N-1."""
    if all(n.isdigit() for n in names):
        ids = [int(n) for n in names]
        if len(set(ids)) == len(ids):
            return ids
    return list(range(len(names)))


def image_size(path: Path, what: str = "image") -> tuple[int, int]:
    """(width, height) of an image file from its header, with errors naming the file."""
    try:
        with Image.open(path) as img:
            return img.size
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable {what} ({err})") from None


def common_image_size(
    paths: Sequence[Path], what: str = "image", skip_unreadable: bool = False
) -> tuple[int, int]:
    """The (width, height) shared by every image in ``paths`` (headers only);
    ``ValueError`` naming two files of different sizes. With ``skip_unreadable`` (depth
    maps, which work from RGB alone never opens) a file whose header cannot be read is
    left out here, to be named when it is read; all of them unreadable is an error
    naming the first."""
    first: tuple[int, int] | None = None
    first_path = paths[0]
    for path in paths:
        try:
            size = image_size(path, what)
        except (OSError, ValueError):
            if skip_unreadable:
                continue
            raise
        if first is None:
            first, first_path = size, path
        elif size != first:
            raise ValueError(
                f"{path}: {what} is {size[0]}x{size[1]} but {first_path} is "
                f"{first[0]}x{first[1]}; all {what}s of a scene must share one size"
            )
    return first if first is not None else image_size(paths[0], what)


def first_image_size(paths: Iterable[Path], what: str = "image") -> tuple[int, int]:
    """The (width, height) of the first image in ``paths`` whose header reads (the
    others are named when read); none readable is an error naming the first."""
    paths = iter(paths)
    first = next(paths)
    for path in itertools.chain([first], paths):
        try:
            return image_size(path, what)
        except (OSError, ValueError):
            continue
    return image_size(first, what)


def _list_images(image_dir: Path) -> list[Path]:
    """The colour images of ``image_dir`` in natural name order; errors on none or on two
    files with the same name."""
    if not image_dir.is_dir():
        raise FileNotFoundError(f"{image_dir}: no images folder (posed images layout)")
    paths = [p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not paths:
        raise ValueError(f"{image_dir}: no images (*.jpg, *.jpeg, *.png)")
    paths.sort(key=lambda p: natural_key(p.stem))
    for a, b in itertools.pairwise(paths):
        if a.stem == b.stem:
            raise ValueError(f"{b}: two images named {a.stem!r} ({a.name} and {b.name})")
    return paths


class PosedImagesFolder(ImageFilesReader):
    """A posed images folder (layout in the module docstring).

    K_color: (3, 3) pixels for ``color_size`` (width, height); poses: (N, 4, 4) float64
    camera-to-world in metres, OpenCV axes; depth (optional): (h, w) float32 metres.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: posed images folder not found")
        self.name = self.folder.name
        self._color_paths = _list_images(self.folder / "images")
        names = [p.stem for p in self._color_paths]
        self.frame_ids = frame_ids_for(names)
        self._pose_paths = [self.folder / "poses" / f"{n}.txt" for n in names]
        for image, pose in zip(self._color_paths, self._pose_paths, strict=True):
            if not pose.is_file():
                raise FileNotFoundError(f"{pose}: no pose file for image {image}")
        self.K_color = read_intrinsics(self.folder / "intrinsics.txt")
        self.color_size = common_image_size(self._color_paths, "colour image")
        self._depth_paths = self._find_depth(names)
        self.depth_size = None
        self.K_depth = None
        if self._depth_paths is not None:
            self.depth_size = common_image_size(
                self._depth_paths, "depth image", skip_unreadable=True
            )
            k_path = self.folder / "intrinsics_depth.txt"
            self.K_depth = (
                read_intrinsics(k_path)
                if k_path.is_file()
                else resize_intrinsics(self.K_color, self.color_size, self.depth_size)
            )
        self._poses: np.ndarray | None = None

    def _find_depth(self, names: list[str]) -> list[Path] | None:
        """The depth files of every frame, or None without a depth/ folder."""
        depth_dir = self.folder / "depth"
        if not depth_dir.is_dir():
            return None
        paths = [depth_dir / f"{n}.png" for n in names]
        for image, depth in zip(self._color_paths, paths, strict=True):
            if not depth.is_file():
                raise FileNotFoundError(f"{depth}: no depth map for image {image}")
        return paths

    @property
    def poses(self) -> np.ndarray:
        if self._poses is None:
            self._poses = np.stack([read_matrix(p, (4, 4)) for p in self._pose_paths])
        return self._poses
