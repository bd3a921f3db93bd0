"""Stereo benchmark: rooms reconstructed from RGB only with each stereo preset.

For each scene and preset: seconds from images to mesh, peak memory (each run in a
fresh process), the mesh's ATLAS-protocol scores (F@5cm, precision, recall) against
the ground truth, and the keyframes' filtered depth maps against the measured (or
rendered) depth seen from the colour camera: the share of pixels kept, AbsRel and
delta < 1.25 on them. Scenes:

- ``synthetic``: the 300-frame synthetic room (seed 0), against its mesh;
- ``scannet``: the real ScanNet room in ``../shared/data/scannet-dev`` (300 full
  resolution frames), against TSDF fusion of its depth at 2 cm up to 4 m;
- ``7scenes``: the 500 7-Scenes dev frames, against TSDF fusion of the Kinect depth at
  4 cm up to 3 m (its colour camera is uncalibrated: reported, not tuned on).

Scenes whose data is absent are skipped with a note. Writes ``docs/stereo_bench.json``,
the table between the markers in ``docs/benchmarks.md`` and ``docs/stereo_<scene>.png``
(the ground truth beside each preset's mesh)::

    python bench/stereo_bench.py [--presets fast default quality] [--scenes scannet ...]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch

if not __package__:  # run as a script (python bench/stereo_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import harness
from bench.harness import BENCH_DATA, BENCHMARKS_MD, ROOT, SEVEN_SCENES, SHARED_DATA, timed

GT_CACHE = BENCH_DATA / "stereo_gt"
DOC = BENCHMARKS_MD
JSON_OUT = ROOT / "docs" / "stereo_bench.json"
START, END = harness.block_markers("stereo_bench")
SCENES = ("synthetic", "scannet", "7scenes")


def open_reader(scene: str):
    """The scene's reader, or None when its data is absent."""
    from atlas.readers.scannet import ScanNetFolder
    from atlas.readers.seven_scenes import SevenScenesFolder
    from atlas.synthetic.generate import SceneConfig, write_scene

    if scene == "synthetic":
        path = BENCH_DATA / "scans" / "scene0000_00"
        if not path.exists():  # shared with bench/fusion_bench.py
            write_scene(path, SceneConfig(seed=0, n_frames=300), progress=True)
        return ScanNetFolder(path)
    if scene == "scannet":
        path = SHARED_DATA / "scannet-dev" / "scans" / "scene0000_00"
        return ScanNetFolder(path) if path.is_dir() else None
    if scene == "7scenes":
        return SevenScenesFolder(SEVEN_SCENES) if SEVEN_SCENES.is_dir() else None
    raise ValueError(f"unknown scene {scene!r}; choose from {SCENES}")


def ground_truth(scene: str, reader):
    """The mesh a scene is scored against (fused ones cached under data/bench)."""
    from atlas.geometry import read_ply

    if reader.gt_mesh_path:
        return read_ply(reader.gt_mesh_path)
    voxel, max_depth = (0.02, 4.0) if scene == "scannet" else (0.04, 3.0)
    return fused_ground_truth(scene, reader, voxel, max_depth)


def fused_ground_truth(name: str, reader, voxel: float, max_depth: float):
    """The mesh of every frame's depth fused at ``voxel`` metres up to ``max_depth``,
    cached as data/bench/stereo_gt/<name>_<voxel>_<max_depth>.ply."""
    from atlas.geometry import extract_mesh, fuse_depth_frames, read_ply, write_ply

    cached = GT_CACHE / f"{name}_{voxel}_{max_depth}.ply"
    if cached.exists():
        return read_ply(cached)
    grid = fuse_depth_frames(
        ((f.depth, None) for f in reader),
        reader.K_depth,
        reader.poses[reader.valid],
        reader.depth_size,
        voxel,
        max_depth,
    )
    mesh = extract_mesh(grid)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_ply(mesh, cached)
    return mesh


def depth_in_color_view(frame, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) metres: the frame's depth map seen from its colour camera at ``size``
    (w, h) with intrinsics ``K`` (nearest surface per pixel, 0 where none). The depth
    camera's pixels are back-projected with its own intrinsics and projected into the
    colour camera; the few centimetres between the two cameras are ignored, as the
    poses do."""
    from atlas.stereo.consistency import backproject

    K_depth = frame.K_depth if frame.K_depth is not None else frame.K_color
    depth = torch.from_numpy(frame.depth.astype(np.float64))
    cam = backproject(depth, torch.from_numpy(K_depth), torch.eye(4, dtype=torch.float64))
    x, y, z = cam[depth > 0].numpy().T  # camera frame: the pose is the identity
    pu = np.round(x / z * K[0, 0] + K[0, 2]).astype(np.int64)
    pv = np.round(y / z * K[1, 1] + K[1, 2]).astype(np.int64)
    inside = (pu >= 0) & (pu < size[0]) & (pv >= 0) & (pv < size[1])
    out = np.full(size[0] * size[1], np.inf)
    np.minimum.at(out, pv[inside] * size[0] + pu[inside], z[inside])
    out[np.isinf(out)] = 0.0
    return out.reshape(size[1], size[0]).astype(np.float32)


def keyframe_depth_metrics(reader, depths) -> dict:
    """Mean depth metrics of the filtered keyframe depth maps (StereoDepths) against
    the frames' measured depth."""
    from atlas.evaluation.depth_metrics import depth_metrics, mean_depth_metrics

    K = depths.K.cpu().numpy().astype(np.float64)
    per_view = [
        depth_metrics(depths.depths[i].cpu().numpy(), depth_in_color_view(f, K, depths.image_size))
        for i, f in enumerate(reader.iter_frames(depths.keyframes))
    ]
    return mean_depth_metrics(per_view)


def run_one(scene: str, preset: str) -> dict | None:
    """Reconstruct ``scene`` with ``preset`` and score it (meant for a fresh process, so
    that its peak memory is this run's: taken before the ground truth is loaded)."""
    from atlas.evaluation.mesh_metrics import mesh_metrics
    from atlas.geometry import write_ply
    from atlas.pipeline.methods import MethodSettings
    from atlas.pipeline.scene import reconstruct_scene
    from atlas.stereo.presets import stereo_preset

    reader = open_reader(scene)
    if reader is None:
        return None
    cfg = stereo_preset(preset)
    with timed() as t:
        # align=none: scored in the capture's own frame, the frame of its ground truth.
        rec = reconstruct_scene(reader, "stereo", MethodSettings(stereo=cfg), align="none")
    seconds = t.wall
    peak_gb = harness.rss_gb()
    write_ply(rec.mesh, mesh_path(scene, preset))
    mesh = mesh_metrics(rec.mesh, ground_truth(scene, reader))
    depth = keyframe_depth_metrics(reader, rec.depths)
    return {
        "scene": scene,
        "preset": preset,
        "frames": len(reader),
        "keyframes": rec.summary["keyframes"],
        "seconds": round(seconds, 1),
        "seconds_parts": rec.summary["seconds"],
        "peak_gb": round(peak_gb, 2),
        "fscore": mesh["fscore"],
        "prec": mesh["prec"],
        "recal": mesh["recal"],
        "acc": mesh["acc"],
        "comp": mesh["comp"],
        "kept": depth["complete"],
        "AbsRel": depth["AbsRel"],
        "r1": depth["r1"],
    }


def mesh_path(scene: str, preset: str) -> Path:
    """Where a run's mesh is kept for the pictures."""
    path = GT_CACHE.parent / "stereo_meshes" / f"{scene}_{preset}.ply"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def save_pictures(scene: str, presets: list[str]) -> Path:
    """docs/stereo_<scene>.png: the ground truth beside each preset's mesh, one camera."""
    from atlas.geometry import read_ply
    from atlas.geometry.render import save_preview

    reader = open_reader(scene)
    panels = [("ground truth", ground_truth(scene, reader))]
    panels += [(f"stereo={p}", read_ply(mesh_path(scene, p))) for p in presets]
    return save_preview(panels, ROOT / "docs" / f"stereo_{scene}.png")


def prepare_scene(scene: str) -> bool | None:
    """Generate the scene (synthetic) and its cached ground truth; None when its data is
    absent."""
    reader = open_reader(scene)
    if reader is None:
        return None
    ground_truth(scene, reader)
    return True


def run_isolated(scene: str, preset: str) -> dict | None:
    """:func:`run_one` in a fresh process."""
    return harness.call_fresh(run_one, scene, preset)


def markdown_table(rows: list[dict]) -> str:
    """The benchmark table (one row per scene and preset)."""
    lines = [
        "| scene | preset | keyframes | total s | peak GB | F@5cm | precision | recall "
        "| pixels kept | AbsRel | δ<1.25 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scene']} | {r['preset']} | {r['keyframes']} | {r['seconds']:.1f} "
            f"| {r['peak_gb']:.2f} | **{r['fscore']:.3f}** | {r['prec']:.3f} | {r['recal']:.3f} "
            f"| {r['kept']:.0%} | {r['AbsRel']:.3f} | {r['r1']:.3f} |"
        )
    return "\n".join(lines)


def replace_block(path: Path, block: str) -> None:
    """Replace the text between the START and END markers of ``path`` with ``block``."""
    harness.replace_block(path, block, START, END)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", nargs="+", default=list(SCENES), choices=SCENES)
    parser.add_argument("--presets", nargs="+", default=["fast", "default"])
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    rows: list[dict] = []
    done: dict[str, list[str]] = {}
    for scene in args.scenes:
        if harness.call_fresh(prepare_scene, scene) is None:  # made once, not timed
            print(f"{scene}: data not found, skipped")
            continue
        for preset in args.presets:
            row = run_isolated(scene, preset)
            if row is None:
                print(f"{scene}: data not found, skipped")
                continue
            rows.append(row)
            done.setdefault(scene, []).append(preset)
            print(
                f"{scene:<10} {preset:<8} {row['keyframes']:>4} kf {row['seconds']:>6.1f} s "
                f"{row['peak_gb']:.2f} GB  F {row['fscore']:.3f} P {row['prec']:.3f} "
                f"R {row['recal']:.3f}  kept {row['kept']:.2f} AbsRel {row['AbsRel']:.3f} "
                f"d<1.25 {row['r1']:.3f}",
                flush=True,
            )
    if args.no_write or not rows:
        print(markdown_table(rows))
        return
    merged = merge_rows(json.loads(JSON_OUT.read_text())["rows"] if JSON_OUT.exists() else [], rows)
    for scene in done:  # every preset with a row and a mesh, not only this run's
        shown = [r["preset"] for r in merged if r["scene"] == scene]
        shown = [p for p in shown if mesh_path(scene, p).is_file()]
        print(f"picture: {save_pictures(scene, shown)}")
    table = markdown_table(merged)
    print(table)
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    harness.write_json(JSON_OUT, {"machine": machine, "rows": merged}, indent=2)
    replace_block(DOC, table)
    harness.refresh_readme_table()


def merge_rows(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` rows with those of the same scene and preset replaced by ``new`` ones,
    ordered by scene, then preset as first seen."""
    by_key = {(r["scene"], r["preset"]): r for r in old}
    by_key.update({(r["scene"], r["preset"]): r for r in new})
    scenes = {s: i for i, s in enumerate(SCENES)}
    presets: dict[str, int] = {}
    for row in by_key.values():
        presets.setdefault(row["preset"], len(presets))
    return sorted(by_key.values(), key=lambda r: (scenes[r["scene"]], presets[r["preset"]]))


if __name__ == "__main__":
    main()
