"""The prepared-scene format (``prepare.py`` output, layout in
:mod:`atlas.preparation.prepare`): its index and file names, and the reader that gives
a prepared scene back as a scene, its frames in the prepared (gravity-aligned) world
frame, so inference can run on prepared datasets."""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from atlas.readers.frames import Frame, SceneReader
from atlas.readers.image_io import read_color, read_depth

INDEX = "index.json"


def scale_key(voxel_size: float) -> str:
    """A voxel size's name in files and item keys: centimetres, two digits (0.08 -> 08)."""
    return f"{round(voxel_size * 100):02d}"


def prior_name(voxel_size: float) -> str:
    return f"prior_{scale_key(voxel_size)}.npz"


def tsdf_name(voxel_size: float) -> str:
    return f"tsdf_{scale_key(voxel_size)}.npz"


def is_prepared(scene_dir: Path) -> bool:
    return (scene_dir / INDEX).is_file()


def frame_path(scene_dir: str | Path, recorded: str) -> Path:
    """A frame file named in a prepared scene's index: absolute (raw data, recorded
    resolved) or relative to the prepared scene (frames extracted from a .sens file).
    A path with a ``..`` part, which could lead out of where the index says its files
    are, is a ``ValueError`` naming the index."""
    index = Path(scene_dir) / INDEX
    if not isinstance(recorded, str) or not recorded:
        raise ValueError(f"{index}: a file path must be a non-empty string, got {recorded!r}")
    path = Path(recorded)
    if ".." in path.parts:
        raise ValueError(
            f"{index}: refused file path {recorded!r}: it goes up out of its folder ('..'); "
            "a prepared scene names its files by absolute path or below the scene folder"
        )
    return path if path.is_absolute() else Path(scene_dir) / path


INDEX_VERSION = 2
# version 0: indexes written before the field existed (same keys); version 1: no
# prior_stereo / prior_preset (priors of unrecorded settings)


@dataclass
class FrameEntry:
    """One frame of a prepared scene: frame_id (the dataset's), valid (finite pose),
    color / depth (file paths, see :func:`frame_path`; None when not prepared), pose
    ((4, 4) camera-to-world, metres, the prepared aligned frame; None when invalid)."""

    frame_id: int
    valid: bool
    color: str | None
    depth: str | None
    pose: list[list[float]] | None


@dataclass
class PreparedIndex:
    """A prepared scene's ``index.json``, typed (``version`` :data:`INDEX_VERSION`).

    scene: name; dataset / source: where it came from; K_color, K_depth: (3, 3)
    intrinsics; color_size, depth_size: (width, height) pixels; frames: every frame of
    the recording, in order; mesh: the ground-truth mesh file; alignment: the
    input -> aligned ``transform`` (4x4), its ``method`` and ``floor_inliers``;
    voxel_sizes: metres, finest first; tsdf / prior: voxel size (as written by
    ``str(float)``) -> file name; tsdf_shape: voxel size -> (X, Y, Z); origin: world
    metres of voxel (0, 0, 0) of every grid; prior_stereo: every setting of the stereo
    the priors were made with (``atlas.stereo.presets.stereo_to_dict``; empty when no
    prior was made, or by code before version 2); prior_preset: that stereo's preset
    name (``custom`` when it matches none); mesh_source: how the mesh was made;
    frames_total / frames_skipped / frames_unreadable: counts and reasons."""

    scene: str
    K_color: list[list[float]]
    K_depth: list[list[float]]
    color_size: list[int]
    depth_size: list[int]
    frames: list[FrameEntry]
    mesh: str = "mesh.ply"
    version: int = INDEX_VERSION
    dataset: str = ""
    source: str = ""
    alignment: dict = field(default_factory=dict)
    voxel_sizes: list[float] = field(default_factory=list)
    tsdf: dict[str, str] = field(default_factory=dict)
    tsdf_shape: dict[str, list[int]] = field(default_factory=dict)
    origin: list[float] = field(default_factory=list)
    prior: dict[str, str] = field(default_factory=dict)
    prior_stereo: dict = field(default_factory=dict)
    prior_preset: str = ""
    mesh_source: str = ""
    frames_total: int = 0
    frames_skipped: int = 0
    frames_unreadable: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: object, path: Path) -> PreparedIndex:
        """The index in ``data`` (parsed JSON); a ``ValueError`` naming ``path`` and the
        key when a required key is missing, a key is unknown, a value has the wrong
        type, or the version is newer than this code reads."""
        if not isinstance(data, dict):
            raise ValueError(f"{path}: corrupt index (a JSON object expected)")
        data = {"version": 0, **data}
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{path}: unknown index key {unknown[0]!r} (not a prepared scene?)")
        missing = [f.name for f in fields(cls) if f.name not in data and _required(f)]
        if missing:
            raise ValueError(f"{path}: the index has no {missing[0]!r}")
        if not isinstance(data["version"], int) or data["version"] > INDEX_VERSION:
            raise ValueError(
                f"{path}: index version {data['version']!r}; this code reads versions up to "
                f"{INDEX_VERSION}: prepare the scene again or update the code"
            )
        frames = data["frames"]
        if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
            raise ValueError(f"{path}: 'frames' must be a list of objects")
        try:
            entries = [FrameEntry(**f) for f in frames]
        except TypeError as err:
            raise ValueError(f"{path}: a frame entry is malformed ({err})") from None
        index = cls(**{**data, "frames": entries})
        index._check_types(path)
        return index

    def _check_types(self, path: Path) -> None:
        def matrix(name: str, value: object) -> None:
            try:
                ok = np.asarray(value, dtype=np.float64).shape == (3, 3)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"{path}: {name!r} must be a 3x3 matrix, got {value!r}")

        if not isinstance(self.prior_stereo, dict) or not isinstance(self.prior_preset, str):
            raise ValueError(
                f"{path}: 'prior_stereo' must be an object and 'prior_preset' a name, got "
                f"{self.prior_stereo!r} and {self.prior_preset!r}"
            )
        if not isinstance(self.scene, str):
            raise ValueError(f"{path}: 'scene' must be a name, got {self.scene!r}")
        matrix("K_color", self.K_color)
        matrix("K_depth", self.K_depth)
        for name in ("color_size", "depth_size"):
            size = getattr(self, name)
            if not (
                isinstance(size, list)
                and len(size) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)
            ):
                raise ValueError(f"{path}: {name!r} must be [width, height] pixels, got {size!r}")
        for f in self.frames:
            if not isinstance(f.frame_id, int) or not isinstance(f.valid, bool):
                raise ValueError(f"{path}: frame {f.frame_id!r}: bad frame_id or valid flag")
            if f.valid and f.pose is not None:
                try:
                    ok = np.asarray(f.pose, dtype=np.float64).shape == (4, 4)
                except (TypeError, ValueError):
                    ok = False
                if not ok:
                    raise ValueError(f"{path}: frame {f.frame_id}: 'pose' must be a 4x4 matrix")

    def to_json(self) -> dict:
        """The JSON object written as ``index.json``."""
        return asdict(self)


def _required(f) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def load_index(scene_dir: str | Path) -> PreparedIndex:
    """The typed index of a prepared scene (``ValueError`` naming the file when it is
    unreadable or malformed, ``FileNotFoundError`` when there is none)."""
    path = Path(scene_dir) / INDEX
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not a prepared scene (no index)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: corrupt index ({err})") from None
    return PreparedIndex.from_json(data, path)


class PreparedSceneReader(SceneReader):
    """The frames of a prepared scene folder (``index.json``); poses are the prepared,
    aligned ones (frames without a valid pose have NaN poses)."""

    up = "none"  # aligned by preparation

    def __init__(self, scene_dir: str | Path) -> None:
        self.dir = Path(scene_dir)
        index = load_index(self.dir)
        self.name = index.scene
        frames = index.frames
        self.frame_ids = [f.frame_id for f in frames]
        self.K_color = np.array(index.K_color, dtype=np.float64)
        self.K_depth = np.array(index.K_depth, dtype=np.float64)
        self.color_size = tuple(index.color_size)
        self.depth_size = tuple(index.depth_size)
        nan = np.full((4, 4), np.nan)
        self._poses = np.array([np.array(f.pose) if f.valid and f.pose else nan for f in frames])
        # Every path the index names is checked now, before any work (see frame_path).
        self._files = [
            (
                frame_path(self.dir, f.color) if f.color else None,
                frame_path(self.dir, f.depth) if f.depth else None,
            )
            for f in frames
        ]
        self._mesh = frame_path(self.dir, index.mesh)

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
