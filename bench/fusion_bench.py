"""Fusion benchmark: our TSDFFusion against Open3D's VoxelBlockGrid on the same frames.

Prints frames/s of both (depth preloaded, so decoding is not timed), their ratio, and
the chamfer distance between the two meshes, for a synthetic scene and for the real
7-Scenes frames in ../shared/data/7scenes-dev (skipped with a note when absent).

    python bench/fusion_bench.py [--threads N] [--frames N] [--voxel 0.04]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--frames", type=int, default=500, help="max frames per sequence")
    p.add_argument("--voxel", type=float, default=0.04, help="voxel size, metres")
    p.add_argument("--max-depth", type=float, default=3.0, help="depth cut, metres")
    p.add_argument("--device", default="cpu", help="torch device for ours (cpu, cuda)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs; the best is kept")
    return p.parse_args()


ARGS = _parse()
if ARGS.threads:  # before numpy/torch/open3d start their thread pools
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TBB_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402
import open3d as o3d  # noqa: E402
import open3d.core as o3c  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from atlas.evaluation.mesh_metrics import point_metrics, voxel_downsample  # noqa: E402
from atlas.geometry import TSDFFusion, extract_mesh, frustum_bounds  # noqa: E402
from atlas.synthetic.generate import SceneConfig, write_scene  # noqa: E402

SEVEN_SCENES = ROOT.parent / "shared" / "data" / "7scenes-dev"


def load_synthetic(n: int) -> tuple[list[np.ndarray], np.ndarray, list[np.ndarray]]:
    scene = ROOT / "data" / "bench" / "scans" / "scene0000_00"
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
    K = np.loadtxt(SEVEN_SCENES / "camera-intrinsics.txt")
    stems = sorted(p.name[: -len(".depth.png")] for p in SEVEN_SCENES.glob("*.depth.png"))[:n]
    depths = [np.asarray(Image.open(SEVEN_SCENES / f"{s}.depth.png"), np.uint16) for s in stems]
    depths = [np.where(d == 65535, 0, d).astype(np.uint16) for d in depths]
    poses = [np.loadtxt(SEVEN_SCENES / f"{s}.pose.txt") for s in stems]
    return depths, K, poses


def run_ours(depths, K, poses, device: str) -> tuple[float, np.ndarray]:
    h, w = depths[0].shape
    lo, hi = frustum_bounds(K, np.stack(poses), (w, h), ARGS.max_depth)
    metres = [torch.from_numpy(d.astype(np.float32) / 1000.0).to(device) for d in depths]
    warm = TSDFFusion.from_bounds(lo, hi, ARGS.voxel, max_depth=ARGS.max_depth, device=device)
    for d, T in zip(metres[:5], poses[:5], strict=True):  # torch.compile warm-up, untimed
        warm.integrate(d, K, T)
    best = float("inf")
    for _ in range(ARGS.repeat):
        fusion = TSDFFusion.from_bounds(lo, hi, ARGS.voxel, max_depth=ARGS.max_depth, device=device)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t = time.perf_counter()
        for d, T in zip(metres, poses, strict=True):
            fusion.integrate(d, K, T)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return len(depths) / best, extract_mesh(fusion.to_grid()).vertices


def run_open3d(depths, K, poses) -> tuple[float, np.ndarray]:
    intr = o3c.Tensor(K, o3c.float64)
    images = [o3d.t.geometry.Image(o3c.Tensor(d)) for d in depths]
    extrs = [o3c.Tensor(np.linalg.inv(T), o3c.float64) for T in poses]
    best = float("inf")
    for _ in range(ARGS.repeat):
        vbg = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight"),
            attr_dtypes=(o3c.float32, o3c.float32),
            attr_channels=((1), (1)),
            voxel_size=ARGS.voxel,
            block_resolution=8,
            block_count=100000,
            device=o3c.Device("CPU:0"),
        )
        t = time.perf_counter()
        for img, extr in zip(images, extrs, strict=True):
            coords = vbg.compute_unique_block_coordinates(
                img,
                intr,
                extr,
                depth_scale=1000.0,
                depth_max=ARGS.max_depth,
                trunc_voxel_multiplier=3.0,
            )
            vbg.integrate(
                coords,
                img,
                intr,
                extr,
                depth_scale=1000.0,
                depth_max=ARGS.max_depth,
                trunc_voxel_multiplier=3.0,
            )
        best = min(best, time.perf_counter() - t)
    mesh = vbg.extract_triangle_mesh(weight_threshold=0.5).to_legacy()
    return len(depths) / best, np.asarray(mesh.vertices)


def main() -> None:
    torch.set_num_threads(ARGS.threads or os.cpu_count() or 1)
    print(
        f"fusion benchmark: voxel {ARGS.voxel} m, depth cut {ARGS.max_depth} m, "
        f"torch threads {torch.get_num_threads()}, device {ARGS.device}, "
        f"best of {ARGS.repeat}"
    )
    sequences = {"synthetic": load_synthetic(ARGS.frames), "7scenes-dev": load_7scenes(ARGS.frames)}
    print(
        f"{'sequence':<12} {'frames':>6} {'ours f/s':>9} {'open3d f/s':>10} {'ratio':>6} "
        f"{'chamfer cm':>10} {'F@2cm':>6}"
    )
    for name, seq in sequences.items():
        if seq is None:
            print(f"{name:<12} skipped: {SEVEN_SCENES} not found")
            continue
        depths, K, poses = seq
        ours_fps, ours_pts = run_ours(depths, K, poses, ARGS.device)
        o3d_fps, o3d_pts = run_open3d(depths, K, poses)
        m = point_metrics(
            voxel_downsample(ours_pts, 0.01), voxel_downsample(o3d_pts, 0.01), threshold=0.02
        )
        print(
            f"{name:<12} {len(depths):>6} {ours_fps:>9.1f} {o3d_fps:>10.1f} "
            f"{ours_fps / o3d_fps:>6.2f} {100 * m['chamfer']:>10.2f} {m['fscore']:>6.3f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
