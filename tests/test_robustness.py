"""The four entry points on inputs that are wrong the way real data is wrong.

Each bad input must end in one ``error: ...`` line on stderr naming the file or key, a
non-zero exit code, no Python traceback and no partial output. Cases covered elsewhere
are not repeated here: the library-level errors of the readers (test_custom_formats,
test_prepare), prepare's ``skip_bad_frames`` and skipped non-finite poses
(test_prepare), evaluate's missing prediction scoring F = 0 (test_evaluate_cli), infer's
missing scene and unknown layout (test_infer_stereo), train's ``+key`` typo
(test_model). Entry points run as subprocesses (about 4 s each to start), so one run
checks many scenes where the entry point goes on after a failed scene.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_custom_formats import known_poses, write_posed, write_transforms
from test_model import SMALL_MODEL, run_train

from atlas.evaluation.runner import load_prediction
from atlas.geometry import read_ply
from atlas.model.checkpoint import read_model_file, save_model
from atlas.model.config import ModelConfig, build_model
from atlas.model.contract import assumed_contract
from atlas.synthetic.generate import SceneConfig, generate_dataset

ROOT = Path(__file__).resolve().parents[1]
SCENE = "scene0000_00"
W, H = 64, 48  # the tiny scene's image size


def run_entry(script: str, *overrides: str, hydra_dir: Path | None = None):
    """``python <script> overrides`` from the project root (Hydra's run folder in
    ``hydra_dir`` when given), as the user would run it: no HYDRA_FULL_ERROR."""
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["ATLAS_COMPILE"] = "0"
    cmd = [sys.executable, script, *overrides]
    if hydra_dir is not None:
        cmd.append(f"hydra.run.dir={hydra_dir}")
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def error_lines(result: subprocess.CompletedProcess, code: int) -> list[str]:
    """The ``error:`` lines of a run that must have failed cleanly: exit ``code``, no
    traceback, and stderr ending in an error line."""
    assert result.returncode == code, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert lines and result.stderr.strip().splitlines()[-1] == lines[-1], result.stderr[-3000:]
    return lines


def only_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    """The single error line of a run stopped before doing any work."""
    lines = error_lines(result, code)
    assert len(lines) == 1, lines
    return lines[0]


def assert_each_named(lines: list[str], expected: dict[str, str]) -> None:
    """One error line per ``expected`` scene (scene -> a fragment naming its bad file
    and what is wrong), and no other error line."""
    found = {
        scene: [line for line in lines if re.search(rf"(?<!\w){scene}(?!\w)", line)]
        for scene in expected
    }
    for scene, fragment in expected.items():
        assert len(found[scene]) == 1, (scene, lines)
        assert fragment in found[scene][0], (scene, fragment, found[scene][0])
    assert len(lines) == len(expected), lines


def assert_empty(folder: Path) -> None:
    """``folder`` absent or empty: no partial output, not even a hidden one."""
    assert not folder.exists() or not any(folder.iterdir()), list(folder.iterdir())


# ------------------------------------------------------------------ bad raw scenes


@pytest.fixture(scope="module")
def tiny_scene(tmp_path_factory) -> Path:
    """One 8-frame 64x48 synthetic scene (ScanNet layout) to copy and break."""
    root = tmp_path_factory.mktemp("tiny_raw")
    generate_dataset(root, 1, SceneConfig(seed=20, n_frames=8, width=W, height=H), progress=False)
    return root / "scans" / SCENE


def save_image(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, format="PNG" if path.suffix == ".png" else "JPEG")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_k(path: Path, fx: float) -> None:
    path.write_text(f"{fx} 0 31.5\n0 48 23.5\n0 0 1\n")


# Ways to break a ScanNet-layout scene: name -> (break it, what the error must name).
SCANNET_BREAKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "color_garbage": (
        lambda d: (d / "color" / "2.jpg").write_bytes(b"not a jpeg"),
        "color/2.jpg: unreadable colour image",
    ),
    "color_truncated": (
        lambda d: truncate(d / "color" / "2.jpg"),
        "color/2.jpg: unreadable colour image",
    ),
    "color_size": (
        lambda d: save_image(np.zeros((24, 32, 3), np.uint8), d / "color" / "3.jpg"),
        "color/3.jpg: colour image is 32x24, the scene's are 64x48",
    ),
    "pose_missing": (lambda d: (d / "pose" / "3.txt").unlink(), "pose/3.txt: file not found"),
    "pose_all_nan": (
        lambda d: [p.write_text("nan nan nan nan\n" * 4) for p in (d / "pose").iterdir()],
        "no frame has a finite pose",
    ),
    "fx_zero": (
        lambda d: write_k(d / "intrinsic" / "intrinsic_depth.txt", 0.0),
        "intrinsic_depth.txt: intrinsics have non-finite or non-positive focal lengths",
    ),
    "fx_negative": (
        lambda d: write_k(d / "intrinsic" / "intrinsic_color.txt", -48.0),
        "intrinsic_color.txt: intrinsics have non-finite or non-positive focal lengths",
    ),
    "depth_uint8": (
        lambda d: save_image(np.full((H, W), 100, np.uint8), d / "depth" / "1.png"),
        "depth/1.png: depth must be a 16-bit single-channel image, got uint8",
    ),
    "depth_size": (
        lambda d: save_image(np.full((24, 32), 1000, np.uint16), d / "depth" / "1.png"),
        "depth/1.png: depth image is 32x24, the scene's are 64x48",
    ),
    "no_frames": (
        lambda d: [p.unlink() for p in (d / "color").iterdir()],
        "color: no frames (*.jpg)",
    ),
}


def broken_scannet(tiny_scene: Path, scans: Path, names: list[str]) -> dict[str, str]:
    """Copies of ``tiny_scene`` under ``scans``, each broken one way (``SCANNET_BREAKS``);
    returns scene -> the fragment its error must contain."""
    expected = {}
    for name in names:
        scene = scans / name
        shutil.copytree(tiny_scene, scene)
        (scene / f"{SCENE}_vh_clean_2.ply").rename(scene / f"{name}_vh_clean_2.ply")
        breaker, fragment = SCANNET_BREAKS[name]
        breaker(scene)
        expected[name] = fragment
    return expected


# ------------------------------------------------------------------ prepare.py


def test_prepare_reports_every_bad_scene_and_writes_none(tiny_scene, tmp_path):
    raw = tmp_path / "raw"
    expected = broken_scannet(tiny_scene, raw / "scans", list(SCANNET_BREAKS))
    out = tmp_path / "prepared"
    result = run_entry(
        "prepare.py",
        f"data.raw.root={raw}",
        f"out_dir={out}",
        hydra_dir=tmp_path / "hydra",
    )
    lines = error_lines(result, 1)
    assert_each_named(lines, expected)
    assert f"prepared 0, already done 0, failed {len(expected)}" in result.stdout
    assert_empty(out)


@pytest.mark.parametrize("case", ["unwritable_out_dir", "no_scenes"])
def test_prepare_stops_before_any_scene(tiny_scene, tmp_path, case):
    raw = tmp_path / "raw"
    (raw / "scans").mkdir(parents=True)
    out = tmp_path / "prepared"
    if case == "unwritable_out_dir":
        shutil.copytree(tiny_scene, raw / "scans" / SCENE)
        (tmp_path / "file").write_text("not a folder")
        out = tmp_path / "file" / "prepared"
    result = run_entry(
        "prepare.py", f"data.raw.root={raw}", f"out_dir={out}", hydra_dir=tmp_path / "hydra"
    )
    line = only_error(result)
    if case == "unwritable_out_dir":
        assert f"{out}: output folder cannot be made" in line
    else:
        assert f"{raw}: no scenes to prepare" in line
        assert not out.exists()


# ------------------------------------------------------------------ infer.py


def broken_custom_scenes(root: Path) -> dict[str, str]:
    """Scenes in the posed-images and transforms.json layouts, each broken one way;
    returns scene folder name -> the fragment its error must contain."""
    posed = write_posed(root / "posed_truncated", ["a", "b", "c"], known_poses(3))
    truncate(posed / "images" / "b.png")
    posed_k = write_posed(root / "posed_fx_negative", ["a", "b"], known_poses(2))
    write_k(posed_k / "intrinsics.txt", -50.0)
    ns = write_transforms(root / "transforms_fx_zero", known_poses(2))
    meta = json.loads((ns / "transforms.json").read_text())
    meta["fl_x"] = 0.0
    (ns / "transforms.json").write_text(json.dumps(meta))
    return {
        "posed_truncated": "images/b.png: unreadable colour image",
        "posed_fx_negative": "intrinsics.txt: intrinsics have non-finite or non-positive",
        "transforms_fx_zero": "focal lengths must be positive",
    }


def test_infer_goes_on_after_each_bad_scene_and_writes_none(tiny_scene, tmp_path):
    scenes = tmp_path / "scenes"
    # RGB-only reconstruction never reads depth: broken depth maps are not failures here
    rgb_breaks = [name for name in SCANNET_BREAKS if not name.startswith("depth_")]
    expected = broken_scannet(tiny_scene, scenes, rgb_breaks)
    expected |= broken_custom_scenes(scenes)
    out = tmp_path / "out"
    listed = ",".join(str(scenes / name) for name in expected)
    result = run_entry("infer.py", f"scenes=[{listed}]", f"out_dir={out}", hydra_dir=tmp_path)
    assert_each_named(error_lines(result, 1), expected)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["scenes"] == len(expected)
    assert sorted(summary["failed"]) == sorted(str(scenes / n) for n in expected)
    assert_empty(out)


@pytest.fixture(scope="module")
def mismatched_model(tmp_path_factory) -> Path:
    """A model file whose weights are for wider 3D layers than its config says."""
    root = tmp_path_factory.mktemp("models")
    cfg = ModelConfig.from_dict(SMALL_MODEL)
    path = save_model(build_model(cfg), cfg, root / "small.pt", assumed_contract(cfg, {}))
    record = read_model_file(path)
    record["config"]["net"]["channels"] = [8, 16, 64]
    torch.save(record, root / "mismatched.pt")
    return root / "mismatched.pt"


@pytest.mark.parametrize("case", ["mismatched", "truncated", "unwritable_out_dir"])
def test_infer_stops_before_any_scene(tiny_scene, mismatched_model, tmp_path, case):
    out = tmp_path / "out"
    overrides = [f"scene={tiny_scene}"]
    if case == "mismatched":
        checkpoint, message = mismatched_model, "weights do not fit the model config"
    elif case == "truncated":
        checkpoint = tmp_path / "truncated.pt"
        shutil.copy(mismatched_model, checkpoint)
        truncate(checkpoint)
        message = "not a readable model file"
    else:
        checkpoint = None
        (tmp_path / "file").write_text("not a folder")
        out, message = tmp_path / "file" / "out", "output folder cannot be made"
    if checkpoint is not None:
        overrides.append(f"checkpoint={checkpoint}")
    result = run_entry("infer.py", *overrides, f"out_dir={out}", hydra_dir=tmp_path / "hydra")
    line = only_error(result)
    assert f"{checkpoint or out}: {message}" in line, line
    assert not out.exists()


# ------------------------------------------------------------------ evaluate.py


def test_evaluate_fails_each_scene_whose_ground_truth_is_bad(tiny_scene, tmp_path):
    """A corrupt, truncated, header-only or missing ground truth fails its scene (a bad
    prediction scores F = 0 instead: next test); none is scored from what half a file
    holds, none leaves a scene folder."""
    gt_source = tiny_scene / f"{SCENE}_vh_clean_2.ply"
    gts, preds = tmp_path / "gt", tmp_path / "pred"
    gts.mkdir()
    (gts / "gt_garbage.ply").write_bytes(b"\x00\x01 not a mesh" * 10)
    data = gt_source.read_bytes()
    (gts / "gt_truncated.ply").write_bytes(data[: len(data) // 2])
    (gts / "gt_header_only.ply").write_bytes(data[:120])
    expected = {
        "gt_garbage": "gt_garbage.ply: not a PLY file",
        "gt_truncated": "gt_truncated.ply: truncated PLY file",
        "gt_header_only": "gt_header_only.ply: truncated PLY file",
        "gt_missing": "gt_missing.ply: mesh file not found",
    }
    for name in expected:
        (preds / name).mkdir(parents=True)
        shutil.copy(gt_source, preds / name / "mesh.ply")
    out = tmp_path / "out"
    result = run_entry(
        "evaluate.py",
        f"pred_dir={preds}",
        f"scenes=[{','.join(expected)}]",
        f"gt_mesh='{gts}/{{scene}}.ply'",
        f"output_dir={out}",
        hydra_dir=tmp_path / "hydra",
    )
    lines = error_lines(result, 1)
    assert_each_named(lines, expected)
    assert all(f"{name} (prediction): " in " ".join(lines) for name in expected)
    line = json.loads(result.stdout.strip().splitlines()[-1])
    assert line["n_scenes"] == line["n_failed"] == 4
    # Only the (complete) reports of the failures: no scene folder, no temporary file.
    assert sorted(p.name for p in out.iterdir()) == ["metrics.csv", "metrics.json", "metrics.md"]
    assert len(json.loads((out / "metrics.json").read_text())["scenes"]) == 4


def test_truncated_prediction_scores_zero_naming_the_file(tiny_scene, tmp_path):
    data = (tiny_scene / f"{SCENE}_vh_clean_2.ply").read_bytes()
    (tmp_path / "pred.ply").write_bytes(data[: len(data) // 3])
    mesh, warning = load_prediction(tmp_path / "pred.ply")
    assert len(mesh.vertices) == 0
    assert warning.startswith("prediction unreadable or empty: ")
    assert "pred.ply: truncated PLY file" in warning


def test_truncated_ascii_ply_is_an_error(tmp_path):
    lines = ["ply", "format ascii 1.0", "element vertex 3", "property float x"]
    lines += ["property float y", "property float z", "element face 1"]
    lines += ["property list uchar int vertex_indices", "end_header"]
    lines += ["0 0 0", "1 0 0", "0 1 0", "3 0 1 2"]
    (tmp_path / "whole.ply").write_text("\n".join(lines) + "\n")
    assert len(read_ply(tmp_path / "whole.ply").faces) == 1
    (tmp_path / "cut.ply").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(ValueError, match=r"cut\.ply: truncated PLY file \(2 lines of data"):
        read_ply(tmp_path / "cut.ply")


def test_evaluate_unwritable_output_folder(tiny_scene, tmp_path):
    gt = tiny_scene / f"{SCENE}_vh_clean_2.ply"
    (tmp_path / "file").write_text("not a folder")
    out = tmp_path / "file" / "out"
    result = run_entry(
        "evaluate.py",
        f"pred_mesh={gt}",
        f"gt_mesh={gt}",
        f"output_dir={out}",
        hydra_dir=tmp_path / "hydra",
    )
    assert f"{out}: output folder cannot be made" in only_error(result)


# ------------------------------------------------------------------ train.py


def lightning_checkpoint(path: Path, model: dict) -> Path:
    """A training checkpoint (Lightning layout) of a freshly built ``model`` config."""
    net = build_model(ModelConfig.from_dict(model))
    state = {f"model.{k}": v for k, v in net.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "optimizer_states": [],
            "hyper_parameters": {"model": model},
            "global_step": 0,
        },
        path,
    )
    return path


def assert_no_training_output(out: Path) -> None:
    """No checkpoints or logs in a run folder (Hydra's own config record may be there)."""
    assert not out.exists() or {p.name for p in out.iterdir()} <= {"hydra"}, list(out.iterdir())


@pytest.mark.parametrize("case", ["ckpt_other_config", "ckpt_truncated", "init_other_config"])
def test_train_rejects_checkpoints_that_do_not_fit(mismatched_model, tmp_path, case):
    """Resuming (``ckpt_path=``) or starting (``model.init_weights=``) from weights of
    another architecture stops before training, naming the file."""
    other = {**SMALL_MODEL, "net": {"channels": [8, 16, 64]}}
    ckpt = lightning_checkpoint(tmp_path / "other.ckpt", other)
    if case == "ckpt_other_config":
        override, message = f"ckpt_path={ckpt}", f"{ckpt}: weights do not fit"
    elif case == "ckpt_truncated":
        truncate(ckpt)
        override, message = f"ckpt_path={ckpt}", f"{ckpt}: not a readable checkpoint"
    else:
        override, message = f"model.init_weights={ckpt}", f"{ckpt}: weights do not fit"
    out = tmp_path / "run"
    result = run_train(tmp_path, out, override)
    assert message in only_error(result), result.stderr[-2000:]
    assert_no_training_output(out)


def test_train_unwritable_out_dir(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = run_train(tmp_path, tmp_path / "file" / "run")
    assert f"{tmp_path / 'file'}" in only_error(result)


def test_train_without_prepared_scenes(tmp_path):
    (tmp_path / "prepared").mkdir()
    out = tmp_path / "run"
    result = run_train(tmp_path, out)
    assert f"{tmp_path / 'prepared'}: no prepared scenes" in only_error(result)
    assert_no_training_output(out)


def test_train_stops_at_a_corrupt_image_naming_it(tiny_scene, tmp_path):
    """A raw image damaged after preparation: one line naming it when training reads it."""
    from atlas.preparation.prepare import PrepareSettings, prepare_scene
    from atlas.readers.scannet import ScanNetFolder

    scene = tmp_path / "raw" / "scans" / SCENE
    shutil.copytree(tiny_scene, scene)
    settings = PrepareSettings(voxel_sizes=(0.08, 0.16, 0.32), max_depth=4.0)
    prepare_scene(ScanNetFolder(scene), tmp_path / "prepared", settings, "scannet", "none")
    for i in range(8):
        (scene / "color" / f"{i}.jpg").write_bytes(b"not a jpeg")  # whichever is read first
    out = tmp_path / "run"
    result = run_train(tmp_path, out, "model.model.net.prior=none", "trainer.max_steps=1")
    line = only_error(result, 1)
    assert f"{scene}/color/" in line and ".jpg: unreadable colour image" in line, line
    assert not (out / "checkpoints").exists()


# ------------------------------------------------------------------ all four


@pytest.mark.parametrize(
    ("script", "typo", "key"),
    [
        ("prepare.py", "max_depht=2", "max_depht"),
        ("train.py", "trainer.max_stepz=3", "max_stepz"),
        ("infer.py", "model.frame_strid=2", "frame_strid"),
        ("evaluate.py", "plots.enabeld=false", "enabeld"),
    ],
)
def test_unknown_config_key_is_one_line(tmp_path, script, typo, key):
    result = run_entry(script, typo, hydra_dir=tmp_path / "hydra")
    line = only_error(result)
    assert f"Could not override '{typo.split('=')[0]}'" in line and f"Key '{key}'" in line
    assert not (tmp_path / "hydra").exists()  # stopped before Hydra made its run folder
