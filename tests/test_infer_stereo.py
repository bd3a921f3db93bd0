"""infer.py method=stereo: outputs, resumability, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from atlas.geometry import VoxelGrid, read_ply

ROOT = Path(__file__).resolve().parents[1]
SCENE = "scene0000_00"


def run_infer(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "infer.py"), "method=stereo", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_stereo_reconstruction_outputs(small_dataset, tmp_path):
    scene = small_dataset / "scans" / SCENE
    result = run_infer(f"scene={scene}", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"scenes": 1, "failed": {}}
    out = tmp_path / SCENE
    assert sorted(p.name for p in out.iterdir()) == [
        "mesh.ply",
        "preview.png",
        "summary.json",
        "tsdf.npz",
    ]
    mesh = read_ply(out / "mesh.ply")
    assert mesh.colors is not None and len(mesh.vertices) > 1000
    assert mesh.colors.std() > 5  # real colours, not the grey of unseen vertices
    gt = read_ply(scene / f"{SCENE}_vh_clean_2.ply")
    from atlas.evaluation.mesh_metrics import mesh_metrics

    assert mesh_metrics(mesh, gt)["prec"] > 0.6  # in world metres, on the true surfaces
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "stereo" and summary["keyframes"] > 5
    assert summary["alignment"]["method"] == "none"  # ScanNet layout: already Z-up
    assert VoxelGrid.load(out / "tsdf.npz").voxel_size == 0.04
    again = run_infer(f"scene={scene}", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h")
    assert again.returncode == 0 and "done already" in again.stdout


def test_bad_inputs_fail_clearly(tmp_path):
    missing = run_infer(
        f"scene={tmp_path}/nope", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h"
    )
    assert missing.returncode == 1 and "nope: scene not found" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    unknown = run_infer(f"scene={empty}", f"out_dir={tmp_path}", f"hydra.run.dir={tmp_path}/h")
    assert unknown.returncode == 1 and "not a scene folder in a known layout" in unknown.stderr
    typo = run_infer("stereo.windw=5", f"hydra.run.dir={tmp_path}/h")
    assert typo.returncode != 0 and "windw" in typo.stderr
    assert not (tmp_path / "nope").exists() and not np.any(
        [p.name.startswith(".") for p in tmp_path.iterdir()]
    )
