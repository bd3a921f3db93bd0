"""Stereo benchmark: a 300-frame synthetic room (and the 7-Scenes dev frames when
present) reconstructed from RGB only: seconds per keyframe, whole time from images to
mesh, peak memory, and F@5cm against the ground truth; then the keyframes' filtered
depth maps against the measured (or rendered) depth seen from the colour camera: the
share of pixels kept, AbsRel and delta < 1.25 on them.

    python bench/stereo_bench.py
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from atlas.data.frames import Frame, SceneReader
from atlas.data.scannet import ScanNetFolder
from atlas.data.seven_scenes import SevenScenesFolder
from atlas.data.synthetic import SceneConfig, write_scene
from atlas.evaluation.depth_metrics import depth_metrics, mean_depth_metrics
from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import extract_mesh, fuse_depth_frames, read_ply
from atlas.geometry.camera import scale_intrinsics
from atlas.reconstruction import reconstruct_stereo
from atlas.stereo.consistency import backproject
from atlas.stereo.pipeline import StereoConfig, StereoDepths

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


def depth_in_colour_view(frame: Frame, K: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w) metres: the frame's depth map seen from its colour camera at ``size``
    (w, h) with intrinsics ``K`` (nearest surface per pixel, 0 where none). The depth
    camera's pixels are back-projected with its own intrinsics (7-Scenes: 585 against
    the colour camera's 525) and projected into the colour camera; the few centimetres
    between the two Kinect cameras are ignored, as the poses do."""
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


def keyframe_depth_metrics(reader: SceneReader, depths: StereoDepths, cfg: StereoConfig) -> dict:
    """Mean depth metrics of the filtered keyframe depth maps against the frames' depth."""
    w, h = cfg.image_size
    K = scale_intrinsics(reader.K_color, w / reader.color_size[0], h / reader.color_size[1])
    per_view = [
        depth_metrics(depths.depths[i].cpu().numpy(), depth_in_colour_view(frame, K, (w, h)))
        for i, frame in enumerate(reader.iter_frames(depths.keyframes))
    ]
    return mean_depth_metrics(per_view)


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
    cfg = StereoConfig()
    keyframe_depths = []
    for reader in readers:
        t = time.perf_counter()
        rec = reconstruct_stereo(reader, cfg)
        total = time.perf_counter() - t
        keyframe_depths.append(rec.depths)
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
    print(f"\nkeyframe depth against the measured depth, {'x'.join(map(str, cfg.image_size))}")
    print(f"{'scene':<14} {'kept':>6} {'AbsRel':>7} {'d<1.25':>7}")
    for reader, depths in zip(readers, keyframe_depths, strict=True):
        m = keyframe_depth_metrics(reader, depths, cfg)
        print(f"{reader.name:<14} {m['complete']:>6.2f} {m['AbsRel']:>7.3f} {m['r1']:>7.3f}")


if __name__ == "__main__":
    main()
