"""Real data end to end: the 500 real 7-Scenes frames through the whole product, the
README's methods table regenerated from its report (docs/tables.py) by one command.

    .venv/bin/python bench/real_data.py [--checkpoint PATH] [--out data/bench/real_data]

1. **Ground truth** (``prepare.py data=7scenes``, the same library call): the Kinect
   depth of every frame fused at 4, 8 and 16 cm, gravity-aligned (floor at z = 0), into
   ``data/prepared/7scenes/<scene>`` (``--prepared``); a scene prepared already is
   reused. Its 4 cm mesh is the ground truth and its aligned poses are the world frame
   of everything below.
2. **Reconstruction from RGB only**, on the prepared scene (``infer.py
   scene=data/prepared/7scenes/<scene>``: prepared scenes are aligned already, so the
   prediction is in the ground truth's frame): ``method=model`` (the bundled model or
   ``--checkpoint``, with the stereo prior it is given scored on its own too) and
   ``method=stereo`` (no model). Defaults of ``infer.py`` throughout (every frame for
   the model, 160x120 backbone and sweep images). Outputs go to ``<out>/<method>/``.
3. **Evaluation** (``atlas.evaluation``, as ``evaluate.py``) with the ``atlas``,
   ``trimmed`` and ``culled`` protocols at their defaults (threshold 5 cm). The cameras
   of ``trimmed`` and ``culled`` are the scan's depth cameras, every ``--eval-stride``-th
   frame (default 5, ``evaluate.py frame_stride=5``: on these frames stride 1 moved no
   RGB method's F-score by more than 0.01 and made ``trimmed``, one ray cast per camera
   and mesh, five times slower). The ``culled`` visibility mask is made from the
   measured RGB-D depth (0 = no measurement). The depth-fusion baseline of ``evaluate.py
   baseline.enabled=true`` (the measured depth of every frame fused at 4 cm, the upper
   bound of a 4 cm model) is scored the same way. The error-coloured meshes of every
   method and protocol and the visibility mask go to ``<out>/``.
4. **Outputs**: ``docs/real_data.md`` (the table), ``docs/real_data.json`` (all numbers)
   and ``docs/real_data_7scenes.png`` (predicted meshes beside the ground truth, and
   their error-coloured meshes under the ``atlas`` protocol). The table is printed at
   the end.

The frames are only read (never copied). Without them (``--seven-scenes``, default
``$SEVEN_SCENES_ROOT`` or ``../shared/data/7scenes-dev``) the script prints a note and
exits with status 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from atlas.config import resolve_device
from atlas.evaluation.config import BaselineConfig, PlotConfig
from atlas.evaluation.plots import distance_colors, save_distance_mesh
from atlas.evaluation.protocols import PROTOCOLS, CulledProtocol, MeshProtocol, Reference
from atlas.evaluation.report import json_safe
from atlas.evaluation.views import Views, fuse_depth_maps
from atlas.evaluation.visibility import VisibilityMask, mesh_visibility_mask
from atlas.geometry import Mesh, extract_mesh, read_ply
from atlas.geometry.render import preview_camera, render_mesh
from atlas.io_utils import atomic_path
from atlas.model.inference import ModelInferenceConfig
from atlas.pipeline.methods import MethodSettings
from atlas.pipeline.outputs import save_reconstruction
from atlas.pipeline.scene import reconstruct_scene
from atlas.preparation.prepare import PrepareSettings, prepare_scene
from atlas.readers.datasets import SevenScenesDataset
from atlas.readers.prepared import PreparedSceneReader, is_prepared, load_index
from atlas.stereo.pipeline import StereoConfig

if not __package__:  # run as a script (python bench/real_data.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import harness
from bench.harness import ROOT, SEVEN_SCENES, timed

DEFAULT_SEVEN_SCENES = Path(os.environ.get("SEVEN_SCENES_ROOT", str(SEVEN_SCENES)))
PROTOCOL_NAMES = ("atlas", "trimmed", "culled")
MODEL, PRIOR, STEREO, FUSION = "model", "model's stereo prior", "stereo", "depth fusion"
METRICS = (("acc", "acc"), ("comp", "comp"), ("prec", "prec"), ("recal", "recall"),
           ("fscore", "F"))  # fmt: skip


START = time.perf_counter()


def log(message: str) -> None:
    """Print a progress line with the seconds since the script started."""
    print(f"[{time.perf_counter() - START:6.1f} s] {message}", flush=True)


# --------------------------------------------------------------------------- 1. prepare


def prepare_ground_truth(raw: Path, prepared_root: Path) -> tuple[Path, bool]:
    """The prepared scene of the 7-Scenes frames in ``raw`` (``prepare.py data=7scenes
    data.raw.root=<raw> out_dir=<prepared_root>``): reused when already prepared, else
    made with the default settings (4/8/16 cm, 3 m depth cut, gravity-aligned). Returns
    the scene folder and whether it was prepared now."""
    dataset = SevenScenesDataset(str(raw))
    scenes = dataset.scenes()
    name, opener = scenes[0]
    if len(scenes) > 1:
        log(f"{raw} holds {len(scenes)} sequences; using the first, {name}")
    scene_dir = prepared_root / name
    if is_prepared(scene_dir):
        index = load_index(scene_dir)
        if float(index.voxel_sizes[0]) != 0.04:
            raise SystemExit(
                f"{scene_dir} was prepared at {index.voxel_sizes[0]} m, not 4 cm: "
                "remove it or name another folder with --prepared"
            )
        log(f"ground truth: reusing {scene_dir} ({index.mesh_source})")
        return scene_dir, False
    log(f"ground truth: preparing {raw} -> {scene_dir} (fusing the Kinect depth)")
    summary = prepare_scene(opener(), prepared_root, PrepareSettings(), dataset.kind, dataset.up)
    log(f"ground truth: prepared {summary['frames']} frames, alignment {summary['alignment']}")
    return scene_dir, True


# ------------------------------------------------------------------------- 2. the scan


class Scan:
    """The prepared scene as evaluation sees it: the ground-truth mesh; ``frames``, the
    valid frames, and ``indices`` / ``views``, every ``stride``-th of them as depth
    cameras (depth intrinsics and size, aligned poses) for the protocols."""

    def __init__(self, scene_dir: Path, stride: int) -> None:
        self.reader = PreparedSceneReader(scene_dir)
        self.gt = read_ply(self.reader.gt_mesh_path)
        self.frames = np.flatnonzero(self.reader.valid)
        self.indices = self.frames[::stride]
        self.views = self.cameras(self.indices)

    def cameras(self, indices: np.ndarray) -> Views:
        """The depth cameras of the frames ``indices``."""
        return Views(self.reader.K_depth, self.reader.poses[indices], *self.reader.depth_size)

    def depths(self, indices: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """(H, W) float32 metres per frame of ``indices`` (default: the evaluation
        cameras'), 0 = no measurement, read one at a time."""
        for frame in self.reader.iter_frames(self.indices if indices is None else indices):
            yield frame.depth

    def visibility(self, protocol: CulledProtocol) -> VisibilityMask:
        """The ``culled`` mask from the measured depth, over the ground truth's box."""
        return mesh_visibility_mask(
            self.gt, self.views, protocol.mask_voxel_size, protocol.mask_margin, self.depths()
        )


# ------------------------------------------------------------------- 3. reconstruction


def reconstruct(scan: Scan, checkpoint: str | None, out: Path, device: str) -> dict[str, dict]:
    """Every method's mesh (world metres, the ground truth's frame), frames used and
    seconds: the model (and its prior), stereo, and the fused measured depth."""
    reader = scan.reader
    methods: dict[str, dict] = {}

    log(f"model: reconstructing {len(reader)} frames from RGB ({checkpoint or 'bundled'})")
    settings = MethodSettings(checkpoint, ModelInferenceConfig(), StereoConfig())
    with timed() as t:
        rec = reconstruct_scene(reader, "model", settings, device=device)  # prepared: aligned
    seconds, cpu = t.wall, t.cpu
    save_reconstruction(rec, out / "model")
    s = rec.summary
    methods[MODEL] = {"mesh": rec.mesh, "frames": s["frames_used"], "seconds": seconds,
                      "cpu_seconds": cpu, "voxel_size": s["voxel_size"]}  # fmt: skip
    prior_s = s["seconds"]["stereo_prior"]
    log(f"model: {len(rec.mesh.vertices)} vertices in {seconds:.1f} s (prior {prior_s} s)")
    if rec.prior is not None:
        prior_mesh = extract_mesh(rec.prior, upsample=s["mesh_upsample"])  # as the model's
        methods[PRIOR] = {"mesh": prior_mesh, "frames": s["stereo"].get("keyframes"),
                          "seconds": prior_s, "voxel_size": rec.prior.voxel_size}  # fmt: skip

    log(f"stereo: plane-sweep stereo on {len(reader)} frames (no model)")
    with timed() as t:
        rec = reconstruct_scene(reader, "stereo", settings, device=device)
    seconds, cpu = t.wall, t.cpu
    save_reconstruction(rec, out / "stereo")
    s = rec.summary
    methods[STEREO] = {"mesh": rec.mesh, "frames": s["keyframes"], "seconds": seconds,
                       "cpu_seconds": cpu, "voxel_size": s["voxel_size"]}  # fmt: skip
    log(f"stereo: {len(rec.mesh.vertices)} vertices, {s['keyframes']} keyframes, {seconds:.1f} s")

    b = BaselineConfig()
    frames = scan.frames  # every frame, as the RGB methods and the ground truth use
    log(f"depth fusion: the measured depth of {len(frames)} frames at {b.voxel_size} m")
    with timed() as t:
        mesh = fuse_depth_maps(
            scan.depths(frames), scan.cameras(frames), b.voxel_size, b.trunc_voxels, b.max_depth
        )
    seconds, cpu = t.wall, t.cpu
    methods[FUSION] = {"mesh": mesh, "frames": len(frames), "seconds": seconds, "cpu_seconds": cpu,
                       "voxel_size": b.voxel_size}  # fmt: skip
    log(f"depth fusion: {len(mesh.vertices)} vertices in {seconds:.1f} s")
    return methods


# ----------------------------------------------------------------------- 4. evaluation


def evaluate(scan: Scan, methods: dict[str, dict], out: Path) -> dict[str, np.ndarray]:
    """Score every method with every protocol (results into ``methods[m]["metrics"]``);
    write the error-coloured meshes; return each method's per-vertex distance (metres)
    under the ``atlas`` protocol, for the picture."""
    color_max = PlotConfig().color_max
    distances: dict[str, np.ndarray] = {}
    for name in PROTOCOL_NAMES:
        protocol: MeshProtocol = PROTOCOLS[name]()
        t = time.perf_counter()
        if isinstance(protocol, CulledProtocol):
            mask = scan.visibility(protocol)
            mask.save(out / "visibility.npz")
            ref: Reference = protocol.reference(scan.gt, scan.views, mask=mask)
        else:
            ref = protocol.reference(scan.gt, scan.views)
        for method, m in methods.items():
            ev = protocol.evaluate(m["mesh"], ref, scan.views)
            m.setdefault("metrics", {})[name] = {k: float(v) for k, v in ev.metrics.items()}
            slug = method.replace("'", "").replace(" ", "_")
            save_distance_mesh(
                ev.mesh,
                ev.vertex_distance,
                color_max,
                out / name / f"{slug}_distance.ply",
                out / name / f"{slug}_distance.png",
                f"7-Scenes: {method}, {name} protocol",
            )
            if name == "atlas":
                distances[method] = ev.vertex_distance
        scores = ", ".join(f"{k} {m['metrics'][name]['fscore']:.3f}" for k, m in methods.items())
        log(f"{name} protocol ({time.perf_counter() - t:.1f} s): F@5cm {scores}")
    return distances


def check_alignment(methods: dict[str, dict]) -> list[str]:
    """Warnings when a prediction looks like it is in another frame than the ground
    truth: F near 0 under ``atlas`` while the fused depth (same frame by construction)
    scores high."""
    fusion_f = methods[FUSION]["metrics"]["atlas"]["fscore"]
    warnings = []
    if fusion_f < 0.8:
        warnings.append(f"the depth-fusion baseline scores only F {fusion_f:.3f}: check the data")
    for name in (MODEL, STEREO):
        if methods[name]["metrics"]["atlas"]["fscore"] < 0.02:
            warnings.append(f"{name} scores F < 0.02: is it in the ground truth's frame?")
    return warnings


# ------------------------------------------------------------------------ 5. outputs


def table(methods: dict[str, dict]) -> str:
    """Markdown table: one row per method; frames used, wall and CPU seconds; per
    protocol acc / comp (cm), precision, recall and F-score at 5 cm."""
    header = ["method", "frames", "seconds", "CPU s"]
    header += [f"{p} {label}" + (" (cm)" if k in ("acc", "comp") else "")
               for p in PROTOCOL_NAMES for k, label in METRICS]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for method, m in methods.items():
        name = f"{method} (upper bound)" if method == FUSION else method
        cpu = f"{m['cpu_seconds']:.1f}" if "cpu_seconds" in m else "-"
        cells = [name, str(m["frames"]), f"{m['seconds']:.1f}", cpu]
        for p in PROTOCOL_NAMES:
            r = m["metrics"][p]
            for k, _ in METRICS:
                v = r[k]
                if k in ("acc", "comp"):
                    cells.append(f"{100 * v:.1f}" if np.isfinite(v) else "inf")
                else:
                    cells.append(f"**{v:.3f}**" if k == "fscore" else f"{v:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_markdown(path: Path, scan: Scan, methods: dict[str, dict], facts: dict) -> str:
    """docs/real_data.md: how it was made, then the table; returns the table."""
    md_table = table(methods)
    v = {k: m["voxel_size"] for k, m in methods.items()}
    load = facts["load_average"]
    text = f"""# Real data: 7-Scenes "redkitchen", {len(scan.reader)} Kinect frames

Regenerated by `{facts["command"]}`: {facts["total_seconds"]:.0f} s on
{facts["machine"]}, {facts["device"]}, load average {load:.1f} when it started (a shared
machine: the seconds below are wall-clock and grow with the load); ground truth
{facts["ground_truth"]}.

- **Ground truth**: the Kinect depth of all frames fused at 4 cm (`prepare.py
  data=7scenes`: frustum-mode TSDF, 3 m depth cut, gravity-aligned with the floor at
  z = 0).
- **Reconstructions, from the colour images only**: `infer.py`'s defaults run on the
  prepared scene, so they are in the ground truth's world frame.
- **Scores**: F-score at 5 cm, with acc / comp in cm. The protocols are described in
  [evaluation.md](evaluation.md):
  - `atlas`: mesh vertices at 2 cm, all of both meshes;
  - `trimmed`: the prediction re-fused from its depth rendered at
    {len(scan.indices)} of the cameras, so what no camera saw is dropped;
  - `culled`: the ground truth limited to the space the RGB-D scan observed;
    predicted surface outside it is ignored for acc and precision.

Rows:

- **model**: the {facts["checkpoint"]} model ({v[MODEL]} m voxels, every frame).
- **model's stereo prior**: the input the model is given, alone, on the same grid.
- **stereo**: `method=stereo`, plane-sweep stereo with TSDF fusion and no model
  ({v[STEREO]} m).
- **depth fusion**: the measured depth fused at {v[FUSION]} m (`evaluate.py
  baseline.enabled=true`). It is nearly the ground truth itself: the upper bound of a
  4 cm model, and a check that the frames line up.

*frames* counts the frames used (keyframes for the stereo methods); *seconds* is the
wall-clock time from the frames to the mesh and *CPU s* the process's CPU time over it
(all threads; it depends less on the load).

{md_table}
![7-Scenes](real_data_7scenes.png)

Top: the meshes from RGB beside the ground truth. Bottom: each mesh coloured by its
distance to the ground truth (`atlas` protocol, 0 to {100 * PlotConfig().color_max:.0f} cm).
"""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return md_table


def write_json(path: Path, scan: Scan, methods: dict[str, dict], facts: dict) -> None:
    """docs/real_data.json: every metric of every method and protocol, and the setup."""
    index = load_index(scan.reader.dir)
    data = {
        **facts,
        "scene": scan.reader.name,
        "frames": len(scan.reader),
        "eval_cameras": len(scan.indices),
        "alignment": index.alignment,
        "protocols": {p: {"threshold": PROTOCOLS[p]().threshold} for p in PROTOCOL_NAMES},
        "methods": {
            k: {
                key: m.get(key)
                for key in ("frames", "seconds", "cpu_seconds", "voxel_size", "metrics")
            }
            for k, m in methods.items()
        },
    }
    harness.write_json(path, json_safe(data), indent=1)


def save_picture(
    path: Path,
    gt: Mesh,
    methods: dict[str, dict],
    distances: dict[str, np.ndarray],
    width: int = 640,
    height: int = 480,
) -> None:
    """Top row: the meshes of the model, stereo and the ground truth (vertex colours);
    bottom row: the model's, stereo's and depth fusion's meshes coloured by their
    distance to the ground truth (``atlas`` protocol), a colour bar under them. One
    camera for all, framing the ground truth."""
    color_max = PlotConfig().color_max
    K, pose = preview_camera(gt.vertices.min(0), gt.vertices.max(0), width, height)

    def f_of(name: str) -> str:
        return f"F@5cm {methods[name]['metrics']['atlas']['fscore']:.3f}"

    def colored(name: str) -> Mesh:
        mesh = methods[name]["mesh"]
        return Mesh(mesh.vertices, mesh.faces, distance_colors(distances[name], color_max))

    rows = [
        [(f"model, from RGB ({f_of(MODEL)})", methods[MODEL]["mesh"]),
         (f"stereo, from RGB ({f_of(STEREO)})", methods[STEREO]["mesh"]),
         ("ground truth: Kinect depth fused at 4 cm", gt)],
        [(f"model: error ({f_of(MODEL)})", colored(MODEL)),
         (f"stereo: error ({f_of(STEREO)})", colored(STEREO)),
         (f"depth fusion: error ({f_of(FUSION)})", colored(FUSION))],
    ]  # fmt: skip
    renders = [[render_mesh(mesh, K, pose, width, height) for _, mesh in row] for row in rows]
    # One crop for every panel (they share the camera): the drawn pixels plus a margin,
    # and room for the titles.
    drawn = np.argwhere((np.stack([i for r in renders for i in r]) != 255).any(axis=(0, 3)))
    (y0, x0), (y1, x1) = drawn.min(0), drawn.max(0) + 1
    y0, x0 = max(y0 - 30, 0), max(x0 - 10, 0)
    y1, x1 = min(y1 + 10, height), min(x1 + 10, width)
    tiles = []
    for row, images in zip(rows, renders, strict=True):
        cropped = []
        for (title, _), image in zip(row, images, strict=True):
            img = Image.fromarray(np.ascontiguousarray(image[y0:y1, x0:x1]))
            ImageDraw.Draw(img).text((8, 8), title, fill=(0, 0, 0))
            cropped.append(np.asarray(img))
        tiles.append(np.concatenate(cropped, axis=1))
    legend = Image.new("RGB", (tiles[0].shape[1], 40), (255, 255, 255))
    bar = distance_colors(np.linspace(0, color_max, 400), color_max)
    legend.paste(Image.fromarray(np.repeat(bar[None], 14, axis=0)), (120, 6))
    draw = ImageDraw.Draw(legend)
    draw.text((10, 6), "error to GT:", fill=(0, 0, 0))
    draw.text((116, 22), "0", fill=(0, 0, 0))
    draw.text((500, 22), f"{100 * color_max:.0f} cm or more", fill=(0, 0, 0))
    draw.text((560, 6), "7-Scenes redkitchen, 500 real frames; ATLAS protocol, "
              "F-score at 5 cm", fill=(0, 0, 0))  # fmt: skip
    image = np.concatenate([*tiles, np.asarray(legend)], axis=0)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp)


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", help="model file or training checkpoint (default: the bundled model)"
    )
    parser.add_argument("--out", default=ROOT / "data/bench/real_data", type=Path,
                        help="reconstructions, evaluation meshes, visibility mask")  # fmt: skip
    parser.add_argument("--seven-scenes", default=DEFAULT_SEVEN_SCENES, type=Path,
                        help="the 7-Scenes frames (read only)")  # fmt: skip
    parser.add_argument("--prepared", default=ROOT / "data/prepared/7scenes", type=Path,
                        help="prepared-scene root (prepare.py data=7scenes's)")  # fmt: skip
    parser.add_argument("--docs", default=ROOT / "docs", type=Path,
                        help="where real_data.{md,json} and real_data_7scenes.png go")  # fmt: skip
    parser.add_argument("--eval-stride", default=5, type=int,
                        help="use every n-th camera (evaluate.py frame_stride)")  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cpu, cuda")
    args = parser.parse_args(argv)

    raw = args.seven_scenes
    if not (raw.is_dir() and any(raw.glob("frame-*.color.*"))):
        print(
            f"note: no 7-Scenes frames at {args.seven_scenes} (frame-XXXXXX.color.jpg); "
            "skipping the real-data benchmark (set --seven-scenes or SEVEN_SCENES_ROOT)"
        )
        return 0
    t_start = time.perf_counter()
    load = os.getloadavg()[0]
    device = resolve_device(args.device)
    log(f"real data end to end: {args.seven_scenes}, device {device}, "
        f"torch threads {torch.get_num_threads()}")  # fmt: skip

    t = time.perf_counter()
    scene_dir, prepared_now = prepare_ground_truth(args.seven_scenes, args.prepared)
    ground_truth = (
        f"prepared in this run ({time.perf_counter() - t:.0f} s)"
        if prepared_now
        else f"reused from {args.prepared}"
    )
    scan = Scan(scene_dir, args.eval_stride)
    log(f"scan: {len(scan.reader)} frames, {len(scan.indices)} evaluation cameras, "
        f"ground truth {len(scan.gt.vertices)} vertices")  # fmt: skip

    out = args.out
    methods = reconstruct(scan, args.checkpoint, out, device)
    distances = evaluate(scan, methods, out)
    warnings = check_alignment(methods)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)

    total = time.perf_counter() - t_start
    command = "python bench/real_data.py" + (
        f" --checkpoint {args.checkpoint}" if args.checkpoint else ""
    )
    facts = {
        "command": command,
        "checkpoint": args.checkpoint or "bundled",
        "device": device,
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})",
        "total_seconds": round(total, 1),
        "load_average": round(load, 2),
        "ground_truth": ground_truth,
        "eval_stride": args.eval_stride,
        "warnings": warnings,
    }
    docs = args.docs
    md_table = write_markdown(docs / "real_data.md", scan, methods, facts)
    write_json(docs / "real_data.json", scan, methods, facts)
    save_picture(docs / "real_data_7scenes.png", scan.gt, methods, distances)
    harness.refresh_readme_table()
    log(f"wrote {docs / 'real_data.md'}, real_data.json, real_data_7scenes.png, the "
        f"README's methods table; reconstructions and error meshes under {out}")  # fmt: skip
    print()
    print(md_table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
