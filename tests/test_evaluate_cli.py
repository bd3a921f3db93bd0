"""``evaluate.py`` end to end, run as a subprocess with the project's Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from atlas.geometry import Mesh, read_ply, write_ply
from atlas.synthetic.generate import SceneConfig, generate_dataset
from tests.test_evaluation import grid_plane

ROOT = Path(__file__).resolve().parents[1]


def evaluate(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    env = os.environ | {"ATLAS_COMPILE": "0"}  # small volumes: skip torch.compile warm-up
    return subprocess.run(
        [sys.executable, "evaluate.py", f"hydra.run.dir={tmp_path / 'run'}", *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_json(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def plane_pair(tmp_path_factory) -> tuple[Path, Path]:
    """A ground-truth plane and the same plane 3 cm higher, as PLY files."""
    root = tmp_path_factory.mktemp("planes")
    gt = grid_plane((-1, 1), (-1, 1))
    write_ply(gt, root / "gt.ply")
    write_ply(gt.translated(np.array([0, 0, 0.03])), root / "pred.ply")
    return root / "pred.ply", root / "gt.ply"


def test_cli_prints_metrics_and_ends_with_json(plane_pair, tmp_path):
    pred, gt = plane_pair
    result = evaluate(tmp_path, f"pred_mesh={pred}", f"gt_mesh={gt}", "protocol=atlas")
    assert result.returncode == 0, result.stderr
    line = last_json(result)
    assert line["protocol"] == "atlas" and line["n_failed"] == 0
    assert line["metrics"]["acc"] == pytest.approx(0.03, abs=1e-6)
    assert line["metrics"]["fscore"] == 1
    assert "| pred | prediction |" in result.stdout  # the Markdown table
    run = tmp_path / "run"
    report = json.loads((run / "metrics.json").read_text())
    assert report["scenes"][0]["curve"]["fscore"][1] == 0  # F@2cm
    assert (run / "metrics.csv").read_text().startswith("scene,method,status")
    for name in ("prediction_curve.png", "prediction_distance.png", "prediction_distance.ply"):
        assert (run / "pred" / name).stat().st_size > 0


def test_cli_threshold_override(plane_pair, tmp_path):
    pred, gt = plane_pair
    overrides = f"pred_mesh={pred}", f"gt_mesh={gt}", "plots.enabled=false"
    result = evaluate(tmp_path, *overrides, "protocol.threshold=0.02")
    assert last_json(result)["metrics"]["fscore"] == 0


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line a failed run must end with (exit 1, no traceback)."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    return line


@pytest.mark.parametrize("kind", ["mistyped", "zero_bytes", "text", "truncated"])
def test_cli_missing_or_unreadable_prediction_is_an_error_naming_it(plane_pair, tmp_path, kind):
    pred, gt = plane_pair
    bad = tmp_path / "pred.ply"
    if kind == "mistyped":
        bad = tmp_path / "perd.ply"
    elif kind == "zero_bytes":
        bad.write_bytes(b"")
    elif kind == "text":
        bad.write_text("this is not a mesh\n")
    else:
        bad.write_bytes(pred.read_bytes()[:1000])
    result = evaluate(tmp_path, f"pred_mesh={bad}", f"gt_mesh={gt}", "plots.enabled=false")
    line = error_line(result)
    assert str(bad) in line
    expected = {
        "mistyped": "prediction not found",
        "zero_bytes": "not a PLY file",
        "text": "not a PLY file",
        "truncated": "truncated PLY file",
    }[kind]
    assert expected in line


def test_cli_missing_pred_zero_scores_a_missing_prediction_zero(plane_pair, tmp_path):
    _, gt = plane_pair
    missing = tmp_path / "nothing.ply"
    overrides = f"pred_mesh={missing}", f"gt_mesh={gt}", "plots.enabled=false"
    result = evaluate(tmp_path, *overrides, "missing_pred=zero")
    assert result.returncode == 0, result.stderr
    assert f"prediction missing: {missing}" in result.stdout + result.stderr
    metrics = last_json(result)["metrics"]
    assert metrics["fscore"] == 0 and metrics["acc"] is None  # inf -> null
    result = evaluate(tmp_path, f"pred_mesh={gt}", f"gt_mesh={gt}", "missing_pred=maybe")
    assert result.returncode == 2 and "missing_pred" in result.stderr


def test_cli_empty_prediction_scores_zero_with_a_warning(plane_pair, tmp_path):
    _, gt = plane_pair
    empty = tmp_path / "empty.ply"
    write_ply(Mesh(np.zeros((0, 3)), np.zeros((0, 3))), empty)
    result = evaluate(tmp_path, f"pred_mesh={empty}", f"gt_mesh={gt}", "plots.enabled=false")
    assert result.returncode == 0, result.stderr
    assert f"prediction is an empty mesh (no vertices): {empty}" in result.stdout + result.stderr
    line = last_json(result)
    assert line["n_failed"] == 0 and line["metrics"]["fscore"] == 0
    assert line["metrics"]["recal"] == 0 and line["metrics"]["acc"] is None


def test_cli_non_finite_prediction_vertices_are_an_error_naming_file_and_count(
    plane_pair, tmp_path
):
    pred, gt = plane_pair
    mesh = read_ply(pred)
    vertices = mesh.vertices.copy()
    vertices[[3, 50], 1] = np.nan
    vertices[7, 2] = np.inf
    bad = tmp_path / "nan.ply"
    write_ply(Mesh(vertices, mesh.faces), bad)
    result = evaluate(tmp_path, f"pred_mesh={bad}", f"gt_mesh={gt}", "plots.enabled=false")
    line = error_line(result)
    assert f"{bad}: 3 of {len(vertices)} vertices are not finite" in line
    assert "must be finite" not in result.stderr  # not SciPy's message


def test_cli_mesh_pair_imports_neither_torch_nor_plot_libraries(plane_pair, tmp_path):
    """The one-pair path runs in a process that never imports torch (1.7 s to import),
    nor, without plots, Matplotlib or Open3D."""
    pred, gt = plane_pair
    code = f"""
import runpy, sys
sys.argv = ["evaluate.py", "pred_mesh={pred}", "gt_mesh={gt}", "protocol=atlas",
            "plots.enabled=false", "hydra.run.dir={tmp_path / "run"}"]
try:
    runpy.run_path("evaluate.py", run_name="__main__")
except SystemExit as exit:
    assert not exit.code, exit.code
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"torch", "open3d", "matplotlib"}})
print("loaded:", loaded)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "loaded: []"
    assert json.loads(result.stdout.strip().splitlines()[-2])["metrics"]["fscore"] == 1


def test_cli_rejects_config_typos_and_bad_input(plane_pair, tmp_path):
    pred, gt = plane_pair
    result = evaluate(tmp_path, f"pred_mesh={pred}", f"gt_mesh={gt}", "protocol.treshold=0.1")
    assert result.returncode != 0 and "treshold" in result.stderr
    result = evaluate(tmp_path, f"pred_mesh={pred}")
    assert result.returncode == 2 and "no ground truth" in result.stderr


def test_cli_several_scenes_culled_with_baseline(tmp_path):
    """Two scenes listed, one without ground truth: it fails, the other is scored."""
    data = tmp_path / "data"
    cfg = SceneConfig(seed=3, n_frames=30, width=160, height=120)
    (scene,) = generate_dataset(data, 1, cfg, progress=False)
    broken = data / "scans" / "scene0001_00"
    shutil.copytree(scene / "color", broken / "color")  # cameras, but no mesh
    shutil.copytree(scene / "pose", broken / "pose")
    shutil.copytree(scene / "intrinsic", broken / "intrinsic")
    (data / "scannetv2_val.txt").write_text("scene0000_00\nscene0001_00\n")
    preds = tmp_path / "preds"
    for name in ("scene0000_00", "scene0001_00"):
        (preds / name).mkdir(parents=True)
        shutil.copy(
            data / "scans/scene0000_00/scene0000_00_vh_clean_2.ply", preds / name / "mesh.ply"
        )
    result = evaluate(
        tmp_path,
        f"pred_dir={preds}",
        f"data_root={data}",
        "split=val",
        "protocol=culled",
        "protocol.n_samples=50000",
        "baseline.enabled=true",
        "frame_stride=3",
    )
    assert result.returncode == 0, result.stderr
    line = last_json(result)
    assert line["n_scenes"] == 2 and line["n_failed"] == 1
    assert line["metrics"]["fscore"] == pytest.approx(1, abs=1e-3)
    assert line["metrics"]["n_views"] == 10
    assert line["metrics"]["AbsRel"] < 1e-3  # the ground truth against the sensor depth
    assert 0.9 < line["baseline"]["fscore"] < 1
    report = json.loads((tmp_path / "run" / "metrics.json").read_text())
    failed = [r for r in report["scenes"] if r["status"] == "failed"]
    assert {r["scene"] for r in failed} == {"scene0001_00"}
    assert "vh_clean_2.ply" in failed[0]["error"]
    assert (tmp_path / "run" / "scene0000_00" / "visibility.npz").is_file()
