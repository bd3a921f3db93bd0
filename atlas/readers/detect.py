"""Opening a raw scene folder in whichever supported layout it is."""

from __future__ import annotations

from pathlib import Path

from atlas.readers.atlas_sample import AtlasSampleFolder
from atlas.readers.colmap import ColmapText
from atlas.readers.frames import SceneReader
from atlas.readers.nerfstudio import TransformsJson
from atlas.readers.posed_images import PosedImagesFolder
from atlas.readers.prepared import PreparedSceneReader
from atlas.readers.scannet import ScanNetFolder, ScanNetSens
from atlas.readers.seven_scenes import SevenScenesFolder

FORMATS = (
    "auto",
    "scannet",
    "sens",
    "7scenes",
    "sample",
    "posed",
    "transforms",
    "colmap",
    "prepared",
)


def _is_colmap(path: Path) -> bool:
    """A COLMAP text model in ``path`` or ``path/sparse/0``."""
    return any(
        (d / "cameras.txt").is_file() and (d / "images.txt").is_file()
        for d in (path, path / "sparse" / "0")
    )


def detect_format(path: Path) -> str:
    """The layout of a scene path (see ``FORMATS``); ``ValueError`` when none fits."""
    if path.is_file():
        if path.suffix == ".sens":
            return "sens"
        if path.suffix == ".json":
            return "transforms"
    elif (path / "index.json").is_file():
        return "prepared"
    elif (path / "color").is_dir() and (path / "intrinsic").is_dir():
        return "scannet"
    elif (path / "camera-intrinsics.txt").is_file() or any(path.glob("frame-*.color.*")):
        return "7scenes"
    elif (path / "intrinsics.txt").is_file() and (path / "color").is_dir():
        return "sample"
    elif (path / "transforms.json").is_file():
        return "transforms"
    elif _is_colmap(path):
        return "colmap"
    elif (
        all((path / d).is_dir() for d in ("images", "poses"))
        and (path / "intrinsics.txt").is_file()
    ):
        return "posed"
    raise ValueError(
        f"{path}: not a scene folder in a known layout (ScanNet: color/ and intrinsic/; "
        "7-Scenes: camera-intrinsics.txt and frame-XXXXXX.*; ATLAS sample: "
        "intrinsics.txt and color/; posed images: images/, poses/ and intrinsics.txt; "
        "nerfstudio / instant-ngp: transforms.json; COLMAP: cameras.txt and images.txt "
        "here or in sparse/0/; a prepared scene: index.json; or a .sens file)"
    )


def open_scene(path: str | Path, fmt: str = "auto") -> SceneReader:
    """A reader for a raw scene folder (or a ``.sens`` or ``transforms.json`` file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: scene not found")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    readers = {
        "scannet": ScanNetFolder,
        "sens": ScanNetSens,
        "7scenes": SevenScenesFolder,
        "sample": AtlasSampleFolder,
        "posed": PosedImagesFolder,
        "transforms": TransformsJson,
        "colmap": ColmapText,
        "prepared": PreparedSceneReader,
    }
    reader = readers[fmt](path)
    reader.source = path
    return reader
