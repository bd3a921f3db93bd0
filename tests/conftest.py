"""Shared fixtures: small synthetic scenes and analytic shapes, made on the fly."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from atlas.geometry.mesh import Mesh
from atlas.geometry.render import look_at
from atlas.synthetic.generate import SceneConfig, generate_dataset

# Kernels run eagerly in tests (and in the entry points they start, which inherit this):
# torch.compile's warm-up costs tens of seconds per process on small inputs. The compiled
# path is checked once, against eager, in tests/test_compile.py.
os.environ.setdefault("ATLAS_COMPILE", "0")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def small_dataset(tmp_path_factory) -> Path:
    """One 60-frame 320x240 synthetic scene in the extracted ScanNet layout."""
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(
        root, 1, SceneConfig(seed=3, n_frames=60, width=320, height=240), progress=False
    )
    return root


@pytest.fixture(scope="session")
def room_24(tmp_path_factory):
    """A 24-frame 160x120 synthetic room (seed 11), as a ScanNet-layout reader: for
    tests of inference that need frames, not quality."""
    from atlas.readers.scannet import ScanNetFolder
    from atlas.synthetic.generate import write_scene

    root = tmp_path_factory.mktemp("room_24")
    path = write_scene(
        root / "scene0000_00", SceneConfig(seed=11, n_frames=24, width=160, height=120)
    )
    return ScanNetFolder(path)


@pytest.fixture(scope="session")
def small_prepared(small_dataset, tmp_path_factory) -> tuple[Path, dict]:
    """``small_dataset``'s scene prepared with the default settings (4/8/16 cm) and a 6 m
    depth cut: (the prepared root, the preparation summary)."""
    from atlas.preparation.prepare import PrepareSettings, prepare_scene
    from atlas.readers.scannet import ScanNetFolder

    out = tmp_path_factory.mktemp("prepared")
    reader = ScanNetFolder(small_dataset / "scans" / "scene0000_00")
    summary = prepare_scene(reader, out, PrepareSettings(max_depth=6.0), "scannet", "none")
    return out, summary


def orbit_poses(
    n: int, radius: float, height_amplitude: float = 0.3, target: np.ndarray | None = None
) -> list[np.ndarray]:
    """Camera-to-world poses on a circle about the z axis, looking at ``target``."""
    target = np.zeros(3) if target is None else target
    return [
        look_at(
            target
            + np.array([radius * np.cos(a), radius * np.sin(a), height_amplitude * np.sin(3 * a)]),
            target,
        )
        for a in np.linspace(0, 2 * np.pi, n, endpoint=False)
    ]


def uv_sphere(radius: float, resolution: int = 200) -> Mesh:
    import open3d as o3d

    s = o3d.geometry.TriangleMesh.create_sphere(radius=radius, resolution=resolution)
    return Mesh(np.asarray(s.vertices), np.asarray(s.triangles))


PINHOLE_K = np.array([[300.0, 0.0, 159.5], [0.0, 300.0, 119.5], [0.0, 0.0, 1.0]])


def seven_scenes_layout(scannet_scene: Path, dest: Path, frames: int = 4) -> Path:
    """The first ``frames`` frames of an extracted ScanNet-layout scene copied into a new
    7-Scenes-layout folder ``dest`` (frame-XXXXXX.{color.jpg,depth.png,pose.txt})."""
    import shutil

    dest.mkdir()
    for i in range(frames):
        for kind, part, ext in (("color", "color", "jpg"), ("depth", "depth", "png")):
            shutil.copy(scannet_scene / kind / f"{i}.{ext}", dest / f"frame-{i:06d}.{part}.{ext}")
        shutil.copy(scannet_scene / "pose" / f"{i}.txt", dest / f"frame-{i:06d}.pose.txt")
    intrinsics = scannet_scene / "intrinsic" / "intrinsic_depth.txt"
    shutil.copy(intrinsics, dest / "camera-intrinsics.txt")
    return dest


def run_main(
    script: str, overrides: list[str], capsys, monkeypatch=None
) -> tuple[int, str, list[str]]:
    """``<script>.main`` on the config ``overrides`` compose to, as the command line would
    run it: (exit code, stdout, stderr lines)."""
    from hydra import compose, initialize_config_dir

    module = __import__(script)
    configs = Path(__file__).resolve().parents[1] / "configs"
    with initialize_config_dir(version_base="1.3", config_dir=str(configs)):
        cfg = compose(config_name=script, overrides=overrides)
    capsys.readouterr()
    try:
        module.main(cfg)
        code = 0
    except SystemExit as stop:
        code = stop.code
    out, err = capsys.readouterr()
    return code, out, err.splitlines()


HOSTILE_SUITES = ("tests/test_misuse.py", "tests/test_fuzz_readers.py")


def pytest_terminal_summary(terminalreporter) -> None:
    """One line with the case counts of the bad-input and fuzz suites (docs/testing.md)."""
    counts = dict.fromkeys(HOSTILE_SUITES, 0)
    for reports in terminalreporter.stats.values():
        for report in reports:
            when = getattr(report, "when", None)  # test reports only (not deselected items)
            path = getattr(report, "nodeid", "").split("::")[0]
            if path in counts and (when == "call" or (when == "setup" and report.skipped)):
                counts[path] += 1
    if any(counts.values()):
        said = ", ".join(f"{Path(p).name} {n}" for p, n in counts.items())
        terminalreporter.write_line(f"hostile-input cases run: {said}")
