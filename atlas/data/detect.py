"""Opening a raw scene folder in whichever supported layout it is."""

from __future__ import annotations

from pathlib import Path

from atlas.data.atlas_sample import AtlasSampleFolder
from atlas.data.frames import SceneReader
from atlas.data.scannet import ScanNetFolder, ScanNetSens
from atlas.data.seven_scenes import SevenScenesFolder

FORMATS = ("auto", "scannet", "sens", "7scenes", "sample")


def detect_format(path: Path) -> str:
    """The layout of a scene path (see ``FORMATS``); ``ValueError`` when none fits."""
    if path.is_file() and path.suffix == ".sens":
        return "sens"
    if (path / "color").is_dir() and (path / "intrinsic").is_dir():
        return "scannet"
    if (path / "camera-intrinsics.txt").is_file() or any(path.glob("frame-*.color.*")):
        return "7scenes"
    if (path / "intrinsics.txt").is_file() and (path / "color").is_dir():
        return "sample"
    raise ValueError(
        f"{path}: not a scene folder in a known layout (ScanNet: color/ and intrinsic/; "
        "7-Scenes: camera-intrinsics.txt and frame-XXXXXX.*; ATLAS sample: "
        "intrinsics.txt and color/; or a .sens file)"
    )


def open_scene(path: str | Path, fmt: str = "auto") -> SceneReader:
    """A reader for a raw scene folder (or ``.sens`` file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: scene not found")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    fmt = detect_format(path) if fmt == "auto" else fmt
    readers = {"scannet": ScanNetFolder, "sens": ScanNetSens, "7scenes": SevenScenesFolder,
               "sample": AtlasSampleFolder}
    return readers[fmt](path)
