"""Stereo benchmark: a 300-frame synthetic room (and the 7-Scenes dev frames when
present) reconstructed from RGB only: seconds per keyframe, whole time from images to
mesh, peak memory, and F@5cm against the ground truth.

    python bench/stereo_bench.py
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import torch

from atlas.data.scannet import ScanNetFolder
from atlas.data.seven_scenes import SevenScenesFolder
from atlas.data.synthetic import SceneConfig, write_scene
from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import extract_mesh, fuse_depth_frames, read_ply
from atlas.reconstruction import reconstruct_stereo

ROOT = Path(__file__).resolve().parent.parent
SEVEN_SCENES = ROOT.parent / "shared" / "data" / "7scenes-dev"


def depth_fusion_mesh(reader):
    """Ground truth for data without a mesh: TSDF fusion of its depth at 4 cm."""
    valid = reader.valid
    grid = fuse_depth_frames(
        ((f.depth, None) for f in reader),
        reader.K_depth,
        reader.poses[valid],
        reader.depth_size,
        0.04,
        3.0,
    )
    return extract_mesh(grid)


def main() -> None:
    scene = ROOT / "data" / "bench" / "scans" / "scene0000_00"
    if not scene.exists():  # shared with bench/fusion_bench.py
        write_scene(scene, SceneConfig(seed=0, n_frames=300), progress=True)
    readers = [ScanNetFolder(scene)]
    if SEVEN_SCENES.is_dir():
        readers.append(SevenScenesFolder(SEVEN_SCENES))
    print(f"stereo benchmark: torch threads {torch.get_num_threads()}, CPU")
    print(
        f"{'scene':<14} {'frames':>6} {'keyframes':>9} {'s/keyframe':>10} {'total s':>8} "
        f"{'F@5cm':>6} {'prec':>5} {'recall':>6}"
    )
    for reader in readers:
        t = time.perf_counter()
        rec = reconstruct_stereo(reader)
        total = time.perf_counter() - t
        gt = read_ply(reader.gt_mesh_path) if reader.gt_mesh_path else depth_fusion_mesh(reader)
        m = mesh_metrics(rec.mesh, gt)
        s = rec.summary
        print(
            f"{reader.name:<14} {len(reader):>6} {s['keyframes']:>9} "
            f"{s['seconds']['stereo'] / s['keyframes']:>10.3f} {total:>8.1f} "
            f"{m['fscore']:>6.3f} {m['prec']:>5.2f} {m['recal']:>6.2f}"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory {peak:.2f} GB; target: a 300-frame room from RGB to mesh in < 60 s")


if __name__ == "__main__":
    main()
