"""COLMAP sparse models in text form (``cameras.txt``, ``images.txt``).

Scene layouts accepted (the path given is ``folder``)::

    folder/                          folder/
      cameras.txt                      sparse/0/cameras.txt
      images.txt                       sparse/0/images.txt
      points3D.txt   (ignored)         sparse/0/points3D.txt   (ignored)
      images/<NAME>                    images/<NAME>

``<NAME>`` is the image name in ``images.txt`` (it may hold sub-folders). Another image
folder can be given (``image_dir``). Binary models (``cameras.bin``) are refused with the
command that converts them: ``colmap model_converter --input_path M --output_path M
--output_type TXT``.

``cameras.txt``: ``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...``. Models read: SIMPLE_PINHOLE
(f, cx, cy), PINHOLE (fx, fy, cx, cy), SIMPLE_RADIAL (f, cx, cy, k), RADIAL (f, cx, cy,
k1, k2), OPENCV (fx, fy, cx, cy, k1, k2, p1, p2) and FULL_OPENCV (fx, fy, cx, cy, k1..k6,
p1, p2); distortion is ignored (one warning per scene when non-zero: undistort the images
with ``colmap image_undistorter`` for exact results). Other models (fisheye...) are refused.
The images of a scene must share one camera: one size, one set of intrinsics (several
camera ids with equal values are fine).

COLMAP puts the centre of the top-left pixel at (0.5, 0.5); this package (OpenCV) puts it
at (0, 0), so ``cx`` and ``cy`` are read as ``cx - 0.5`` and ``cy - 0.5``.

``images.txt``: two lines per image, ``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` and
its 2D points (ignored, possibly empty). (q, t) is world-to-camera: ``x_cam = R(q) x_world
+ t``; the camera-to-world pose is ``[R^T | -R^T t]``. COLMAP's camera axes are OpenCV's
(x right, y down, z forward), so no axis change is needed.

Scale: an SfM reconstruction has an arbitrary scale (and orientation) unless it was
scaled to metres (e.g. with ``colmap model_aligner`` or known distances); this reader
takes positions as metres. ``atlas.readers.checks.check_metric_scale`` flags trajectories
that look non-metric.

Frames are sorted by NAME in natural order; ``frame_ids`` are the image file names' numbers
when all are numbers, else positions 0..N-1.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atlas.readers.frames import ImageFilesReader
from atlas.readers.posed_images import common_image_size, frame_ids_for, natural_key

# Model name -> (number of parameters, indices of fx, fy, cx, cy among them).
CAMERA_MODELS: dict[str, tuple[int, tuple[int, int, int, int]]] = {
    "SIMPLE_PINHOLE": (3, (0, 0, 1, 2)),
    "PINHOLE": (4, (0, 1, 2, 3)),
    "SIMPLE_RADIAL": (4, (0, 0, 1, 2)),
    "RADIAL": (5, (0, 0, 1, 2)),
    "OPENCV": (8, (0, 1, 2, 3)),
    "FULL_OPENCV": (12, (0, 1, 2, 3)),
}


@dataclass
class ColmapCamera:
    """One line of ``cameras.txt``. K: (3, 3) in this package's pixel convention
    (COLMAP's cx, cy minus 0.5); size: (width, height); distorted: non-zero distortion."""

    camera_id: int
    model: str
    size: tuple[int, int]
    K: np.ndarray
    distorted: bool


@dataclass
class ColmapImage:
    """One image of ``images.txt``: world-to-camera quaternion q (4,) as (w, x, y, z) and
    translation t (3,) in model units."""

    image_id: int
    q: np.ndarray
    t: np.ndarray
    camera_id: int
    name: str


def quat_to_rot(q: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) ordered (w, x, y, z);
    quaternions are normalised first (a zero quaternion gives NaN)."""
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def world_to_camera_to_pose(q: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Camera-to-world (..., 4, 4) from COLMAP world-to-camera q (..., 4) (w, x, y, z) and
    t (..., 3): ``[R^T | -R^T t]``. Non-finite input gives a NaN pose."""
    R_t = np.swapaxes(quat_to_rot(q), -1, -2)
    t = np.asarray(t, dtype=np.float64)
    pose = np.zeros((*R_t.shape[:-2], 4, 4))
    pose[..., :3, :3] = R_t
    pose[..., :3, 3] = -(R_t @ t[..., None])[..., 0]
    pose[..., 3, 3] = 1.0
    bad = ~np.isfinite(pose).all(axis=(-1, -2))
    pose[bad] = np.nan
    return pose


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(1-based line number, text) of the lines that are not comments; blank lines kept
    (an image's 2D point line may be empty)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: unreadable ({err})") from None
    return [
        (n, line.strip())
        for n, line in enumerate(text.splitlines(), start=1)
        if not line.lstrip().startswith("#")
    ]


def _parse_camera(fields: list[str], where: str) -> ColmapCamera:
    """A ``cameras.txt`` line split into fields."""
    if len(fields) < 4:
        raise ValueError(f"{where}: expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS...")
    model = fields[1].upper()
    if model not in CAMERA_MODELS:
        raise ValueError(
            f"{where}: camera model {fields[1]} is not supported "
            f"(supported: {', '.join(CAMERA_MODELS)})"
        )
    count, (ifx, ify, icx, icy) = CAMERA_MODELS[model]
    try:
        camera_id, width, height = int(fields[0]), int(fields[2]), int(fields[3])
        params = np.array([float(v) for v in fields[4:]])
    except ValueError:
        raise ValueError(f"{where}: non-numeric camera id, size or parameters") from None
    if len(params) != count:
        raise ValueError(f"{where}: {model} needs {count} parameters, got {len(params)}")
    fx, fy, cx, cy = params[[ifx, ify, icx, icy]]
    if not np.isfinite(params).all() or fx <= 0 or fy <= 0 or width <= 0 or height <= 0:
        raise ValueError(f"{where}: non-finite or non-positive focal length or size")
    K = np.array([[fx, 0.0, cx - 0.5], [0.0, fy, cy - 0.5], [0.0, 0.0, 1.0]])
    n_pinhole = 3 if ifx == ify else 4
    distorted = bool(np.any(params[n_pinhole:] != 0))
    return ColmapCamera(camera_id, model, (width, height), K, distorted)


def read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    """The cameras of a COLMAP ``cameras.txt``, by id."""
    cameras = {}
    for n, line in _data_lines(path):
        if line:
            camera = _parse_camera(line.split(), f"{path} line {n}")
            cameras[camera.camera_id] = camera
    if not cameras:
        raise ValueError(f"{path}: no cameras")
    return cameras


def _parse_image(fields: list[str], where: str) -> ColmapImage:
    """An ``images.txt`` image line split into fields."""
    if len(fields) < 10:
        raise ValueError(f"{where}: expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
    try:
        values = np.array([float(v) for v in fields[1:8]])
        image_id, camera_id = int(fields[0]), int(fields[8])
    except ValueError:
        raise ValueError(f"{where}: non-numeric image id, pose or camera id") from None
    name = " ".join(fields[9:])
    return ColmapImage(image_id, values[:4], values[4:], camera_id, name)


def read_images_txt(path: Path) -> list[ColmapImage]:
    """The images of a COLMAP ``images.txt`` in file order (each image line is followed by
    its 2D point line, which is skipped)."""
    lines = _data_lines(path)
    images = []
    i = 0
    while i < len(lines):
        n, line = lines[i]
        if not line:  # stray blank line where an image line would be
            i += 1
            continue
        images.append(_parse_image(line.split(), f"{path} line {n}"))
        i += 2
    if not images:
        raise ValueError(f"{path}: no images")
    return images


def find_model_dir(folder: Path) -> Path:
    """The folder holding ``cameras.txt`` and ``images.txt``: ``folder`` or
    ``folder/sparse/0``."""
    for candidate in (folder, folder / "sparse" / "0"):
        if (candidate / "cameras.txt").is_file() and (candidate / "images.txt").is_file():
            return candidate
    for candidate in (folder, folder / "sparse" / "0"):
        if (candidate / "cameras.bin").is_file():
            raise ValueError(
                f"{candidate}: binary COLMAP model; convert it to text with `colmap "
                f"model_converter --input_path {candidate} --output_path {candidate} "
                "--output_type TXT`"
            )
    raise FileNotFoundError(
        f"{folder}: no COLMAP text model (cameras.txt and images.txt here or in sparse/0/)"
    )


def _common_camera(
    cameras: dict[int, ColmapCamera], images: list[ColmapImage], where: Path
) -> ColmapCamera:
    """The one camera the images use; ``ValueError`` naming two that differ."""
    used = []
    for image in images:
        if image.camera_id not in cameras:
            raise ValueError(f"{where}: image {image.name} uses unknown camera {image.camera_id}")
        used.append(cameras[image.camera_id])
    first = used[0]
    for camera in used[1:]:
        if camera.size != first.size:
            raise ValueError(
                f"{where}: cameras {first.camera_id} ({first.size[0]}x{first.size[1]}) and "
                f"{camera.camera_id} ({camera.size[0]}x{camera.size[1]}) differ in image size; "
                "all images must share one size"
            )
        if not np.allclose(camera.K, first.K, rtol=1e-9, atol=1e-9):
            raise ValueError(
                f"{where}: cameras {first.camera_id} and {camera.camera_id} have different "
                "intrinsics; one camera per scene is supported (re-run COLMAP with a "
                "single shared camera)"
            )
    return first


class ColmapText(ImageFilesReader):
    """A COLMAP text model with its images (layout in the module docstring).

    folder: the scene folder; image_dir: the images' folder (default ``folder/images``).
    K_color: (3, 3) pixels for ``color_size`` (width, height), pixel centres at integers;
    poses: (N, 4, 4) float64 camera-to-world, OpenCV axes, in the model's units (taken as
    metres). No depth.
    """

    def __init__(self, folder: str | Path, image_dir: str | Path | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: COLMAP scene folder not found")
        self.name = self.folder.resolve().name
        self.model_dir = find_model_dir(self.folder)
        self.image_dir = Path(image_dir) if image_dir is not None else self.folder / "images"
        if not self.image_dir.is_dir():
            raise FileNotFoundError(f"{self.image_dir}: images folder not found")
        cameras = read_cameras_txt(self.model_dir / "cameras.txt")
        images = read_images_txt(self.model_dir / "images.txt")
        images.sort(key=lambda im: natural_key(im.name))
        for a, b in itertools.pairwise(images):
            if a.name == b.name:
                raise ValueError(f"{self.model_dir / 'images.txt'}: image {a.name} listed twice")
        camera = _common_camera(cameras, images, self.model_dir / "cameras.txt")
        if camera.distorted:
            warnings.warn(
                f"{self.model_dir / 'cameras.txt'}: {camera.model} distortion is ignored "
                "(pinhole model); undistort the images for exact results",
                stacklevel=2,
            )
        self._color_paths = [self.image_dir / im.name for im in images]
        for path in self._color_paths:
            if not path.is_file():
                raise FileNotFoundError(f"{path}: image listed in images.txt not found")
        self.color_size = common_image_size(self._color_paths, "colour image")
        if self.color_size != camera.size:
            w, h = self.color_size
            raise ValueError(
                f"{self._color_paths[0]}: image is {w}x{h} but camera {camera.camera_id} "
                f"in cameras.txt is {camera.size[0]}x{camera.size[1]}"
            )
        self.K_color = camera.K
        self.K_depth = None
        self.depth_size = None
        self.frame_ids = frame_ids_for([Path(im.name).stem for im in images])
        self.image_ids = [im.image_id for im in images]
        self._poses = world_to_camera_to_pose(
            np.stack([im.q for im in images]), np.stack([im.t for im in images])
        )

    @property
    def poses(self) -> np.ndarray:
        return self._poses
