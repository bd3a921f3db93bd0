"""Reading the files of raw datasets, with one-line errors naming the file."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError


def check_image_size(
    image: np.ndarray,
    size: tuple[int, int] | None,
    path: Path,
    what: str,
    size_from: Path | None = None,
) -> np.ndarray:
    """``image`` (H, W, ...) unchanged; ``ValueError`` naming ``path`` when ``size``
    (width, height, the size the scene declares for its ``what`` images, read from the
    file ``size_from`` when given) is given and differs."""
    _check_size(image.shape[1::-1], size, path, what, size_from)
    return image


def _check_size(
    actual: tuple[int, int],
    size: tuple[int, int] | None,
    path: Path | str,
    what: str,
    size_from: Path | None = None,
) -> None:
    """``ValueError`` naming ``path`` when an image of ``actual`` (width, height) is not
    ``size`` (see :func:`check_image_size`); nothing when ``size`` is None."""
    if size is not None and tuple(actual) != tuple(size):
        source = f" (the size of {size_from})" if size_from is not None else ""
        raise ValueError(
            f"{path}: {what} image is {actual[0]}x{actual[1]}, "
            f"the scene's are {size[0]}x{size[1]}{source}"
        )


def read_color(
    path: str | Path, size: tuple[int, int] | None = None, size_from: Path | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a JPEG/PNG file; with ``size`` (width, height) an image
    of another size is an error naming the file (and ``size_from``, the file the size
    was read from, when given)."""
    color = np.asarray(decode_color(Path(path)))
    return check_image_size(color, size, Path(path), "colour", size_from)


def decode_color(
    source: str | Path | bytes,
    mode: str = "RGB",
    size: tuple[int, int] | None = None,
    at_least: tuple[int, int] | None = None,
    name: str | None = None,
) -> Image.Image:
    """The colour image in ``source`` (a file, or an encoded image held in memory such
    as a frame's JPEG inside a ``.sens`` file) as a PIL image in ``mode`` ("RGB" or
    "L"). With ``size`` (width, height, the size the scene declares) a full image of
    another size is an error; with ``at_least`` (width, height) a JPEG is decoded at
    the smallest scale (1, 1/2, 1/4 or 1/8) still that large (other formats at full
    size), a fast start for a downsized copy. Errors are one line naming ``name``
    (default: the file)."""
    name = name if name is not None else str(source)
    unreadable = (UnidentifiedImageError, OSError, SyntaxError, ValueError)
    try:
        img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else Path(source))
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: colour image not found") from None
    except unreadable as err:
        raise ValueError(f"{name}: unreadable colour image ({err})") from None
    with img:
        _check_size(img.size, size, name, "colour")
        try:
            if at_least is not None:
                img.draft(mode, tuple(at_least))
            return img.convert(mode)
        except unreadable as err:
            raise ValueError(f"{name}: unreadable colour image ({err})") from None


def color_at_sizes(
    source: str | Path | bytes,
    size: tuple[int, int],
    sizes: Sequence[tuple[int, int]],
    mode: str = "RGB",
    name: str | None = None,
) -> list[np.ndarray]:
    """The colour image in ``source`` (see :func:`decode_color`; ``size``: the scene's)
    resized to each of ``sizes`` (width, height), each from the image decoded at the
    smallest JPEG scale at least twice that size: an anti-aliased copy, the same
    whatever other sizes are asked, several times faster than from the full image."""
    return [
        resize_image(decode_color(source, mode, size, (2 * w, 2 * h), name), (w, h))
        for w, h in sizes
    ]


def resize_image(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized to ``size`` (width, height) bilinearly (anti-aliased), as a new
    uint8 array."""
    return np.array(image.resize(tuple(size), Image.BILINEAR))


def decode_depth(raw: np.ndarray, depth_shift: float, name: str) -> np.ndarray:
    """Depth units -> (H, W) float32 metres; 0 and 65535 (no measurement) become 0."""
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise ValueError(
            f"{name}: depth must be a 16-bit single-channel image, got {raw.dtype} {raw.shape}"
        )
    depth = raw.astype(np.float32) / np.float32(depth_shift)
    depth[(raw == 0) | (raw == 65535)] = 0.0
    return depth


def read_depth(
    path: str | Path, depth_shift: float = 1000.0, size: tuple[int, int] | None = None
) -> np.ndarray:
    """(H, W) float32 metres from a uint16 PNG (``depth_shift`` units per metre); with
    ``size`` (width, height) a depth map of another size is an error naming the file."""
    path = Path(path)
    try:
        with Image.open(path) as img:
            raw = np.asarray(img)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: depth image not found") from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ValueError(f"{path}: unreadable depth image ({err})") from None
    if raw.dtype == np.int32 and raw.ndim == 2 and raw.min() >= 0 and raw.max() <= 65535:
        raw = raw.astype(np.uint16)  # some PIL versions open 16-bit PNGs as int32 "I"
    return check_image_size(decode_depth(raw, depth_shift, str(path)), size, path, "depth")


def _load_matrix(path: Path, what: str) -> np.ndarray:
    """A whitespace-separated float64 matrix (2-D) from a text file."""
    try:
        return np.loadtxt(path, dtype=np.float64, ndmin=2)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except ValueError as err:
        raise ValueError(f"{path}: not a numeric matrix ({err})") from None


def read_matrix(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A whitespace-separated float matrix of the given shape (float64)."""
    path = Path(path)
    values = _load_matrix(path, "file")
    if values.shape != shape:
        raise ValueError(f"{path}: expected a {shape[0]}x{shape[1]} matrix, got {values.shape}")
    return values


def read_intrinsics(path: str | Path) -> np.ndarray:
    """3x3 intrinsics from a 3x3 or 4x4 (K in the top-left) text file."""
    path = Path(path)
    values = _load_matrix(path, "intrinsics file")
    if values.shape not in ((3, 3), (4, 4)):
        raise ValueError(f"{path}: intrinsics must be 3x3 or 4x4, got {values.shape}")
    K = values[:3, :3]
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f"{path}: intrinsics have non-finite or non-positive focal lengths")
    return K
