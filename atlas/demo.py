"""The quickstart job (``make demo``): a synthetic scene, reconstructed and evaluated.

Generates the demo room if absent (seed 0, never used for training), reconstructs it
from its posed RGB images with the bundled model, and scores the mesh against the
room's ground truth (ATLAS protocol, 5 cm), beside two references: the stereo prior
the model was given (RGB only, no learning) and TSDF fusion of the depth maps (RGB-D,
what a perfect 4 cm depth sensor gives). All three are drawn side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import extract_mesh, read_ply
from atlas.geometry.render import save_preview
from atlas.io_utils import atomic_path
from atlas.pipeline.methods import FusionConfig, MethodSettings
from atlas.pipeline.outputs import save_reconstruction
from atlas.pipeline.scene import reconstruct_scene
from atlas.readers.scannet import ScanNetFolder
from atlas.synthetic.generate import SceneConfig, generate_dataset


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", default="data/demo", help="where the demo scene is written")
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument(
        "--voxel", type=float, default=0.04, help="voxel size of the depth-fusion reference, metres"
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="model file or training checkpoint (default: the bundled model)",
    )
    args = parser.parse_args(argv)

    root = Path(args.root)
    t0 = time.perf_counter()
    scene_dir = generate_dataset(root, 1, SceneConfig(seed=0, n_frames=args.frames))[0]
    t1 = time.perf_counter()
    reader = ScanNetFolder(scene_dir)
    settings = MethodSettings(args.checkpoint, fusion=FusionConfig(voxel_size=args.voxel))
    model = reconstruct_scene(reader, "model", settings)
    t2 = time.perf_counter()
    fusion = reconstruct_scene(reader, "fusion", settings)
    fused = fusion.mesh
    t3 = time.perf_counter()
    out = root / "output" / scene_dir.name
    save_reconstruction(model, out / "model")
    save_reconstruction(fusion, out / "depth_fusion")
    prior = None
    if model.prior is not None:  # meshed as the model's grid is
        prior = extract_mesh(model.prior, upsample=model.summary["mesh_upsample"])
    gt = read_ply(scene_dir / f"{scene_dir.name}_vh_clean_2.ply")
    metrics = {"model": mesh_metrics(model.mesh, gt)}
    panels = [(f"model (RGB): F {metrics['model']['fscore']:.2f}", model.mesh)]
    if prior is not None:
        metrics["stereo_prior"] = mesh_metrics(prior, gt)
        panels.append((f"its stereo prior: F {metrics['stereo_prior']['fscore']:.2f}", prior))
    metrics["depth_fusion"] = mesh_metrics(fused, gt)
    panels += [
        (f"depth fusion (RGB-D): F {metrics['depth_fusion']['fscore']:.2f}", fused),
        ("ground truth", gt),
    ]
    save_preview(panels, out / "preview.png", width=480, height=360)
    summary = {
        "scene": scene_dir.name,
        "frames": int(reader.valid.sum()),
        "model": model.summary,
        "seconds": {
            "generate": round(t1 - t0, 2),
            "model": round(t2 - t1, 2),
            "depth_fusion": round(t3 - t2, 2),
        },
        "metrics": metrics,
    }
    with atomic_path(out / "metrics.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    print(f"scene:    {scene_dir}")
    print(
        f"mesh:     {out / 'model' / 'mesh.ply'} ({len(model.mesh.vertices)} vertices, "
        f"{model.grid.voxel_size * 100:.0f} cm voxels, {t2 - t1:.0f} s)"
    )
    print(f"tsdf:     {out / 'model' / 'tsdf.npz'}")
    print(f"picture:  {out / 'preview.png'}")
    print(f"metrics:  {out / 'metrics.json'}")
    for name, m in metrics.items():
        print(
            f"{name:<13} F-score@5cm {m['fscore']:.3f}  precision {m['prec']:.3f}  "
            f"recall {m['recal']:.3f}  accuracy {m['acc']:.3f} m  completeness {m['comp']:.3f} m"
        )
    return summary


if __name__ == "__main__":
    main()
