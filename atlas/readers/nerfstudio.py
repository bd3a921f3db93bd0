"""nerfstudio / instant-ngp ``transforms.json`` captures.

The scene is a ``transforms.json`` file (or the folder holding it)::

    {
      "fl_x": 500.0, "fl_y": 500.0, "cx": 320.0, "cy": 240.0, "w": 640, "h": 480,
      "frames": [
        {"file_path": "images/frame_00001.jpg",
         "transform_matrix": [[...], [...], [...], [0, 0, 0, 1]],
         "depth_file_path": "depth/frame_00001.png"},
        ...
      ]
    }

Intrinsics (pixels) may be global or per frame (a frame's keys win); all frames must end
up with the same K and image size, since a scene has one colour camera:

- ``w``, ``h``: image size; when missing, the image files' size.
- ``fl_x``, ``fl_y``: focal lengths. Without ``fl_x``, ``camera_angle_x`` (horizontal
  field of view, radians) gives ``fl_x = w / 2 / tan(camera_angle_x / 2)``; without
  ``fl_y``, ``camera_angle_y`` likewise, else ``fl_y = fl_x``.
- ``cx``, ``cy``: principal point, default ``w / 2``, ``h / 2``. nerfstudio and
  instant-ngp put the centre of the top-left pixel at (0.5, 0.5); this package puts it at
  (0, 0) (OpenCV), so 0.5 is subtracted from both on read.
- Distortion (``k1`` .. ``k4``, ``p1``, ``p2``) is ignored, with a warning when non-zero;
  ``camera_model`` values other than pinhole / OpenCV-style (fisheye, equirectangular)
  are refused.

``frames[].file_path`` is relative to the json's folder (absolute paths work too), with or
without extension (``./train/r_0`` finds ``r_0.png``, ``.jpg`` or ``.jpeg``).
``frames[].transform_matrix`` is camera-to-world with OpenGL / Blender camera axes (x right,
y up, z backward); it is converted to OpenCV axes by post-multiplying
``diag(1, -1, -1, 1)``. A 3x4 matrix gets the row (0, 0, 0, 1). A frame without a matrix, or
with non-finite values, gets a NaN pose (``valid`` leaves it out). Positions are taken as
written, in metres: instant-ngp's ``scale`` / ``offset`` / ``aabb_scale`` and nerfstudio's
``applied_transform`` are render settings or history and are not applied.

Frames are sorted by ``file_path`` in natural order (as nerfstudio does); ``frame_ids`` are
the file names' numbers when all are numbers, else positions 0..N-1.

Depth (optional): ``frames[].depth_file_path`` (nerfstudio) or ``depth_path``
(instant-ngp), a 16-bit PNG relative to the json's folder, in units of
``integer_depth_scale`` metres (a top-level key; default 0.001, i.e. millimetres),
0 = missing. Either every frame has depth or none. Depth is taken as registered to the
colour camera: ``K_depth`` is K scaled to the depth images' size.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from atlas.geometry.camera import resize_intrinsics
from atlas.readers.frames import ImageFilesReader
from atlas.readers.posed_images import IMAGE_SUFFIXES, common_image_size, frame_ids_for, natural_key

# Post-multiplying an OpenGL camera-to-world by this gives the OpenCV camera-to-world.
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
_PINHOLE_MODELS = ("PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL")
_DEPTH_KEYS = ("depth_file_path", "depth_path")


def _load_json(path: Path) -> dict[str, Any]:
    """The json object in ``path``, with one-line errors naming it."""
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: transforms file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
        raise ValueError(f"{path}: no 'frames' list (not a transforms.json)")
    if not meta["frames"]:
        raise ValueError(f"{path}: 'frames' is empty")
    return meta


def resolve_image(root: Path, file_path: str, where: str) -> Path:
    """The image file ``file_path`` names, relative to ``root``; a path without an image
    extension also finds ``<path>.png``, ``.jpg`` or ``.jpeg``."""
    path = root / file_path
    if path.is_file():
        return path
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
            candidate = path.with_name(path.name + suffix)
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"{path}: image not found ({where})")


def pose_from_matrix(value: Any, where: str) -> np.ndarray:
    """(4, 4) float64 OpenGL camera-to-world from a json matrix (4x4 or 3x4); NaN when
    missing or non-finite; ``ValueError`` naming ``where`` when malformed."""
    if value is None:
        return np.full((4, 4), np.nan)
    try:
        m = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: transform_matrix is not a numeric matrix") from None
    if m.shape == (3, 4):
        m = np.vstack([m, [0.0, 0.0, 0.0, 1.0]])
    if m.shape != (4, 4):
        raise ValueError(f"{where}: transform_matrix must be 4x4, got shape {m.shape}")
    return m if np.isfinite(m).all() else np.full((4, 4), np.nan)


def _number(params: dict[str, Any], key: str, where: str) -> float | None:
    """``params[key]`` as a finite float, None when absent."""
    value = params.get(key)
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {key} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: {key} must be finite, got {value!r}")
    return x


def frame_intrinsics(
    params: dict[str, Any], image_size: tuple[int, int], where: str
) -> tuple[np.ndarray, tuple[int, int]]:
    """K (3, 3) in this package's pixel convention and (width, height) from the merged
    global + per-frame keys ``params``; ``image_size`` (width, height) fills in w and h."""
    model = params.get("camera_model")
    if model is not None and str(model).upper() not in _PINHOLE_MODELS:
        raise ValueError(f"{where}: camera_model {model!r} is not supported (pinhole only)")
    w = _number(params, "w", where)
    h = _number(params, "h", where)
    size = (int(w) if w is not None else image_size[0], int(h) if h is not None else image_size[1])
    fx = _number(params, "fl_x", where)
    if fx is None:
        angle = _number(params, "camera_angle_x", where)
        if angle is None:
            raise ValueError(f"{where}: no focal length (fl_x or camera_angle_x)")
        fx = 0.5 * size[0] / math.tan(0.5 * angle)
    fy = _number(params, "fl_y", where)
    if fy is None:
        angle_y = _number(params, "camera_angle_y", where)
        fy = 0.5 * size[1] / math.tan(0.5 * angle_y) if angle_y is not None else fx
    if fx <= 0 or fy <= 0:
        raise ValueError(f"{where}: focal lengths must be positive, got {fx}, {fy}")
    cx = _number(params, "cx", where)
    cy = _number(params, "cy", where)
    cx = (0.5 * size[0] if cx is None else cx) - 0.5
    cy = (0.5 * size[1] if cy is None else cy) - 0.5
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, size


def _has_distortion(params: dict[str, Any], where: str) -> bool:
    """Whether any distortion coefficient in ``params`` is non-zero."""
    return any((_number(params, k, where) or 0.0) != 0.0 for k in _DISTORTION_KEYS)


class TransformsJson(ImageFilesReader):
    """A nerfstudio / instant-ngp capture (format in the module docstring).

    path: the ``transforms.json`` file or its folder. K_color: (3, 3) pixels for
    ``color_size`` (width, height); poses: (N, 4, 4) float64 camera-to-world, OpenCV axes,
    metres (as written); depth (optional): (h, w) float32 metres.
    """

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        self.json_path = path / "transforms.json" if path.is_dir() else path
        self.root = self.json_path.parent
        self.name = self.root.resolve().name
        meta = _load_json(self.json_path)
        frames = self._sorted_frames(meta["frames"])
        self._color_paths = [
            resolve_image(self.root, f["file_path"], f"{self.json_path} frame {i}")
            for i, f in frames
        ]
        self.frame_ids = frame_ids_for([p.stem for p in self._color_paths])
        self.color_size = common_image_size(self._color_paths, "colour image")
        self.K_color = self._common_intrinsics(meta, frames)
        gl_poses = [
            pose_from_matrix(f.get("transform_matrix"), f"{self.json_path} frame {i}")
            for i, f in frames
        ]
        self._poses = np.stack(gl_poses) @ GL_TO_CV  # OpenGL -> OpenCV camera axes
        self._depth_paths = self._find_depth(frames)
        self.depth_shift = self._depth_shift(meta)
        self.depth_size = None
        self.K_depth = None
        if self._depth_paths is not None:
            self.depth_size = common_image_size(
                self._depth_paths, "depth image", skip_unreadable=True
            )
            self.K_depth = resize_intrinsics(self.K_color, self.color_size, self.depth_size)

    def _sorted_frames(self, frames: list[Any]) -> list[tuple[int, dict[str, Any]]]:
        """(index in the file, frame) pairs in natural ``file_path`` order."""
        for i, f in enumerate(frames):
            if not isinstance(f, dict) or not isinstance(f.get("file_path"), str):
                raise ValueError(f"{self.json_path} frame {i}: no file_path")
        return sorted(enumerate(frames), key=lambda item: natural_key(item[1]["file_path"]))

    def _common_intrinsics(self, meta: dict[str, Any], frames: list) -> np.ndarray:
        """The one K (3, 3) of every frame; ``ValueError`` when frames differ or the
        declared size is not the images' size."""
        globals_ = {k: v for k, v in meta.items() if k != "frames"}
        K0 = None
        distorted = False
        for (i, f), image in zip(frames, self._color_paths, strict=True):
            where = f"{self.json_path} frame {i}"
            params = {**globals_, **f}
            K, size = frame_intrinsics(params, self.color_size, where)
            if size != self.color_size:
                raise ValueError(
                    f"{image}: image is {self.color_size[0]}x{self.color_size[1]} but "
                    f"{where} says w={size[0]}, h={size[1]}"
                )
            if K0 is None:
                K0 = K
            elif not np.allclose(K, K0, rtol=1e-9, atol=1e-9):
                raise ValueError(
                    f"{where}: intrinsics differ from the first frame's "
                    "(one camera per scene is supported)"
                )
            distorted = distorted or _has_distortion(params, where)
        if distorted:
            warnings.warn(
                f"{self.json_path}: lens distortion parameters are ignored (pinhole model)",
                stacklevel=3,
            )
        return K0

    def _find_depth(self, frames: list) -> list[Path] | None:
        """Every frame's depth file, or None when no frame names one."""
        keys = [next((k for k in _DEPTH_KEYS if f.get(k)), None) for _, f in frames]
        if all(k is None for k in keys):
            return None
        paths = []
        for (i, f), key in zip(frames, keys, strict=True):
            where = f"{self.json_path} frame {i}"
            if key is None:
                raise ValueError(f"{where}: no depth_file_path while other frames have one")
            path = self.root / f[key]
            if not path.is_file():
                raise FileNotFoundError(f"{path}: depth image not found ({where})")
            paths.append(path)
        return paths

    def _depth_shift(self, meta: dict[str, Any]) -> float:
        """Depth PNG units per metre (1 / ``integer_depth_scale``; 1000 by default)."""
        scale = _number(meta, "integer_depth_scale", str(self.json_path))
        if scale is None:
            return 1000.0
        if scale <= 0:
            raise ValueError(f"{self.json_path}: integer_depth_scale must be positive")
        return 1.0 / scale

    @property
    def poses(self) -> np.ndarray:
        return self._poses
