"""Fusion benchmark: our TSDFFusion against Open3D's VoxelBlockGrid on the same frames.

Prints frames/s of both (depth preloaded, so decoding is not timed): ours with its
kernels compiled (``torch.compile``, after a warm-up whose seconds are printed: the
compile cost a process pays once) and eager (``ATLAS_COMPILE=0``; a process fusing
fewer frames than ``atlas.compile.FUSION_EAGER_CALLS`` runs them so), the ratio of
compiled to Open3D, and the chamfer distance between the two meshes, for a synthetic
scene and for the real 7-Scenes frames in ../shared/data/7scenes-dev (skipped with a
note when absent).

    python bench/fusion_bench.py [--threads N] [--frames N] [--voxel 0.04]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python bench/fusion_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BENCH_DATA, SEVEN_SCENES, Open3DFusion, set_threads, timed


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--frames", type=int, default=500, help="max frames per sequence")
    p.add_argument("--voxel", type=float, default=0.04, help="voxel size, metres")
    p.add_argument("--max-depth", type=float, default=3.0, help="depth cut, metres")
    p.add_argument("--device", default="cpu", help="torch device for ours (cpu, cuda)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs; the best is kept")
    return p.parse_args(argv)


def load_synthetic(n: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    from PIL import Image

    from atlas.synthetic.generate import SceneConfig, write_scene

    scene = BENCH_DATA / "scans" / "scene0000_00"
    if not scene.exists():
        write_scene(scene, SceneConfig(seed=0, n_frames=min(n, 300)))
    K = np.loadtxt(scene / "intrinsic" / "intrinsic_depth.txt")[:3, :3]
    ids = sorted(int(p.stem) for p in (scene / "depth").glob("*.png"))[:n]
    depths = [np.asarray(Image.open(scene / "depth" / f"{i}.png"), np.uint16) for i in ids]
    poses = [np.loadtxt(scene / "pose" / f"{i}.txt") for i in ids]
    return depths, K, poses


def load_7scenes(n: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]] | None:
    if not SEVEN_SCENES.exists():
        return None
    from PIL import Image

    K = np.loadtxt(SEVEN_SCENES / "camera-intrinsics.txt")
    stems = sorted(p.name[: -len(".depth.png")] for p in SEVEN_SCENES.glob("*.depth.png"))[:n]
    depths = [np.asarray(Image.open(SEVEN_SCENES / f"{s}.depth.png"), np.uint16) for s in stems]
    depths = [np.where(d == 65535, 0, d).astype(np.uint16) for d in depths]
    poses = [np.loadtxt(SEVEN_SCENES / f"{s}.pose.txt") for s in stems]
    return depths, K, poses


def run_ours(
    depths,
    K,
    poses,
    voxel: float,
    max_depth: float,
    repeat: int,
    device: str,
    compile_mode: str = "always",
) -> tuple[float, np.ndarray, float]:
    """Our TSDFFusion on ``device`` with ``ATLAS_COMPILE=compile_mode`` (``always``:
    compiled from the first call, ``0``: eager), its kernels made anew: frames/s (best
    of ``repeat``, after a warm-up of 5 frames), the mesh's vertices and the warm-up's
    seconds (the compile time, when compiled). Depths in millimetres, ``voxel`` and
    ``max_depth`` in metres."""
    import os

    import torch

    from atlas import compile as kernels
    from atlas.geometry import TSDFFusion, extract_mesh, frustum_bounds

    os.environ["ATLAS_COMPILE"] = compile_mode
    kernels.reset()
    h, w = depths[0].shape
    lo, hi = frustum_bounds(K, np.stack(poses), (w, h), max_depth)
    metres = [torch.from_numpy(d.astype(np.float32) / 1000.0).to(device) for d in depths]
    warm = TSDFFusion.from_bounds(lo, hi, voxel, max_depth=max_depth, device=device)
    with timed(device) as warm_up:
        for d, T in zip(metres[:5], poses[:5], strict=True):
            warm.integrate(d, K, T)
    best = float("inf")
    for _ in range(repeat):
        fusion = TSDFFusion.from_bounds(lo, hi, voxel, max_depth=max_depth, device=device)
        with timed(device) as t:
            for d, T in zip(metres, poses, strict=True):
                fusion.integrate(d, K, T)
        best = min(best, t.wall)
    return len(depths) / best, extract_mesh(fusion.to_grid()).vertices, warm_up.wall


def run_open3d(
    depths, K, poses, voxel: float, max_depth: float, repeat: int
) -> tuple[float, np.ndarray]:
    """Open3D's VoxelBlockGrid: frames/s (best of ``repeat``) and the mesh's vertices."""
    peer = Open3DFusion(depths, K, poses, depth_scale=1000.0, max_depth=max_depth)
    best = float("inf")
    for _ in range(repeat):
        vbg = peer.grid(voxel, block_count=100000)
        with timed() as t:
            peer.integrate([vbg])
        best = min(best, t.wall)
    mesh = vbg.extract_triangle_mesh(weight_threshold=0.5).to_legacy()
    return len(depths) / best, np.asarray(mesh.vertices)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    threads = set_threads(args.threads)  # before Open3D is loaded
    from atlas.evaluation.mesh_metrics import point_metrics, voxel_downsample

    print(
        f"fusion benchmark: voxel {args.voxel} m, depth cut {args.max_depth} m, "
        f"torch threads {threads}, device {args.device}, "
        f"best of {args.repeat}"
    )
    sequences = {"synthetic": load_synthetic(args.frames), "7scenes-dev": load_7scenes(args.frames)}
    print(
        f"{'sequence':<12} {'frames':>6} {'ours f/s':>9} {'warm-up s':>9} {'eager f/s':>9} "
        f"{'open3d f/s':>10} {'ratio':>6} {'chamfer cm':>10} {'F@2cm':>6}"
    )
    for name, seq in sequences.items():
        if seq is None:
            print(f"{name:<12} skipped: {SEVEN_SCENES} not found")
            continue
        depths, K, poses = seq
        setting = (args.voxel, args.max_depth, args.repeat)
        ours_fps, ours_pts, warm_s = run_ours(depths, K, poses, *setting, args.device)
        eager_fps, _, _ = run_ours(depths, K, poses, *setting, args.device, compile_mode="0")
        o3d_fps, o3d_pts = run_open3d(depths, K, poses, *setting)
        m = point_metrics(
            voxel_downsample(ours_pts, 0.01), voxel_downsample(o3d_pts, 0.01), threshold=0.02
        )
        print(
            f"{name:<12} {len(depths):>6} {ours_fps:>9.1f} {warm_s:>9.1f} {eager_fps:>9.1f} "
            f"{o3d_fps:>10.1f} "
            f"{ours_fps / o3d_fps:>6.2f} {100 * m['chamfer']:>10.2f} {m['fscore']:>6.3f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
