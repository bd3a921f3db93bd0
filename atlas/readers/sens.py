"""ScanNet ``.sens`` files (version 4): a streaming writer and reader.

Layout (little endian): uint32 version=4; uint64 name length + name; four 4x4 float32
matrices (colour intrinsics, colour extrinsics, depth intrinsics, depth extrinsics);
int32 colour compression (2 = JPEG) and depth compression (1 = zlib uint16); uint32
colour width, height, depth width, height; float32 depth shift (1000 = millimetres);
uint64 frame count; then per frame a 4x4 float32 camera-to-world, uint64 colour and
depth timestamps, uint64 colour and depth byte counts and the two buffers; finally a
uint64 IMU frame count (0 here).
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from atlas.io_utils import atomic_path

COLOR_JPEG = 2
DEPTH_ZLIB_USHORT = 1


@dataclass
class SensHeader:
    """K_color, K_depth: (3, 3) intrinsics; color_size, depth_size: (width, height);
    depth_shift: depth units per metre; num_frames: filled in by the reader."""

    K_color: np.ndarray
    K_depth: np.ndarray
    color_size: tuple[int, int]
    depth_size: tuple[int, int]
    depth_shift: float = 1000.0
    sensor_name: str = "atlas-synthetic"
    num_frames: int = 0


@dataclass
class SensFrame:
    """pose: (4, 4) float32 camera-to-world; color_jpeg: the JPEG bytes;
    depth: (H, W) uint16 in 1/depth_shift metres (None when images were skipped)."""

    pose: np.ndarray
    color_jpeg: bytes
    depth: np.ndarray | None


def _mat4(K: np.ndarray) -> np.ndarray:
    m = np.eye(4, dtype=np.float32)
    m[:3, :3] = K
    return m


def write_sens(
    path: str | Path,
    header: SensHeader,
    frames: Iterable[tuple[np.ndarray, bytes, np.ndarray]],
    num_frames: int,
) -> None:
    """Write ``num_frames`` frames of ``(pose (4,4), jpeg bytes, depth (H, W) uint16)``
    atomically; frames are streamed, not held in memory."""
    name = header.sensor_name.encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(struct.pack("<IQ", 4, len(name)) + name)
        for m in (_mat4(header.K_color), np.eye(4), _mat4(header.K_depth), np.eye(4)):
            f.write(np.asarray(m, "<f4").tobytes())
        f.write(struct.pack("<ii", COLOR_JPEG, DEPTH_ZLIB_USHORT))
        f.write(struct.pack("<IIII", *header.color_size, *header.depth_size))
        f.write(struct.pack("<fQ", header.depth_shift, num_frames))
        written = 0
        for i, (pose, jpeg, depth) in enumerate(frames):
            depth_bytes = zlib.compress(np.ascontiguousarray(depth, "<u2").tobytes())
            f.write(np.asarray(pose, "<f4").tobytes())
            f.write(struct.pack("<QQQQ", i, i, len(jpeg), len(depth_bytes)))
            f.write(jpeg)
            f.write(depth_bytes)
            written += 1
        if written != num_frames:
            raise ValueError(f"{path}: promised {num_frames} frames, got {written}")
        f.write(struct.pack("<Q", 0))


def _read(f: BinaryIO, n: int, path: Path, what: str) -> bytes:
    if n > os.fstat(f.fileno()).st_size - f.tell():  # a damaged length: never allocated
        raise ValueError(f"{path}: file ends inside {what}")
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: file ends inside {what}")
    return data


def read_sens_header(f: BinaryIO, path: Path) -> SensHeader:
    version, name_len = struct.unpack("<IQ", _read(f, 12, path, "the header"))
    if version != 4:
        raise ValueError(f"{path}: unsupported .sens version {version} (expected 4)")
    name = _read(f, name_len, path, "the header").decode(errors="replace")
    mats = np.frombuffer(_read(f, 4 * 64, path, "the header"), "<f4").reshape(4, 4, 4)
    color_comp, depth_comp = struct.unpack("<ii", _read(f, 8, path, "the header"))
    if color_comp != COLOR_JPEG or depth_comp != DEPTH_ZLIB_USHORT:
        raise ValueError(
            f"{path}: unsupported compression (colour {color_comp}, depth "
            f"{depth_comp}); expected JPEG colour and zlib depth"
        )
    cw, ch, dw, dh = struct.unpack("<IIII", _read(f, 16, path, "the header"))
    shift, n = struct.unpack("<fQ", _read(f, 12, path, "the header"))
    return SensHeader(
        mats[0, :3, :3].astype(np.float64),
        mats[2, :3, :3].astype(np.float64),
        (cw, ch),
        (dw, dh),
        float(shift),
        name,
        int(n),
    )


def iter_sens(
    path: str | Path, images: bool = True, depth: bool = True
) -> tuple[SensHeader, Iterator[SensFrame]]:
    """The header and a lazy iterator over the frames of a ``.sens`` file (one frame in
    memory at a time). With ``images=False`` the colour and depth buffers are skipped
    (poses only: ``color_jpeg`` is empty, ``depth`` None); with ``depth=False`` only the
    depth buffers (``depth`` None). A truncated file or a depth buffer that does not
    decompress raises ``ValueError`` naming the frame."""
    path = Path(path)
    f = open(path, "rb")
    try:
        header = read_sens_header(f, path)
    except BaseException:
        f.close()
        raise

    size = path.stat().st_size

    def frames() -> Iterator[SensFrame]:
        with f:
            dw, dh = header.depth_size
            for i in range(header.num_frames):
                what = f"frame {i}"
                pose = np.frombuffer(_read(f, 64, path, what), "<f4").reshape(4, 4)
                _, _, n_color, n_depth = struct.unpack("<QQQQ", _read(f, 32, path, what))
                if not images:
                    f.seek(n_color + n_depth, 1)
                    if f.tell() > size:
                        raise ValueError(f"{path}: file ends inside {what}")
                    yield SensFrame(pose.copy(), b"", None)
                    continue
                jpeg = _read(f, n_color, path, what)
                if not depth:
                    f.seek(n_depth, 1)
                    if f.tell() > size:
                        raise ValueError(f"{path}: file ends inside {what}")
                    yield SensFrame(pose.copy(), jpeg, None)
                    continue
                try:
                    raw = zlib.decompress(_read(f, n_depth, path, what))
                except zlib.error as err:
                    raise ValueError(f"{path}: {what} depth does not decompress ({err})") from None
                if len(raw) != dw * dh * 2:
                    raise ValueError(
                        f"{path}: {what} depth has {len(raw)} bytes, expected {dw * dh * 2}"
                    )
                yield SensFrame(pose.copy(), jpeg, np.frombuffer(raw, "<u2").reshape(dh, dw))

    return header, frames()
