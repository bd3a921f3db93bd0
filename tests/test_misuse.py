"""Misuse and bad input (issue 23): what a user typed or pointed the tools at that
worked against them. Each case fails before its fix and passes after it.

Entry points run in-process (``infer.main(cfg)`` / ``prepare.main(cfg)`` with a config
composed by Hydra, as ``@hydra.main`` allows), so a case costs milliseconds where the
work is not started; only the override Hydra's lexer refuses, which never reaches
``main``, runs as a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from atlas.readers.alignment import AlignedReader, Alignment
from atlas.readers.checks import check_metric_scale
from atlas.readers.frames import Frame, SceneReader, SubsetReader
from atlas.synthetic.generate import SceneConfig, generate_dataset
from tests.conftest import run_main, seven_scenes_layout

ROOT = Path(__file__).resolve().parents[1]
SEVEN_SCENES = ROOT.parent / "shared" / "data" / "7scenes-dev"
SCENE = "scene0000_00"
W, H = 64, 48
TINY_PRIORLESS = {
    "backbone": {"depth": 18, "width": 8, "out_channels": 8},
    "net": {"channels": [8, 16, 32], "prior": "none"},
    "voxel_sizes": [0.08, 0.16, 0.32],
}


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    """One 8-frame 64x48 synthetic scene (ScanNet layout), to copy and break."""
    root = tmp_path_factory.mktemp("misuse_raw")
    generate_dataset(root, 1, SceneConfig(seed=20, n_frames=8, width=W, height=H), progress=False)
    return root / "scans" / SCENE


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small model file without a stereo prior (so nothing but its own code runs)."""
    from atlas.model.checkpoint import save_model
    from atlas.model.config import ModelConfig, build_model
    from atlas.model.contract import make_contract

    torch.manual_seed(0)
    cfg = ModelConfig.from_dict(TINY_PRIORLESS)
    path = tmp_path_factory.mktemp("misuse_model") / "tiny.pt"
    return save_model(build_model(cfg).eval(), cfg, path, make_contract(cfg, None, (W, H)))


# A quick run of the model: a small grid, marching cubes on it, no compile warm-up.
QUICK = ["model.max_depth=1.5", "model.mesh_upsample=1"]


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setenv("ATLAS_COMPILE", "0")


def copy_scene(tiny_scene: Path, dest: Path) -> Path:
    shutil.copytree(tiny_scene, dest)
    return dest


def only_error(code: int, lines: list[str]) -> str:
    """The one ``error:`` line of a run stopped before any scene (exit 2)."""
    assert code == 2, (code, lines)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


def nothing_written(folder: Path) -> bool:
    return not folder.exists() or not any(folder.iterdir())


@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without a usable CUDA GPU, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# ------------------------------------------------- two captures with the same folder name


def test_two_scenes_with_one_output_folder_stop_before_any_work(tiny_scene, tmp_path, capsys):
    a = copy_scene(tiny_scene, tmp_path / "a" / SCENE)
    b = copy_scene(tiny_scene, tmp_path / "b" / SCENE)
    out = tmp_path / "out"
    code, stdout, lines = run_main(
        "infer", [f"scenes=[{a},{b}]", f"out_dir={out}", "method=stereo"], capsys
    )
    line = only_error(code, lines)
    assert f"{a} and {b} would both be written to {out / SCENE}" in line, line
    assert SCENE not in stdout  # no scene started, none "done already"
    assert not out.exists()


def test_the_same_scene_listed_twice_is_one_scene(tmp_path):
    import infer

    scene = tmp_path / "x" / SCENE
    folders = infer.output_folders([scene, Path(str(scene)), tmp_path / "y"], tmp_path / "out")
    assert list(folders.values()) == [tmp_path / "out" / SCENE, tmp_path / "out" / "y"]


# ------------------------------------------------- settings: all checked before the first scene

INFER_SETTINGS = [
    (["device=gpu"], "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    (["device=cuda"], "device=cuda: no usable CUDA GPU on this machine"),
    (["device=cuda:0"], "device=cuda:0: no usable CUDA GPU on this machine"),
    (["align=upp"], "align must be auto, none, dataset or an up axis such as -y or z, got 'upp'"),
    (["format=scanet"], "format must be one of auto, scannet, sens, 7scenes"),
    (["model.frame_stride=0"], "model.frame_stride must be an integer >= 1, got 0"),
    (["model.chunk_margin=6"], "model.chunk_margin must be a multiple of 4, >= 0, got 6"),
    (["model.rotations=3"], "model.rotations must be 1, 2 or 4, got 3"),
    (["model.mesh_upsample=0"], "model.mesh_upsample must be an integer >= 1, got 0"),
    (["model.max_depth=-1"], "model.max_depth must be a distance > 0 (metres), got -1.0"),
    (["method=stereo", "stereo.sweep.n_planes=1"], "stereo.sweep.n_planes must be"),
    (["method=stereo", "stereo.voxel_size=0"], "stereo.voxel_size must be > 0 (metres), got 0.0"),
    (["snapshot_every=-5"], "snapshot_every must be a number of frames >= 0"),
    (["method=mdoel"], "method must be one of model, stereo, fusion, got 'mdoel'"),
    # issue 23 item 2: other values of the same settings (non-finite, negative, empty,
    # wrong length), each a different way for a check to let a value through
    (["device=cuda:x"], "device must be auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    (["device="], "device must be auto, cpu, cuda or cuda:N, got ''"),
    (["align=+q"], "align must be auto, none, dataset or an up axis such as -y or z, got '+q'"),
    (["model.max_depth=nan"], "model.max_depth must be a distance > 0 (metres), got nan"),
    (["model.frame_stride=-1"], "model.frame_stride must be an integer >= 1, got -1"),
    (["model.chunk_margin=-4"], "model.chunk_margin must be a multiple of 4, >= 0, got -4"),
    (["model.chunk_voxels=0"], "model.chunk_voxels must be an integer >= 1, got 0"),
    (["model.keyframe_translation=-0.1"], "model.keyframe_translation must be a distance >= 0"),
    (["model.keyframe_rotation_deg=nan"], "model.keyframe_rotation_deg must be an angle >= 0"),
    (["model.rotations=0"], "model.rotations must be 1, 2 or 4, got 0"),
    (["model.mesh_upsample=-2"], "model.mesh_upsample must be an integer >= 1, got -2"),
    (["model.image_size=[0,48]"], "model.image_size must be null or [width, height] in pixels"),
    (["model.image_size=[64]"], "each >= 8, got [64]"),
    (["stereo.sweep.n_planes=0"], "stereo.sweep.n_planes must be an integer >= 2, got 0"),
    (["method=stereo", "stereo.sweep.window=8"], "stereo.sweep.window must be an odd integer"),
    (["method=stereo", "stereo.refine_window=4"], "stereo.refine_window must be an odd integer"),
    (["model.evidence_refine_scale=0"], "model.evidence_refine_scale must be an integer >= 1"),
    (["method=stereo", "stereo.voxel_size=-0.1"], "stereo.voxel_size must be > 0 (metres)"),
    (["method=stereo", "stereo.voxel_size=nan"], "stereo.voxel_size must be > 0 (metres), got nan"),
    (["method=stereo", "stereo.sweep.min_depth=-1"], "stereo.sweep.min_depth must be > 0"),
    (["method=stereo", "stereo.max_depth=0"], "stereo.max_depth must be > 0 (metres), got 0.0"),
    (["method=stereo", "stereo.image_size=[64,0]"], "stereo.image_size must be [width, height]"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), INFER_SETTINGS, ids=[" ".join(o) for o, _ in INFER_SETTINGS]
)
def test_infer_checks_every_setting_before_the_first_scene(
    tiny_scene, tmp_path, capsys, no_cuda, overrides, message
):
    out = tmp_path / "out"
    code, stdout, lines = run_main(
        "infer", [f"scene={tiny_scene}", f"out_dir={out}", *overrides], capsys
    )
    assert message in only_error(code, lines)
    assert SCENE not in stdout and nothing_written(out)


PREPARE_SETTINGS = [
    (["device=gpu"], "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
    (["device=cuda"], "device=cuda: no usable CUDA GPU on this machine"),
    (["align=upp"], "align must be auto, none, dataset or an up axis"),
    (["voxel_sizes=[0.04,0.06]"], "0.06 is not one of 0.04"),
    (["max_depth=0"], "max_depth must be > 0, got 0.0"),
    (["prior_voxel_size=0.08", "stereo.image_size=[0,120]"], "stereo.image_size must be"),
    # issue 23 item 2: other values of the same settings
    (["device=cuda:x"], "device must be auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    (["voxel_sizes=[]"], "voxel_sizes must be positive sizes in metres, got []"),
    (["voxel_sizes=[-0.04]"], "voxel_sizes must be positive sizes in metres, got [-0.04]"),
    (["max_depth=-1"], "max_depth must be > 0, got -1.0"),
    (["prior_voxel_size=-1"], "prior_voxel_size must be >= 0, got -1.0"),
    (["prior_voxel_size=0.08", "stereo.image_size=[64]"], "each >= 8, got [64]"),
]


@pytest.mark.parametrize(
    ("overrides", "message"), PREPARE_SETTINGS, ids=[" ".join(o) for o, _ in PREPARE_SETTINGS]
)
def test_prepare_checks_settings_before_the_first_scene(
    tiny_scene, tmp_path, capsys, no_cuda, overrides, message
):
    raw = tmp_path / "raw"
    copy_scene(tiny_scene, raw / "scans" / SCENE)
    out = tmp_path / "prepared"
    code, _, lines = run_main(
        "prepare", [f"data.raw.root={raw}", f"out_dir={out}", *overrides], capsys
    )
    assert message in only_error(code, lines)
    assert not out.exists()


# ------------------------------------------------- an output subfolder that is a file


@pytest.mark.parametrize("script", ["infer", "prepare"])
def test_a_file_where_a_scene_folder_goes_stops_before_the_work(
    tiny_scene, tmp_path, capsys, script
):
    raw = tmp_path / "raw"
    scene = copy_scene(tiny_scene, raw / "scans" / SCENE)
    out = tmp_path / "out"
    out.mkdir()
    (out / SCENE).write_text("my notes")
    if script == "infer":
        overrides = [f"scene={scene}", f"out_dir={out}", "method=stereo"]
    else:
        overrides = [f"data.raw.root={raw}", f"out_dir={out}"]
    code, _, lines = run_main(script, overrides, capsys)
    assert f"{out / SCENE}: a file is where" in only_error(code, lines)
    assert [p.name for p in out.iterdir()] == [SCENE]  # nothing beside it, not even hidden
    assert (out / SCENE).read_text() == "my notes"


# ------------------------------------------------- RGB-only work never reads depth


def corrupt(path: Path) -> None:
    path.write_bytes(b"not a png at all")


def scannet_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    from atlas.readers.scannet import ScanNetFolder

    scene = copy_scene(tiny_scene, tmp_path / SCENE)
    corrupt(scene / "depth" / "0.png")  # the one whose header gave the size
    corrupt(scene / "depth" / "2.png")
    return ScanNetFolder(scene), "depth/2.png"


def seven_scenes_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    from atlas.readers.seven_scenes import SevenScenesFolder

    folder = seven_scenes_layout(tiny_scene, tmp_path / "seq-01")
    corrupt(folder / "frame-000000.depth.png")
    corrupt(folder / "frame-000002.depth.png")
    return SevenScenesFolder(folder), "frame-000002.depth.png"


def posed_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    from atlas.readers.posed_images import PosedImagesFolder

    folder = tmp_path / "posed"
    for sub in ("images", "poses", "depth"):
        (folder / sub).mkdir(parents=True)
    for i in range(4):
        shutil.copy(tiny_scene / "color" / f"{i}.jpg", folder / "images" / f"{i}.jpg")
        shutil.copy(tiny_scene / "depth" / f"{i}.png", folder / "depth" / f"{i}.png")
        shutil.copy(tiny_scene / "pose" / f"{i}.txt", folder / "poses" / f"{i}.txt")
    shutil.copy(tiny_scene / "intrinsic" / "intrinsic_color.txt", folder / "intrinsics.txt")
    corrupt(folder / "depth" / "2.png")
    return PosedImagesFolder(folder), "depth/2.png"


def transforms_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    from atlas.readers.nerfstudio import TransformsJson

    folder = tmp_path / "ns"
    frames = []
    for i in range(4):
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "depth").mkdir(exist_ok=True)
        shutil.copy(tiny_scene / "color" / f"{i}.jpg", folder / "images" / f"{i}.jpg")
        shutil.copy(tiny_scene / "depth" / f"{i}.png", folder / "depth" / f"{i}.png")
        pose = np.loadtxt(tiny_scene / "pose" / f"{i}.txt") @ np.diag([1.0, -1, -1, 1])
        frames.append(
            {
                "file_path": f"images/{i}.jpg",
                "depth_file_path": f"depth/{i}.png",
                "transform_matrix": pose.tolist(),
            }
        )
    K = np.loadtxt(tiny_scene / "intrinsic" / "intrinsic_color.txt")
    meta = {"fl_x": K[0, 0], "fl_y": K[1, 1], "w": W, "h": H, "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(meta))
    corrupt(folder / "depth" / "2.png")
    return TransformsJson(folder), "depth/2.png"


def prepared_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    from atlas.readers.prepared import PreparedSceneReader

    scene = copy_scene(tiny_scene, tmp_path / "raw")
    folder = write_index(tmp_path / "prepared", scene)
    corrupt(scene / "depth" / "2.png")
    return PreparedSceneReader(folder), "depth/2.png"


def sens_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    from atlas.readers.scannet import ScanNetSens
    from atlas.readers.sens import SensHeader, write_sens

    K = np.loadtxt(tiny_scene / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    frames = []
    for i in range(4):
        depth = np.asarray(Image.open(tiny_scene / "depth" / f"{i}.png")).astype(np.uint16)
        pose = np.loadtxt(tiny_scene / "pose" / f"{i}.txt")
        frames.append((pose, (tiny_scene / "color" / f"{i}.jpg").read_bytes(), depth))
    path = tmp_path / f"{SCENE}.sens"
    write_sens(path, SensHeader(K, K, (W, H), (W, H)), frames, len(frames))
    data = path.read_bytes()
    packed = zlib.compress(np.ascontiguousarray(frames[2][2], "<u2").tobytes())
    at = data.find(packed)
    assert at > 0
    path.write_bytes(data[:at] + b"\x00" * len(packed) + data[at + len(packed) :])
    return ScanNetSens(path), "frame 2 depth does not decompress"


class OwnReader(SceneReader):
    """A reader written before the ``depth`` flag (``read_frame(self, index)``)."""

    def __init__(self, base: SceneReader) -> None:
        self.base, self.name, self.frame_ids = base, base.name, base.frame_ids
        self.K_color, self.K_depth = base.K_color, base.K_depth
        self.color_size, self.depth_size = base.color_size, base.depth_size

    @property
    def poses(self) -> np.ndarray:
        return self.base.poses

    def read_frame(self, index: int) -> Frame:
        frame = self.base.read_frame(index, depth=False)
        frame.depth = np.ones((H, W), np.float32)
        return frame


def own_reader(tiny_scene: Path, tmp_path: Path) -> tuple[SceneReader, str]:
    reader, _ = scannet_reader(tiny_scene, tmp_path)
    return OwnReader(reader), ""


READERS: dict[str, Callable[[Path, Path], tuple[SceneReader, str]]] = {
    "scannet": scannet_reader,
    "sens": sens_reader,
    "7scenes": seven_scenes_reader,
    "posed": posed_reader,
    "transforms": transforms_reader,
    "prepared": prepared_reader,
    "own_reader_without_the_flag": own_reader,
}


@pytest.mark.parametrize("kind", list(READERS))
def test_color_only_reads_never_open_the_depth(tiny_scene, tmp_path, kind):
    reader, named = READERS[kind](tiny_scene, tmp_path)
    if named:  # the depth map is really broken, and reading it says which
        with pytest.raises(ValueError, match=named.replace(".", r"\.")):
            list(reader.iter_frames([1, 2]))
    wrapped = AlignedReader(SubsetReader(reader, [0, 1, 2, 3]), Alignment(np.eye(4), "none"))
    for source in (reader, wrapped):
        frames = list(source.iter_frames([1, 2, 3], depth=False))
        assert [f.depth for f in frames] == [None] * 3
        assert all(f.color.shape == (H, W, 3) for f in frames)
        assert source.read_frame(2, depth=False).depth is None


def test_model_reconstruction_from_rgb_ignores_a_corrupt_depth_map(
    tiny_scene, tiny_model, tmp_path, capsys, eager
):
    """The whole of ``infer.py``, model method, on a scene whose depth map is damaged."""
    scene = copy_scene(tiny_scene, tmp_path / SCENE)
    for i in (0, 5):
        corrupt(scene / "depth" / f"{i}.png")
    out = tmp_path / "out"
    code, stdout, lines = run_main(
        "infer", [f"scene={scene}", f"out_dir={out}", f"checkpoint={tiny_model}", *QUICK], capsys
    )
    assert code == 0, lines
    assert not [line for line in lines if line.startswith("error")], lines
    assert json.loads(stdout.strip().splitlines()[-1]) == {"scenes": 1, "failed": {}}
    assert (out / SCENE / "summary.json").is_file()


def test_stereo_from_rgb_ignores_a_corrupt_depth_map(tiny_scene, tmp_path):
    """Stereo reads its frames in one place, ``grey_images``."""
    from atlas.readers.scannet import ScanNetFolder
    from atlas.stereo.pipeline import grey_images

    scene = copy_scene(tiny_scene, tmp_path / SCENE)
    corrupt(scene / "depth" / "3.png")
    grey = grey_images(ScanNetFolder(scene), (W, H))
    grey = grey[0] if isinstance(grey, list | tuple) else grey  # one size asked for
    assert grey.shape == (8, H, W) and bool((grey[3] > 0).any())


# ------------------------------------------------- frames skipped for a non-finite pose


def test_frames_skipped_for_their_pose_get_one_console_line(
    tiny_scene, tiny_model, tmp_path, capsys, eager
):
    scene = copy_scene(tiny_scene, tmp_path / SCENE)
    for i in (3, 5):
        (scene / "pose" / f"{i}.txt").write_text("nan nan nan nan\n" * 4)
    out = tmp_path / "out"
    code, _, lines = run_main(
        "infer", [f"scene={scene}", f"out_dir={out}", f"checkpoint={tiny_model}", *QUICK], capsys
    )
    assert code == 0, lines
    said = [line for line in lines if "non-finite" in line]
    assert said == [f"warning: {SCENE}: 2 of 8 frames skipped (non-finite pose)"], lines
    summary = json.loads((out / SCENE / "summary.json").read_text())
    assert summary["frames_skipped_invalid_pose"] == 2


# ------------------------------------------------- unquoted non-ASCII paths

UNQUOTED = [
    ("scene=/data/café/scan", "\"scene='/data/café/scan'\"", "/data/café/scan"),
    (
        "scenes=[/a/café,/b/日本]",
        "\"scenes=['/a/café','/b/日本']\"",
        ["/a/café", "/b/日本"],
    ),
]


@pytest.mark.parametrize(("typed", "hint", "value"), UNQUOTED, ids=["scalar", "list"])
def test_unquoted_non_ascii_path_says_how_to_quote_it(capsys, typed, hint, value):
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    from atlas.cli import fail

    parser = OverridesParser.create()
    with pytest.raises(OverrideParseException) as refused:
        parser.parse_overrides([typed])
    with pytest.raises(SystemExit) as stop:
        fail(refused.value)
    assert stop.value.code == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: cannot parse the override {typed}: ") and "ASCII" in line
    assert line.endswith(f"quote the value: {hint}"), line
    # What the hint says to type (less the shell's quotes) gives the path.
    assert parser.parse_overrides([hint.strip('"')])[0].value() == value


def test_unquoted_non_ascii_path_on_the_command_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    result = subprocess.run(
        [sys.executable, "infer.py", "scene=/data/café/scan", f"hydra.run.dir={tmp_path}/h"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: cannot parse the override scene=/data/café/scan: Hydra reads unquoted values "
        "as ASCII only and this one has é; quote the value: \"scene='/data/café/scan'\""
    ]


# ------------------------------------------------- the scale check and a slow start


class PosesOnly(SceneReader):
    def __init__(self, poses: np.ndarray, name: str = "capture") -> None:
        self._poses, self.name = poses, name
        self.frame_ids = list(range(len(poses)))

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def read_frame(self, index: int, depth: bool = True) -> Frame:
        raise NotImplementedError


def walk(n: int, step: float, scale: float = 1.0, slow: int = 0) -> np.ndarray:
    """Camera-to-world poses walking along x by ``step`` metres a frame (a tenth of it
    over the first ``slow`` frames), times ``scale``."""
    steps = np.where(np.arange(n) < slow, step / 10, step)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 0, 3] = (np.cumsum(steps) - steps[0]) * scale
    return poses


def hand_held(n: int, step: float, seed: int = 0) -> np.ndarray:
    """A camera that sways ``step`` metres a frame in random directions, going nowhere
    much (7-Scenes frames 0-29: 2.2 mm a frame, all within a 5 cm box)."""
    directions = np.random.default_rng(seed).normal(size=(n, 3))
    steps = step * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, 3] = np.cumsum(steps, axis=0)
    return poses


SCALES = {
    "slow_start_30_frames": (hand_held(30, 0.0022), None),
    "slow_start_then_walk": (walk(300, 0.01, slow=60), None),
    "room_in_kilometres": (walk(300, 0.01, scale=0.001), "span only"),
    "room_in_millimetres": (walk(300, 0.01, scale=1000.0), "consecutive cameras"),
    "tripod": (walk(30, 0.0), "span only"),
}


@pytest.mark.parametrize("case", list(SCALES))
def test_scale_check_judges_the_whole_trajectory(case):
    poses, expected = SCALES[case]
    warning = check_metric_scale(PosesOnly(poses))
    if expected is None:
        assert warning is None, warning
    else:
        assert warning is not None and expected in warning and "metres" in warning


@pytest.mark.skipif(not SEVEN_SCENES.is_dir(), reason="../shared/data/7scenes-dev is absent")
def test_scale_check_on_the_slow_first_7scenes_frames():
    from atlas.readers.seven_scenes import SevenScenesFolder

    reader = SevenScenesFolder(SEVEN_SCENES)
    assert check_metric_scale(SubsetReader(reader, range(30))) is None
    assert check_metric_scale(reader) is None


# ------------------------------------------------- model files: weights only


class Payload:
    """Pickles as a call to ``os.mkdir(marker)``: code that runs when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_model_file_with_a_code_payload_is_refused(tiny_model, tmp_path, capsys):
    from atlas.model.checkpoint import load_model, read_model_file

    record = read_model_file(tiny_model)
    marker = tmp_path / "payload_ran"
    record["card"] = {"note": Payload(marker)}
    evil = tmp_path / "evil.pt"
    torch.save(record, evil)
    with pytest.raises(ValueError, match=r"evil\.pt: refused: .*mkdir.*weights_only=True"):
        load_model(evil)
    code, _, lines = run_main(
        "infer", [f"checkpoint={evil}", f"scene={tmp_path}", f"out_dir={tmp_path}/out"], capsys
    )
    assert f"{evil}: refused" in only_error(code, lines)
    assert not marker.exists() and not (tmp_path / "out").exists()


# ------------------------------------------------- index paths never leave their root


def write_index(folder: Path, raw_scene: Path, **changes) -> Path:
    """A prepared scene's index.json naming the first 4 frames of ``raw_scene`` (by
    absolute path, as preparation writes them), with ``changes`` to frame 1's entry."""
    folder.mkdir(parents=True, exist_ok=True)
    mesh = changes.pop("mesh", "mesh.ply")
    K = np.loadtxt(raw_scene / "intrinsic" / "intrinsic_color.txt")[:3, :3]
    frames = [
        {
            "frame_id": i,
            "valid": True,
            "color": str((raw_scene / "color" / f"{i}.jpg").resolve()),
            "depth": str((raw_scene / "depth" / f"{i}.png").resolve()),
            "pose": np.loadtxt(raw_scene / "pose" / f"{i}.txt").tolist(),
        }
        for i in range(4)
    ]
    frames[1].update(changes)
    index = {
        "scene": SCENE,
        "K_color": K.tolist(),
        "K_depth": K.tolist(),
        "color_size": [W, H],
        "depth_size": [W, H],
        "mesh": mesh,
        "frames": frames,
    }
    (folder / "index.json").write_text(json.dumps(index))
    return folder


ESCAPES = {
    "color_relative": {"color": "../../../etc/passwd"},
    "color_inside_then_out": {"color": "frames/color/../../../secret.jpg"},
    "depth_absolute_with_dots": {"depth": "/data/scene/../../etc/shadow"},
    "mesh": {"mesh": "../other_scene/mesh.ply"},
}


@pytest.mark.parametrize("case", list(ESCAPES))
def test_index_paths_never_leave_their_root(tiny_scene, tmp_path, case):
    from atlas.readers.detect import open_scene
    from atlas.readers.prepared import PreparedSceneReader

    changes = dict(ESCAPES[case])
    folder = write_index(tmp_path / "prepared", tiny_scene, **changes)
    bad = next(iter(changes.values()))
    with pytest.raises(ValueError, match="index.json: refused file path") as refused:
        open_scene(folder)
    assert f"{folder / 'index.json'}: refused file path {bad!r}" in str(refused.value)
    good = PreparedSceneReader(write_index(tmp_path / "good", tiny_scene))
    assert good.read_frame(1).color.shape == (H, W, 3)


# ================================================= issue 23 item 2: more hostile input
# Entry points (in-process, as above) and the library, by bad-input class: missing,
# empty, wrong type, inconsistent sizes, duplicate names, misspelt or impossible
# settings. Each names the file or key and leaves nothing behind.


def hydra_refusal(script: str, override: str, capsys) -> str:
    """The one line ``run_cli`` prints (exit 2) for an override Hydra's composition
    refuses (a value of the wrong type, a misspelt key or option) before ``main``."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from atlas.cli import fail

    __import__(script)  # registers the script's config schema, as running it does
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "configs")):
        with pytest.raises((HydraException, OmegaConfBaseException)) as refused:
            compose(config_name=script, overrides=[override])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        fail(refused.value)
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


REFUSED_OVERRIDES = [
    ("infer", "model.frame_stride=1.5", "model.frame_stride"),
    ("infer", "snapshot_every=abc", "snapshot_every"),
    ("infer", "model.image_size=abc", "model.image_size"),
    ("infer", "model.rotations=[1,2]", "model.rotations"),
    ("infer", "device=[cpu]", "device"),
    ("prepare", "voxel_sizes=0.04", "voxel_sizes"),
    ("prepare", "max_depth=far", "max_depth"),
    ("prepare", "format=scanet", "format"),  # prepare has no format key
    ("evaluate", "frame_stride=two", "frame_stride"),
    ("evaluate", "protocol=atlass", "protocol/atlass"),
    ("train", "datamodule.item.n_frame=3", "datamodule.item.n_frame"),
    ("train", "experiment=synthetic_cpuu", "experiment/synthetic_cpuu"),
]


@pytest.mark.parametrize(
    ("script", "override", "key"), REFUSED_OVERRIDES, ids=[o for _, o, _ in REFUSED_OVERRIDES]
)
def test_a_value_hydra_refuses_is_one_line_naming_the_key(capsys, script, override, key):
    assert key in hydra_refusal(script, override, capsys)


CHECKPOINT_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: None, "model file not found"),
    "empty": (lambda p: p.write_bytes(b""), "not a readable model file"),
    "text": (lambda p: p.write_text("weights: none"), "not a readable model file"),
    "folder": (lambda p: p.mkdir(), "model file not found"),
}


@pytest.mark.parametrize("case", list(CHECKPOINT_FILES))
def test_infer_checkpoint_that_is_no_model_file(tiny_scene, tmp_path, capsys, case):
    make, message = CHECKPOINT_FILES[case]
    checkpoint = tmp_path / "model.pt"
    make(checkpoint)
    out = tmp_path / "out"
    code, stdout, lines = run_main(
        "infer", [f"scene={tiny_scene}", f"out_dir={out}", f"checkpoint={checkpoint}"], capsys
    )
    assert f"{checkpoint}: {message}" in only_error(code, lines)
    assert SCENE not in stdout and not out.exists()


def test_prepare_raw_root_that_does_not_exist(tmp_path, capsys):
    out = tmp_path / "prepared"
    code, _, lines = run_main(
        "prepare", [f"data.raw.root={tmp_path / 'nope'}", f"out_dir={out}"], capsys
    )
    assert f"{tmp_path / 'nope' / 'scans'}: no ScanNet scans folder" in only_error(code, lines)
    assert not out.exists()


# ------------------------------------------------- evaluate.py


EVALUATE_SETTINGS: dict[str, tuple[Callable[[Path, Path], list[str]], str]] = {
    "frame_stride_zero": (
        lambda gt, t: [f"pred_mesh={gt}", f"gt_mesh={gt}", "frame_stride=0"],
        "frame_stride must be at least 1, got 0",
    ),
    "mask_without_culled": (
        lambda gt, t: [f"pred_mesh={gt}", f"gt_mesh={gt}", f"visibility_mask={t}/m.npz"],
        "visibility_mask is only used by protocol=culled",
    ),
    "pred_dir_and_pred_mesh": (
        lambda gt, t: [f"pred_mesh={gt}", f"pred_dir={t}", f"gt_mesh={gt}"],
        "pred_dir (several scenes) excludes pred_mesh and scene (one)",
    ),
    "pred_dir_without_scenes": (
        lambda gt, t: [f"pred_dir={t}"],
        "pred_dir needs its scenes: data_root=... split=..., or scenes=[...]",
    ),
    "pred_dir_without_ground_truth": (
        lambda gt, t: [f"pred_dir={t}", "scenes=[a,b]"],
        "pred_dir needs data_root=... or a gt_mesh=... path with {scene}",
    ),
    "split_list_missing": (
        lambda gt, t: [f"pred_dir={t}", f"data_root={t}", "split=vall"],
        "scannetv2_vall.txt: split list not found",
    ),
    "split_list_empty": (
        lambda gt, t: [f"pred_dir={t}", f"data_root={t}", "split=val"],
        "no scenes to evaluate in split 'val' of",
    ),
    "nothing_named": (
        lambda gt, t: [],
        "nothing to evaluate: set pred_mesh=... (one scene) or pred_dir=... (several)",
    ),
}


@pytest.mark.parametrize("case", list(EVALUATE_SETTINGS))
def test_evaluate_checks_settings_before_any_scene(tiny_scene, tmp_path, capsys, case):
    make, message = EVALUATE_SETTINGS[case]
    (tmp_path / "scannetv2_val.txt").write_text("")
    gt = tiny_scene / f"{SCENE}_vh_clean_2.ply"
    out = tmp_path / "report"
    code, _, lines = run_main("evaluate", [f"output_dir={out}", *make(gt, tmp_path)], capsys)
    assert message in only_error(code, lines)
    assert not out.exists()


@pytest.mark.parametrize("case", ["gt_is_a_folder", "scene_missing"])
def test_evaluate_bad_ground_truth_path_fails_its_scene(tiny_scene, tmp_path, capsys, case):
    pred = tiny_scene / f"{SCENE}_vh_clean_2.ply"
    folder = tmp_path / ("gt" if case == "gt_is_a_folder" else "no_scene")
    if case == "gt_is_a_folder":
        folder.mkdir()
        given, message = f"gt_mesh={folder}", f"{folder}: mesh file not found"
    else:
        given, message = f"scene={folder}", f"{folder}: scene folder not found"
    out = tmp_path / "report"
    overrides = [f"pred_mesh={pred}", given, f"output_dir={out}", "plots.enabled=false"]
    code, _, lines = run_main("evaluate", overrides, capsys)
    assert code == 1
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and message in errors[0], lines
    # The failure's report, complete; no scene folder, no temporary file.
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.json", "metrics.md"]


# ------------------------------------------------- train.py


@pytest.fixture(scope="module")
def raw_with_splits(tiny_scene) -> Path:
    """The raw root of ``tiny_scene``: its split lists name scene0000_00 for training."""
    return tiny_scene.parents[1]


TRAIN_INPUTS: dict[str, tuple[Callable[[Path], str], str]] = {
    "ckpt_missing": (lambda t: f"ckpt_path={t}/old.ckpt", "old.ckpt: no checkpoint to resume"),
    "init_weights_missing": (
        lambda t: f"model.init_weights={t}/w.pt",
        "w.pt: model file not found",
    ),
    "one_scale_three_weights": (
        lambda t: "model.model.voxel_sizes=[0.04]",
        "loss_weights needs one weight per scale (0.04,), got [1.0, 1.0, 1.0]",
    ),
    "split_not_prepared": (lambda t: "seed=1", "scenes of split 'train' not prepared"),
}


@pytest.mark.parametrize("case", list(TRAIN_INPUTS))
def test_train_stops_before_writing_anything(raw_with_splits, tmp_path, capsys, case):
    make, message = TRAIN_INPUTS[case]
    (tmp_path / "prepared").mkdir()
    out = tmp_path / "run"
    overrides = [
        f"data.prepared_root={tmp_path / 'prepared'}",
        f"data.raw.root={raw_with_splits}",
        f"out_dir={out}",
        make(tmp_path),
    ]
    code, _, lines = run_main("train", overrides, capsys)
    line = only_error(code, lines)
    assert message in line
    if case == "split_not_prepared":
        assert f"{tmp_path / 'prepared'}: " in line and SCENE in line
    assert nothing_written(out)


# ------------------------------------------------- the synthetic generator


@pytest.mark.parametrize(
    ("argv", "flag"), [(["--frames", "abc"], "--frames"), (["--scenes", "two"], "--scenes")]
)
def test_synthetic_generator_refuses_a_non_number(tmp_path, capsys, argv, flag):
    from atlas.synthetic import generate as synthetic

    with pytest.raises(SystemExit) as stop:
        synthetic.main([*argv, "--out", str(tmp_path / "syn")])
    assert stop.value.code == 2
    assert f"argument {flag}: invalid int value" in capsys.readouterr().err
    assert not (tmp_path / "syn").exists()


def test_synthetic_generator_too_few_frames_writes_no_scene(tmp_path):
    from atlas.synthetic import generate as synthetic

    with pytest.raises(ValueError, match="n_frames must be at least 2, got 1"):
        synthetic.main(["--frames", "1", "--out", str(tmp_path / "syn")])
    assert nothing_written(tmp_path / "syn" / "scans")


SYNTHETIC_GAPS = [
    (["--width", "0"], "--width"),
    (["--height", "-5"], "--height"),
    (["--first", "-1"], "--first"),
    (["--scenes", "-1"], "--scenes"),
]


@pytest.mark.parametrize(("argv", "flag"), SYNTHETIC_GAPS, ids=[a[0] for a, _ in SYNTHETIC_GAPS])
def test_synthetic_generator_impossible_sizes_name_the_flag(tmp_path, capsys, argv, flag):
    from atlas.synthetic import generate as synthetic

    with pytest.raises((SystemExit, ValueError)) as stop:
        synthetic.main([*argv, "--frames", "2", "--out", str(tmp_path / "syn")])
    said = str(stop.value) + capsys.readouterr().err
    assert flag in said, said
    assert nothing_written(tmp_path / "syn" / "scans")


# ------------------------------------------------- non-finite and negative settings


def test_infer_infinite_max_depth_is_a_setting_error(tiny_scene, tmp_path, capsys):
    code, _, lines = run_main(
        "infer", [f"scene={tiny_scene}", f"out_dir={tmp_path}/out", "model.max_depth=inf"], capsys
    )
    assert "model.max_depth" in only_error(code, lines)


def test_prepare_nan_max_depth_is_a_setting_error(tiny_scene, tmp_path, capsys):
    raw = tmp_path / "raw"
    copy_scene(tiny_scene, raw / "scans" / SCENE)
    code, _, lines = run_main(
        "prepare", [f"data.raw.root={raw}", f"out_dir={tmp_path}/out", "max_depth=nan"], capsys
    )
    assert "max_depth" in only_error(code, lines)


@pytest.mark.parametrize("override", ["protocol.threshold=-0.1", "depth.max_depth=-1"])
def test_evaluate_impossible_threshold_is_a_setting_error(tiny_scene, tmp_path, capsys, override):
    gt = tiny_scene / f"{SCENE}_vh_clean_2.ply"
    out = tmp_path / "report"
    overrides = [f"pred_mesh={gt}", f"gt_mesh={gt}", f"output_dir={out}", override]
    code, _, lines = run_main("evaluate", overrides, capsys)
    assert override.split("=")[0] in only_error(code, lines)


# ------------------------------------------------- the Python API


@pytest.fixture(scope="module")
def tiny_reader(tiny_scene):
    from atlas.readers.scannet import ScanNetFolder

    return ScanNetFolder(tiny_scene)


API_SETTINGS = {
    "max_depth_nan": ({"max_depth": float("nan")}, "max_depth must be a distance > 0"),
    "frame_stride_zero": ({"frame_stride": 0}, "frame_stride must be an integer >= 1, got 0"),
    "frame_stride_float": ({"frame_stride": 2.5}, "frame_stride must be an integer >= 1"),
    "chunk_voxels_negative": ({"chunk_voxels": -8}, "chunk_voxels must be an integer >= 1"),
    "rotations_three": ({"rotations": 3}, "rotations must be 1, 2 or 4, got 3"),
    "evidence_refine_float": ({"evidence_refine_scale": 1.5}, "evidence_refine_scale must be"),
    "evidence_refine_poses_text": (
        {"evidence_refine_poses": "yes"},
        "evidence_refine_poses must be true or false",
    ),
    "image_size_three_numbers": ({"image_size": (64, 48, 3)}, "image_size must be null or"),
}


@pytest.mark.parametrize("case", list(API_SETTINGS))
def test_reconstruct_model_checks_settings_before_loading_anything(tiny_reader, tmp_path, case):
    from atlas.model.inference import ModelInferenceConfig
    from atlas.pipeline.methods import reconstruct_model

    changes, message = API_SETTINGS[case]
    missing = tmp_path / "never_opened.pt"  # the settings are judged first
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        reconstruct_model(tiny_reader, missing, ModelInferenceConfig(**changes))


def test_reconstruct_model_missing_model_file(tiny_reader, tmp_path):
    from atlas.pipeline.methods import reconstruct_model

    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope.pt'}: model file not found"):
        reconstruct_model(tiny_reader, tmp_path / "nope.pt")


@pytest.mark.parametrize("every", [0, -3])
def test_add_snapshots_refuses_a_step_below_one(tiny_reader, every):
    from atlas.pipeline.scene import add_snapshots

    def never(reader):
        raise AssertionError("no snapshot is made")

    with pytest.raises(ValueError, match=f"snapshot_every must be a positive .*got {every}"):
        add_snapshots(None, tiny_reader, never, every)


@pytest.mark.parametrize("indices", [[], [0, 8], [-1, 2]], ids=["empty", "past_end", "negative"])
def test_frame_subset_out_of_range_names_the_scene(tiny_reader, indices):
    with pytest.raises(ValueError, match=f"{SCENE}: frame subset out of range 0..7"):
        SubsetReader(tiny_reader, indices)


@pytest.mark.parametrize("case", ["under_a_file", "is_a_file"])
def test_save_reconstruction_where_a_file_is(tmp_path, case):
    """All or nothing: the file is left as it was, no hidden folder beside it."""
    from atlas.geometry.mesh import Mesh
    from atlas.geometry.voxel_grid import VoxelGrid
    from atlas.pipeline.outputs import save_reconstruction
    from atlas.pipeline.result import Reconstruction

    grid = VoxelGrid(np.ones((2, 2, 2)), np.ones((2, 2, 2)), np.zeros(3), 0.1)
    rec = Reconstruction("r", grid, Mesh(np.eye(3), [[0, 1, 2]]))
    (tmp_path / "notes").write_text("mine")
    out = tmp_path / "notes" / "out" if case == "under_a_file" else tmp_path / "notes"
    with pytest.raises(NotADirectoryError, match=str(tmp_path / "notes")):
        save_reconstruction(rec, out)
    assert [p.name for p in tmp_path.iterdir()] == ["notes"]
    assert (tmp_path / "notes").read_text() == "mine"


# ------------------------------------------------- scenes: duplicate names, sizes that disagree


def posed_duplicate_stem(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import image, known_poses, save, write_posed

    folder = write_posed(tmp_path / "posed", ["a", "b"], known_poses(2))
    save(image(5), folder / "images" / "a.jpg")
    return folder, "two images named 'a'"


def posed_depth_missing(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, write_posed

    folder = write_posed(tmp_path / "posed", ["a", "b"], known_poses(2), depth=True)
    (folder / "depth" / "b.png").unlink()
    return folder, "depth/b.png: no depth map for image"


def posed_depth_sizes_differ(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, save, write_posed

    folder = write_posed(tmp_path / "posed", ["a", "b"], known_poses(2), depth=True)
    save(np.full((24, 32), 1000, np.uint16), folder / "depth" / "b.png")
    return folder, "depth/b.png: depth image is 32x24 but"


def colmap_listed_twice(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, write_colmap

    folder = write_colmap(tmp_path / "sfm", known_poses(2))
    images = folder / "sparse" / "0" / "images.txt"
    lines = images.read_text().splitlines()
    data = [line for line in lines if line and not line.startswith("#")]
    images.write_text("\n".join([*lines, "9" + data[0][1:], ""]) + "\n")
    return folder, "images.txt: image img2.png listed twice"


def colmap_unknown_camera(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, write_colmap

    folder = write_colmap(tmp_path / "sfm", known_poses(2), camera_ids=[1, 7])
    return folder, "uses unknown camera 7"


def colmap_image_size_not_the_camera(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, write_colmap

    cams = "1 PINHOLE 128 96 50 50 64 48\n"
    folder = write_colmap(tmp_path / "sfm", known_poses(2), cameras=cams)
    return folder, "img1.png: image is 64x48 but camera 1 in cameras.txt is 128x96"


def transforms_declared_size(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, write_transforms

    folder = write_transforms(tmp_path / "ns", known_poses(2))
    meta = json.loads((folder / "transforms.json").read_text())
    meta["w"] = 640
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder, "says w=640, h=48"


def transforms_some_depth(tmp_path: Path) -> tuple[Path, str]:
    from test_custom_formats import known_poses, save, write_transforms

    folder = write_transforms(tmp_path / "ns", known_poses(2))
    meta = json.loads((folder / "transforms.json").read_text())
    save(np.full((H, W), 1000, np.uint16), folder / "depth" / "0.png")
    meta["frames"][0]["depth_file_path"] = "depth/0.png"
    (folder / "transforms.json").write_text(json.dumps(meta))
    return folder, "transforms.json frame 1: no depth_file_path while other frames have one"


def transforms_not_json(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "ns"
    folder.mkdir()
    (folder / "transforms.json").write_text("{'frames': []}")
    return folder, "transforms.json: not valid JSON"


def transforms_no_frames(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "ns"
    folder.mkdir()
    (folder / "transforms.json").write_text('{"fl_x": 50, "frames": []}')
    return folder, "transforms.json: 'frames' is empty"


def scannet_frame_not_numbered(tmp_path: Path, tiny_scene: Path) -> tuple[Path, str]:
    scene = copy_scene(tiny_scene, tmp_path / SCENE)
    shutil.copy(scene / "color" / "0.jpg", scene / "color" / "0 (copy).jpg")
    return scene, "0 (copy).jpg: ScanNet frame files are named <number>.jpg"


def scannet_pose_not_a_matrix(tmp_path: Path, tiny_scene: Path) -> tuple[Path, str]:
    scene = copy_scene(tiny_scene, tmp_path / SCENE)
    (scene / "pose" / "4.txt").write_text("1 0 0 0\n0 1 0 0\n0 0 1 zero\n0 0 0 1\n")
    return scene, "pose/4.txt: not a numeric matrix"


def seven_scenes_intrinsics_3x2(tmp_path: Path, tiny_scene: Path) -> tuple[Path, str]:
    reader, _ = seven_scenes_reader(tiny_scene, tmp_path)
    (reader.folder / "camera-intrinsics.txt").write_text("50 0\n0 50\n0 0\n")
    return reader.folder, "camera-intrinsics.txt: intrinsics must be 3x3 or 4x4, got (3, 2)"


SCENE_INPUTS: dict[str, Callable[..., tuple[Path, str]]] = {
    "posed_duplicate_stem": posed_duplicate_stem,
    "posed_depth_missing": posed_depth_missing,
    "posed_depth_sizes_differ": posed_depth_sizes_differ,
    "colmap_listed_twice": colmap_listed_twice,
    "colmap_unknown_camera": colmap_unknown_camera,
    "colmap_image_size_not_the_camera": colmap_image_size_not_the_camera,
    "transforms_declared_size": transforms_declared_size,
    "transforms_some_depth": transforms_some_depth,
    "transforms_not_json": transforms_not_json,
    "transforms_no_frames": transforms_no_frames,
    "scannet_frame_not_numbered": scannet_frame_not_numbered,
    "scannet_pose_not_a_matrix": scannet_pose_not_a_matrix,
    "7scenes_intrinsics_3x2": seven_scenes_intrinsics_3x2,
}


@pytest.mark.parametrize("case", list(SCENE_INPUTS))
def test_open_scene_names_the_file_that_disagrees(tiny_scene, tmp_path, case):
    """What ``open_scene`` and the poses (read at once by every entry point) say."""
    from atlas.readers.detect import open_scene

    make = SCENE_INPUTS[case]
    takes_scene = make.__code__.co_argcount == 2
    folder, message = make(tmp_path, tiny_scene) if takes_scene else make(tmp_path)
    with pytest.raises((ValueError, FileNotFoundError)) as err:
        open_scene(folder).poses  # noqa: B018
    assert message in str(err.value)
    assert type(err.value) in (ValueError, FileNotFoundError)


def test_prepare_repeated_voxel_size_is_a_setting_error():
    from atlas.preparation.prepare import PrepareSettings

    with pytest.raises(ValueError, match=r"voxel_sizes must be different sizes.*0\.04, 0\.04"):
        PrepareSettings(voxel_sizes=[0.04, 0.04]).check()
