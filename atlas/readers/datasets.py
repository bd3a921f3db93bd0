"""Raw datasets: which scenes a root holds and how to open each (Hydra ``data.raw``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from atlas.readers.atlas_sample import AtlasSampleFolder
from atlas.readers.frames import SceneReader
from atlas.readers.scannet import ScanNetFolder, ScanNetSens, read_split
from atlas.readers.seven_scenes import SevenScenesFolder

SceneOpener = Callable[[], SceneReader]


class RawDataset:
    """A root folder of raw scenes. ``scenes()`` lists (name, opener) pairs, sorted by
    name; ``up`` is the alignment default for this dataset (see ``alignment``)."""

    kind = "raw"
    up = "auto"

    def scenes(self) -> list[tuple[str, SceneOpener]]:
        raise NotImplementedError


class ScanNetDataset(RawDataset):
    """``root/scans/sceneXXXX_XX`` as extracted folders or ``.sens`` files.

    splits: the split lists (``root/scannetv2_{split}.txt``) whose scenes to take, or
    empty for every scene under ``scans/``. ScanNet's world frame is already Z-up.
    """

    kind = "scannet"
    up = "none"

    def __init__(self, root: str, splits: list[str] | tuple[str, ...] = ()) -> None:
        self.root = Path(root)
        self.splits = list(splits)

    def scenes(self) -> list[tuple[str, SceneOpener]]:
        scans = self.root / "scans"
        if not scans.is_dir():
            raise FileNotFoundError(f"{scans}: no ScanNet scans folder")
        if self.splits:
            names = sorted({n for s in self.splits for n in read_split(self.root, s)})
        else:
            names = sorted(p.name for p in scans.iterdir() if p.is_dir() and p.name[0] != ".")
        return [(name, self._opener(scans / name)) for name in names]

    @staticmethod
    def _opener(scene_dir: Path) -> SceneOpener:
        def open_scene() -> SceneReader:
            if (scene_dir / "color").is_dir():
                return ScanNetFolder(scene_dir)
            sens = scene_dir / f"{scene_dir.name}.sens"
            if sens.is_file():
                return ScanNetSens(sens)
            raise FileNotFoundError(f"{scene_dir}: neither a color/ folder nor a .sens file")

        return open_scene


class SevenScenesDataset(RawDataset):
    """Every folder under ``root`` (or ``root`` itself) holding 7-Scenes frames.

    color_intrinsics: optional 3x3 (nested list) for the colour images; default the
    standard Kinect v1 colour values (fx = fy = 525).
    """

    kind = "7scenes"

    def __init__(self, root: str, color_intrinsics: list | None = None) -> None:
        self.root = Path(root)
        self.color_K = None if color_intrinsics is None else np.asarray(color_intrinsics, float)

    def scenes(self) -> list[tuple[str, SceneOpener]]:
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: 7-Scenes root not found")
        folders = [self.root, *sorted(p for p in self.root.iterdir() if p.is_dir())]
        found = [f for f in folders if any(f.glob("frame-*.color.*"))]
        if not found:
            raise ValueError(f"{self.root}: no 7-Scenes frames (frame-XXXXXX.color.jpg)")
        return [(f.name, lambda f=f: SevenScenesFolder(f, self.color_K)) for f in found]


class AtlasSampleDataset(RawDataset):
    """Folders in the ATLAS sample layout under ``root`` (or ``root`` itself)."""

    kind = "atlas_sample"

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def scenes(self) -> list[tuple[str, SceneOpener]]:
        folders = [self.root, *sorted(p for p in self.root.iterdir() if p.is_dir())]
        found = [f for f in folders if (f / "intrinsics.txt").is_file()]
        if not found:
            raise ValueError(f"{self.root}: no scene in the ATLAS sample layout")
        return [(f.name, lambda f=f: AtlasSampleFolder(f)) for f in found]
