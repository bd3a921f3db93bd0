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
import sys
import tempfile
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python bench/prepare_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BENCH_DATA, SEVEN_SCENES, Open3DFusion, call_fresh, rss_gb, timed


def make_reader(n_frames: int):
    """The benchmark scene: the 7-Scenes dev frames (a synthetic room without them),
    looped to ``n_frames`` frames."""
    from atlas.readers.frames import SceneReader
    from atlas.readers.scannet import ScanNetFolder
    from atlas.readers.seven_scenes import SevenScenesFolder
    from atlas.synthetic.generate import SceneConfig, write_scene

    if SEVEN_SCENES.is_dir():
        base: SceneReader = SevenScenesFolder(SEVEN_SCENES)
    else:
        scene = BENCH_DATA / "scans" / f"scene1000_{n_frames:02d}"[:12]
        if not scene.exists():
            write_scene(scene, SceneConfig(seed=1000, n_frames=n_frames), progress=True)
        base = ScanNetFolder(scene)
    return looped(base, n_frames)


def looped(base, n_frames: int):
    """``base``'s frames repeated until there are ``n_frames`` (frame i is base's
    i mod len(base))."""
    from atlas.readers.frames import SceneReader

    class Looped(SceneReader):
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


def prepare_child(n_frames: int, out: str) -> dict[str, float]:
    """Prepare the scene into ``out`` (meant for a fresh process): the seconds
    ``prepare_scene`` took and the process's peak resident memory, GB."""
    from atlas.preparation.prepare import PrepareSettings, prepare_scene

    reader = make_reader(n_frames)
    with timed() as t:
        prepare_scene(reader, out, PrepareSettings(align="auto"), "bench", "auto")
    return {"seconds": t.wall, "peak_gb": rss_gb()}


def fusion_part(reader, n_frames: int) -> tuple[float, float]:
    """Seconds for our three-resolution fusion and Open3D's, depth preloaded."""
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
    with timed() as ours:
        for d, T in zip(tensors, poses, strict=True):
            for f in fusions:
                f.integrate(d, K, T)
    peer = Open3DFusion(depths, K, poses, depth_scale=1.0, max_depth=settings.max_depth)
    grids = [peer.grid(vs, block_count=60000) for vs in settings.voxel_sizes]
    with timed() as theirs:
        peer.integrate(grids)
    return ours.wall, theirs.wall


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=1000)
    args = p.parse_args(argv)
    import torch

    reader = make_reader(args.frames)
    print(
        f"preparation benchmark: {reader.name}, {args.frames} frames "
        f"{reader.depth_size[0]}x{reader.depth_size[1]}, voxel sizes 4/8/16 cm, "
        f"torch threads {torch.get_num_threads()}"
    )
    with tempfile.TemporaryDirectory() as out, timed() as process:
        try:
            child = call_fresh(prepare_child, args.frames, out)
        except Exception as err:  # raised in the child, or the child died
            raise SystemExit(f"preparation failed ({type(err).__name__}: {err})") from err
    print(
        f"prepare_scene: {child['seconds']:.1f} s (process wall {process.wall:.1f} s incl. "
        f"start-up and compile), peak memory {child['peak_gb']:.2f} GB  [target < 60 s, < 4 GB]"
    )
    ours, o3d_time = fusion_part(reader, args.frames)
    print(
        f"fusion part, 3 resolutions, depth preloaded: ours {ours:.2f} s "
        f"(frustum mode: free space observed too), Open3D VoxelBlockGrid {o3d_time:.2f} s "
        f"(surface blocks only), ratio {o3d_time / ours:.2f}"
    )


if __name__ == "__main__":
    main()
