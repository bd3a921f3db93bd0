"""Evaluation benchmark: ``evaluate.py`` on one mesh pair against the original ATLAS
``eval_mesh`` script on the same pair, both as fresh processes, in one run.

- **evaluate.py** ``pred_mesh=... gt_mesh=... protocol=atlas``: with its default plots,
  and with ``plots.enabled=false`` (the metrics, the curve and the reports only);
- **the original**: ``python bench/eval_bench.py --original PRED GT`` runs
  :func:`eval_mesh`, a faithful copy of ATLAS's (magicleap/Atlas, atlas/evaluation.py):
  Open3D reads both vertex sets, ``voxel_down_sample(0.02)`` on each, then
  ``nn_correspondance`` both ways, one Open3D ``KDTreeFlann`` query per point in a
  Python loop. Its module also imports torch, which this copy does not (that would add
  over a second to the original's time).

Each is timed end to end (interpreter start, imports, reading, metrics, writing), the
best of ``--repeat`` runs, and the metrics must agree to 1e-6 (``acc`` / ``comp`` are
the original's ``dist2`` / ``dist1``; its ``prec`` and ``recal`` are swapped). Then the
metric computation alone, in this process: our vectorised KD-tree search against the
original's per-point loop.

The pair: fused from the real 7-Scenes frames in ../shared/data/7scenes-dev at 1.25 cm
(TSDF fusion, depth cut 3 m; "ground truth" from every frame, "prediction" from every
other frame with the depth scaled by 1.01) when they are there; otherwise a synthetic
room's full surface (``atlas.synthetic.generate``, seed 0, 3 cm edges) as ground truth and
the same surface with 1 cm of noise and a 1.5 cm shift as prediction. Cached under
data/bench/.

    python bench/eval_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python bench/eval_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import BENCH_DATA as CACHE
from bench.harness import ROOT, SEVEN_SCENES, ChildRun, best_of, emit_result, run_python

VOXEL = 0.0125
MAX_DEPTH = 3.0
TOLERANCE = 1e-6


# ----------------------------------------------------------------- the original


def nn_correspondance(verts1: np.ndarray, verts2: np.ndarray) -> tuple[list, list]:
    """ATLAS: for each vertex in verts2 (N, 3) the nearest vertex in verts1 (M, 3): its
    index and distance (metres), one Open3D KD-tree query per vertex."""
    import open3d as o3d

    indices, distances = [], []
    if len(verts1) == 0 or len(verts2) == 0:
        return indices, distances
    pcd = o3d.geometry.PointCloud()
    pcd.points = o3d.utility.Vector3dVector(verts1)
    kdtree = o3d.geometry.KDTreeFlann(pcd)
    for vert in verts2:
        _, inds, dist = kdtree.search_knn_vector_3d(vert, 1)
        indices.append(inds[0])
        distances.append(np.sqrt(dist[0]))
    return indices, distances


def eval_mesh(file_pred, file_trgt, threshold=0.05, down_sample=0.02) -> dict[str, float]:
    """ATLAS's ``eval_mesh``, as published: ``dist1`` is per ground-truth point (its
    distance to the prediction), ``dist2`` per predicted point, and its ``prec`` /
    ``recal`` are swapped (its ``prec`` is mean(dist1 < t), the recall)."""
    import open3d as o3d

    pcd_pred = o3d.io.read_point_cloud(str(file_pred))
    pcd_trgt = o3d.io.read_point_cloud(str(file_trgt))
    if down_sample:
        pcd_pred = pcd_pred.voxel_down_sample(down_sample)
        pcd_trgt = pcd_trgt.voxel_down_sample(down_sample)
    verts_pred = np.asarray(pcd_pred.points)
    verts_trgt = np.asarray(pcd_trgt.points)
    _, dist1 = nn_correspondance(verts_pred, verts_trgt)
    _, dist2 = nn_correspondance(verts_trgt, verts_pred)
    dist1, dist2 = np.array(dist1), np.array(dist2)
    precision = np.mean((dist1 < threshold).astype("float"))
    recal = np.mean((dist2 < threshold).astype("float"))
    fscore = 2 * precision * recal / (precision + recal)
    metrics = {"dist1": np.mean(dist1), "dist2": np.mean(dist2), "prec": precision,
               "recal": recal, "fscore": fscore}  # fmt: skip
    return {k: float(v) for k, v in metrics.items()}


def as_ours(original: dict[str, float]) -> dict[str, float]:
    """The original's metrics under our names and definitions (swap undone)."""
    return {
        "acc": original["dist2"],
        "comp": original["dist1"],
        "prec": original["recal"],
        "recal": original["prec"],
        "fscore": original["fscore"],
    }


# ----------------------------------------------------------------- the mesh pair


def fuse_7scenes(step: int, depth_scale: float):
    """Mesh of every ``step``-th 7-Scenes frame fused at ``VOXEL``, depth times ``depth_scale``."""
    from atlas.geometry import TSDFFusion, extract_mesh, frustum_bounds
    from atlas.readers.image_io import read_depth, read_matrix

    K = read_matrix(SEVEN_SCENES / "camera-intrinsics.txt", (3, 3))
    stems = sorted(p.name[: -len(".depth.png")] for p in SEVEN_SCENES.glob("*.depth.png"))[::step]
    poses = np.stack([read_matrix(SEVEN_SCENES / f"{s}.pose.txt", (4, 4)) for s in stems])
    lo, hi = frustum_bounds(K, poses, (640, 480), MAX_DEPTH)
    fusion = TSDFFusion.from_bounds(lo, hi, VOXEL, max_depth=MAX_DEPTH)
    for s, pose in zip(stems, poses, strict=True):
        depth = read_depth(SEVEN_SCENES / f"{s}.depth.png") * np.float32(depth_scale)
        fusion.integrate(depth, K, pose, name=s)
    return extract_mesh(fusion.to_grid())


def synthetic_pair():
    """(prediction, ground truth): a synthetic room's surface, and it with 1 cm of
    Gaussian noise and a (1.3, -0.7, 0.4) cm shift."""
    from atlas.geometry import Mesh
    from atlas.synthetic.generate import SceneConfig, make_scene

    room, _ = make_scene(SceneConfig(seed=0, n_frames=10))
    vertices, faces = room.geometry.vertices, room.geometry.faces
    rng = np.random.default_rng(0)
    noisy = vertices + rng.normal(0, 0.01, vertices.shape) + [0.013, -0.007, 0.004]
    return Mesh(noisy, faces), Mesh(vertices, faces)


def mesh_pair() -> tuple[Path, Path, str]:
    """(prediction, ground truth) PLY paths, made once and cached, and their origin."""
    from atlas.geometry import write_ply

    if SEVEN_SCENES.is_dir():
        label = f"7-Scenes dev frames fused at {VOXEL} m"
        paths = CACHE / f"eval_7scenes_{VOXEL}_pred.ply", CACHE / f"eval_7scenes_{VOXEL}_gt.ply"
        make = lambda: (fuse_7scenes(2, 1.01), fuse_7scenes(1, 1.0))  # noqa: E731
    else:
        label = f"synthetic room (no {SEVEN_SCENES})"
        paths = CACHE / "eval_synthetic_pred.ply", CACHE / "eval_synthetic_gt.ply"
        make = synthetic_pair
    if not all(p.is_file() for p in paths):
        print(f"making the mesh pair ({label}; once, cached in data/bench/) ...", flush=True)
        for mesh, path in zip(make(), paths, strict=True):
            write_ply(mesh, path)
    return paths[0], paths[1], label


# ----------------------------------------------------------------- timing


def timed_process(args: list[str], repeat: int) -> tuple[float, ChildRun]:
    """Best wall time (seconds) of ``repeat`` runs of ``python args...`` in the project
    root (``ATLAS_COMPILE=0``), and the last run; a failing run stops the benchmark."""

    def once() -> ChildRun:
        run = run_python(args, env={"ATLAS_COMPILE": "0"})
        if run.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{run.stderr[-3000:]}")
        return run

    times, run = best_of(once, repeat)
    return times.wall, run


def check_agree(label: str, ours: dict, original: dict[str, float]) -> float:
    """The largest difference between our metrics and the original's (swap undone);
    ``AssertionError`` above ``TOLERANCE``."""
    diffs = {k: abs(ours[k] - v) for k, v in as_ours(original).items()}
    worst = max(diffs.values())
    assert worst <= TOLERANCE, (label, diffs)
    return worst


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each; the best is kept")
    p.add_argument(
        "--original",
        nargs=2,
        metavar=("PRED", "GT"),
        help="only run the original eval_mesh on PRED, GT and print its metrics (a RESULT line)",
    )
    args = p.parse_args(argv)
    if args.original:
        emit_result(eval_mesh(*args.original))
        return

    pred, gt, label = mesh_pair()
    me = Path(__file__).resolve().relative_to(ROOT)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        base = ["evaluate.py", f"pred_mesh={pred}", f"gt_mesh={gt}", "protocol=atlas"]
        base.append(f"hydra.run.dir={tmp}")
        variants = {
            "evaluate.py (default, with plots)": [],
            "evaluate.py plots.enabled=false": ["plots.enabled=false"],
        }
        for name, extra in variants.items():
            seconds, run = timed_process(base + extra, args.repeat)
            # evaluate.py prints its report as JSON on its last line
            runs.append((name, seconds, json.loads(run.stdout.strip().splitlines()[-1])["metrics"]))
    t_orig, run = timed_process([str(me), "--original", str(pred), str(gt)], args.repeat)
    original = run.result
    worst = max(check_agree(name, metrics, original) for name, _, metrics in runs)

    n_pred, n_gt = int(runs[0][2]["n_pred"]), int(runs[0][2]["n_gt"])
    print(
        f"evaluation benchmark, atlas protocol (2 cm downsampling, t = 5 cm), {label}: "
        f"{n_pred} vs {n_gt} points after downsampling; {os.cpu_count()} CPU cores"
    )
    print(f"one mesh pair, fresh process each, best of {args.repeat}:")
    print(f"  {'command':<52} {'seconds':>8} {'original / ours':>16}")
    print(f"  {'original ATLAS eval_mesh (Open3D, per-point loop)':<52} {t_orig:>8.2f}")
    for name, seconds, _ in runs:
        print(f"  {name:<52} {seconds:>8.2f} {t_orig / seconds:>15.2f}x")

    from atlas.evaluation.mesh_metrics import mesh_metrics
    from atlas.geometry import read_ply

    t_ours, ours = best_of(lambda: mesh_metrics(read_ply(pred), read_ply(gt)), args.repeat)
    t_loop, theirs = best_of(lambda: eval_mesh(pred, gt), 1)
    check_agree("in process", ours, theirs)
    print("metric computation alone (reading and downsampling included), in this process:")
    print(f"  {'original per-point Open3D loop':<52} {t_loop.wall:>8.2f}")
    print(
        f"  {'ours, vectorised cKDTree':<52} {t_ours.wall:>8.2f} "
        f"{t_loop.wall / t_ours.wall:>15.2f}x"
    )
    print(
        f"metrics agree (largest difference {worst:.1e}): "
        + ", ".join(f"{k} {ours[k]:.6f}" for k in ("acc", "comp", "prec", "recal", "fscore"))
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
