"""Preparation benchmark: a 1,000-frame 640x480 scene at 4, 8 and 16 cm.

Prints the wall time and peak memory of preparing the scene (a child process, so its
peak is its own), and the fusion part alone (depth preloaded, three resolutions, the
frustum-mode fusion preparation uses) against Open3D's VoxelBlockGrid at the same three
resolutions, measured in the same run. The scene is the 500 real 7-Scenes dev frames
read twice over (frames 500-999 repeat 0-499); without them, a synthetic room.

    python bench/prepare_bench.py [--frames 1000]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SEVEN_SCENES = ROOT.parent / "shared" / "data" / "7scenes-dev"


def make_reader(n_frames: int):
    from atlas.readers.frames import SceneReader
    from atlas.readers.scannet import ScanNetFolder
    from atlas.readers.seven_scenes import SevenScenesFolder
    from atlas.synthetic.generate import SceneConfig, write_scene

    if SEVEN_SCENES.is_dir():
        base: SceneReader = SevenScenesFolder(SEVEN_SCENES)
    else:
        scene = ROOT / "data" / "bench" / "scans" / f"scene1000_{n_frames:02d}"[:12]
        if not scene.exists():
            write_scene(scene, SceneConfig(seed=1000, n_frames=n_frames), progress=True)
        base = ScanNetFolder(scene)

    class Looped(SceneReader):
        """``base``'s frames repeated until there are ``n_frames``."""

        def __init__(self) -> None:
            self.name = f"{base.name}-x{n_frames}"
            self.frame_ids = list(range(n_frames))
            self.K_color, self.K_depth = base.K_color, base.K_depth
            self.color_size, self.depth_size = base.color_size, base.depth_size
            self._poses = base.poses[np.arange(n_frames) % len(base)]

        @property
        def poses(self) -> np.ndarray:
            return self._poses

        def read_frame(self, index: int):
            return base.read_frame(index % len(base))

        def frame_files(self, index: int):
            return base.frame_files(index % len(base))

    return Looped()


def _prepare_child(n_frames: int, out: str, queue) -> None:
    from atlas.preparation.prepare import PrepareSettings, prepare_scene

    reader = make_reader(n_frames)
    t = time.perf_counter()
    prepare_scene(reader, out, PrepareSettings(align="auto"), "bench", "auto")
    queue.put(time.perf_counter() - t)


def fusion_part(reader, n_frames: int) -> tuple[float, float]:
    """Seconds for our three-resolution fusion and Open3D's, depth preloaded."""
    import open3d as o3d
    import open3d.core as o3c
    import torch

    from atlas.geometry import frustum_bounds
    from atlas.preparation.prepare import PrepareSettings, _multi_scale_fusions

    settings = PrepareSettings()
    depths = [reader.read_frame(i).depth for i in range(min(n_frames, len(reader)))]
    depths = [depths[i % len(depths)] for i in range(n_frames)]
    poses = reader.poses
    K = reader.K_depth
    lo, hi = frustum_bounds(K, poses, reader.depth_size, settings.max_depth)
    tensors = [torch.from_numpy(d) for d in depths]
    warm = _multi_scale_fusions(lo, hi, settings)
    for f in warm:  # torch.compile warm-up, untimed
        for d, T in zip(tensors[:3], poses[:3], strict=True):
            f.integrate(d, K, T)
    fusions = _multi_scale_fusions(lo, hi, settings)
    t = time.perf_counter()
    for d, T in zip(tensors, poses, strict=True):
        for f in fusions:
            f.integrate(d, K, T)
    ours = time.perf_counter() - t
    intr = o3c.Tensor(K, o3c.float64)
    images = [o3d.t.geometry.Image(o3c.Tensor(d)) for d in depths]
    extrs = [o3c.Tensor(np.linalg.inv(T), o3c.float64) for T in poses]
    grids = [
        o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight"),
            attr_dtypes=(o3c.float32, o3c.float32),
            attr_channels=((1), (1)),
            voxel_size=vs,
            block_resolution=8,
            block_count=60000,
            device=o3c.Device("CPU:0"),
        )
        for vs in settings.voxel_sizes
    ]
    t = time.perf_counter()
    for img, extr in zip(images, extrs, strict=True):
        for g in grids:
            coords = g.compute_unique_block_coordinates(
                img, intr, extr, 1.0, settings.max_depth, 3.0
            )
            g.integrate(coords, img, intr, extr, 1.0, settings.max_depth, 3.0)
    return ours, time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=1000)
    args = p.parse_args()
    import torch

    reader = make_reader(args.frames)
    print(
        f"preparation benchmark: {reader.name}, {args.frames} frames "
        f"{reader.depth_size[0]}x{reader.depth_size[1]}, voxel sizes 4/8/16 cm, "
        f"torch threads {torch.get_num_threads()}"
    )
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        child = ctx.Process(target=_prepare_child, args=(args.frames, out, queue))
        child.start()
        child.join()
        wall = time.perf_counter() - t
        if child.exitcode != 0:
            raise SystemExit(f"preparation failed (exit code {child.exitcode})")
        inner = queue.get()
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    print(
        f"prepare_scene: {inner:.1f} s (process wall {wall:.1f} s incl. start-up and "
        f"compile), peak memory {peak_gb:.2f} GB  [target < 60 s, < 4 GB]"
    )
    ours, o3d_time = fusion_part(reader, args.frames)
    print(
        f"fusion part, 3 resolutions, depth preloaded: ours {ours:.2f} s "
        f"(frustum mode: free space observed too), Open3D VoxelBlockGrid {o3d_time:.2f} s "
        f"(surface blocks only), ratio {o3d_time / ours:.2f}"
    )


if __name__ == "__main__":
    main()
