"""infer.py method=stereo: outputs, resumability, errors. Runs in-process (``run_main``)
with cheap stereo settings: these tests are about the command and its outputs, not
stereo quality (tests/test_stereo.py and bench/stereo_bench.py measure that)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from atlas.geometry import VoxelGrid, read_ply
from tests.conftest import run_main

ROOT = Path(__file__).resolve().parents[1]
SCENE = "scene0000_00"


# The fast preset with few keyframes (a quarter of the 60 frames) and 3 neighbours each.
CHEAP = {"keyframe_translation": 0.3, "keyframe_rotation_deg": 30.0, "n_neighbours": 3}
CHEAP_OVERRIDES = ["method=stereo", "stereo=fast", *(f"stereo.{k}={v}" for k, v in CHEAP.items())]


def cheap_stereo():
    from atlas.stereo.presets import stereo_preset

    return dataclasses.replace(stereo_preset("fast"), **CHEAP)


def test_stereo_reconstruction_outputs(small_dataset, tmp_path, capsys):
    scene = small_dataset / "scans" / SCENE
    args = [*CHEAP_OVERRIDES, f"scene={scene}", f"out_dir={tmp_path}"]
    code, stdout, lines = run_main("infer", args, capsys)
    assert code == 0, lines
    assert json.loads(stdout.strip().splitlines()[-1]) == {"scenes": 1, "failed": {}}
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
    code, again, _ = run_main("infer", args, capsys)
    assert code == 0 and "done already" in again


def test_bad_inputs_fail_clearly(tmp_path, capsys):
    out = [f"out_dir={tmp_path}"]
    code, _, lines = run_main("infer", [*CHEAP_OVERRIDES, f"scene={tmp_path}/nope", *out], capsys)
    assert code == 1 and "nope: scene not found" in "\n".join(lines)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, lines = run_main("infer", [*CHEAP_OVERRIDES, f"scene={empty}", *out], capsys)
    assert code == 1 and "not a scene folder in a known layout" in "\n".join(lines)
    typo = subprocess.run(  # a misspelt key stops the command itself (Hydra, before main)
        [sys.executable, str(ROOT / "infer.py"), "stereo.windw=5", f"hydra.run.dir={tmp_path}/h"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert typo.returncode != 0 and "windw" in typo.stderr
    assert not (tmp_path / "nope").exists() and not np.any(
        [p.name.startswith(".") for p in tmp_path.iterdir()]
    )


def test_snapshots_follow_the_frames_seen_so_far(small_dataset, tmp_path):
    """Incremental reconstruction: the snapshot of the first k frames holds only surface
    those frames see, grows with k, and is saved beside the whole."""
    import torch

    from atlas.geometry.camera import project_points
    from atlas.pipeline.methods import reconstruct_stereo
    from atlas.pipeline.outputs import save_reconstruction
    from atlas.pipeline.scene import add_snapshots
    from atlas.readers.frames import SubsetReader
    from atlas.readers.scannet import ScanNetFolder

    reader = ScanNetFolder(small_dataset / "scans" / SCENE)

    def cheap(reader):
        return reconstruct_stereo(reader, cheap_stereo())

    rec = cheap(reader)
    add_snapshots(rec, reader, cheap, every=20)
    assert [s["frames"] for s in rec.summary["snapshots"]] == [20, 40]
    sizes = [len(mesh.vertices) for _, mesh in rec.snapshots] + [len(rec.mesh.vertices)]
    assert sizes[0] > 500 and sizes == sorted(sizes), sizes
    for k, mesh in rec.snapshots:
        uv, z = project_points(
            torch.from_numpy(mesh.vertices).double(),
            torch.from_numpy(reader.K_color),
            torch.from_numpy(reader.poses[:k]),
        )
        w, h = reader.color_size
        margin = 0.1 * w  # a voxel's reach beyond the image border
        inside = (z > 0) & (uv[..., 0] > -margin) & (uv[..., 0] < w + margin)
        inside &= (uv[..., 1] > -margin) & (uv[..., 1] < h + margin)
        assert inside.any(0).float().mean() > 0.99, k

    save_reconstruction(rec, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "snapshots").iterdir()) == [
        "frames_00020.ply",
        "frames_00040.ply",
    ]
    assert len(read_ply(tmp_path / "out" / "snapshots" / "frames_00020.ply").vertices) == sizes[0]
    assert (tmp_path / "out" / "snapshots.png").is_file()

    first = SubsetReader(reader, range(3))
    short = cheap(first)
    add_snapshots(short, first, cheap, every=1)
    assert "skipped" in short.summary["snapshots"][0]  # one frame: no stereo pair
    assert short.summary["snapshots"][1]["frames"] == 2
