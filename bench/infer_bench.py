"""Inference benchmark: the model's 2D and 3D parts, a whole reconstruction, peak memory.

1. 2D part: frames/s of the backbone plus back-projection (``ATLASNet.feature_volume``
   into a ``FeatureVolume`` on the room's own grid, as ``reconstruct_volume`` builds it),
   the images decoded and resized beforehand (decoding is timed apart); the backbone
   alone is timed too, back-projection is the difference.
2. 3D part: seconds per cubic metre of the 3D network (``predict_tiled``, tiled as in
   inference) on the room's input volume; cubic metres = voxels * voxel_size**3. The
   stereo prior channels are constants: the network is dense (every voxel is computed),
   so its time does not depend on the values.
3. ``reconstruct_model`` on a 300-frame synthetic room (data/bench/infer_room, rendered
   once), in a fresh process: total seconds and their split (stereo prior, features,
   3D, mesh, colour) from the summary; without --quick a second, warm run in the same
   process (torch.compile'd fusion kernels and the allocator already warm).
4. Peak memory, each case in a fresh subprocess (peak resident set size, see ``rss_gb``;
   on CUDA also torch.cuda.max_memory_allocated): (a) the 3D network on a random volume
   that fits one tile of ``chunk_voxels`` and (b) on one of 3x3 tiles of the same size,
   and their ratio (target: at most 1.2); then the whole ``reconstruct_volume`` on the
   room and on n x n copies of it side by side (the same frames, poses shifted by the
   room grid's extent: a scene larger than one chunk in x and y, the same chunk_voxels;
   n = 3, 2 with --quick). Synthetic rooms of other sizes do not serve here: the grid
   covers the camera frusta clipped at max_depth, not the walls, so a 3x3 m room and an
   8x8 m room both get about 9x9 m. Unlike (a)/(b), reconstruct_volume also holds
   full-size volumes (the feature sum and the network input, which grow with the
   scene), so that ratio is expected above 1.2; it is reported to show by how much.

Every measured case runs on the CPU, and again on CUDA when torch.cuda.is_available().
Without a model file (--checkpoint, default the bundled atlas/model/weights/atlas_cpu.pt)
a randomly initialised model of configs/model/resnet18_c16.yaml is used: the timings do
not depend on the weights, except the mesh and colour steps (they depend on the surface
found).

    python bench/infer_bench.py [--threads N] [--checkpoint PATH] [--device auto] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.geometry.camera import scale_intrinsics
from atlas.model.backproject import FeatureVolume
from atlas.model.checkpoint import BUNDLED, load_model, save_model
from atlas.model.config import ModelConfig, build_model
from atlas.model.contract import make_contract
from atlas.model.inference import (
    ModelInferenceConfig,
    chosen_frames,
    model_grid,
    predict_tiled,
    reconstruct_volume,
    tiles,
)
from atlas.model.photo_consistency import ColorVariance
from atlas.pipeline.methods import reconstruct_model
from atlas.readers.frames import Frame, SceneReader
from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import prior_stereo_config
from atlas.synthetic.generate import SceneConfig, write_scene

if not __package__:  # run as a script (python bench/infer_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import (
    BENCH_DATA,
    GB,
    ROOT,
    best_of,
    cuda_peak_gb,
    emit_result,
    rss_gb,
    run_python,
    set_threads,
    sync,
    timed,
)

DEFAULTS = ModelInferenceConfig()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--checkpoint", default=None, help="model file (default: the bundled one)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: the CPU, and CUDA too when available")  # fmt: skip
    p.add_argument("--frames", type=int, default=300, help="frames of the synthetic room")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of parts 1-2; best kept")
    p.add_argument("--max-depth", type=float, default=None, help="frusta clip, metres")
    p.add_argument("--chunk-voxels", type=int, default=None, help="3D network tile budget")
    p.add_argument("--chunk-margin", type=int, default=None, help="tile context, voxels")
    p.add_argument("--mem-z", type=int, default=None, help="z voxels of the part-4 volumes")
    p.add_argument(
        "--mem-frames", type=int, default=None, help="room frames per copy in part 4b (default 60)"
    )
    p.add_argument("--timeout", type=int, default=1800, help="seconds per subprocess")
    p.add_argument("--skip", choices=("room", "reconstruct", "memory"), action="append",
                   default=[], help="leave a part out (repeatable)")  # fmt: skip
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes (30 frames of 160x120, 1 m frusta)"
    )
    p.add_argument("--case", help=argparse.SUPPRESS)  # one measured case, as JSON
    return p.parse_args(argv)


@dataclass(frozen=True)
class Settings:
    """The run's sizes, from the command line (``--quick``: tiny ones)."""

    quick: bool
    max_depth: float  # metres, frusta clip
    chunk: int  # chunk_voxels, the 3D network's tile budget
    margin: int  # chunk_margin, voxels
    mem_z: int  # z voxels of the part-4 volumes
    mem_frames: int  # room frames per copy in part 4b
    repeat: int  # timed runs of parts 1-2
    layout: int  # part 4b: the room on a layout x layout grid of copies
    room: SceneConfig  # the synthetic room
    threads: int  # CPU threads given to the subprocesses (0: all cores)
    timeout: int  # seconds per subprocess

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        quick = args.quick
        room = SceneConfig(seed=123, n_frames=30 if quick else args.frames, width=320, height=240)
        return cls(
            quick=quick,
            max_depth=args.max_depth or (1.0 if quick else DEFAULTS.max_depth),
            chunk=args.chunk_voxels or (32 * 32 * 16 if quick else DEFAULTS.chunk_voxels),
            margin=args.chunk_margin if args.chunk_margin is not None else (4 if quick else 16),
            mem_z=args.mem_z or (16 if quick else 48),
            mem_frames=args.mem_frames or (4 if quick else 60),
            repeat=1 if quick else args.repeat,
            layout=2 if quick else 3,
            room=replace(room, width=160, height=120) if quick else room,
            threads=args.threads,
            timeout=args.timeout,
        )


# --- shared helpers ------------------------------------------------------------------------


def run_3d(net, x: torch.Tensor, chunk_voxels: int, margin: int):
    """The 3D network over a ready input volume x (1, C, X, Y, Z), tiled as inference."""
    seen = torch.ones(x.shape[-3:], dtype=torch.bool)
    return predict_tiled(
        net,
        tuple(x.shape[-3:]),
        lambda mx, my: (x[..., mx, my, :], seen[mx, my]),
        chunk_voxels,
        margin,
    )


def inference_config(spec: dict) -> ModelInferenceConfig:
    return replace(
        DEFAULTS,
        max_depth=spec["max_depth"],
        chunk_voxels=spec["chunk_voxels"],
        chunk_margin=spec["chunk_margin"],
    )


def room_dir(opts: Settings) -> Path:
    """The benchmark room: data/bench/infer_room (300 frames of 320x240), or a folder
    named by its settings for others (--quick: under /tmp)."""
    room = opts.room
    default = (room.n_frames, room.width, room.height) == (300, 320, 240)
    name = "infer_room" if default else f"infer_room_{room.n_frames}_{room.width}x{room.height}"
    base = Path(tempfile.gettempdir()) / "infer_bench" if opts.quick else BENCH_DATA
    return base / name


class TiledReader(SceneReader):
    """The frames ``indices`` of ``base``, repeated on an n x n layout: copy (i, j) has
    its poses shifted by (i * offset[0], j * offset[1], 0) metres. Images are shared; a
    scene ``n`` times the base's extent in x and y."""

    def __init__(self, base: SceneReader, indices, n: int, offset=(0.0, 0.0)) -> None:
        self.base, self.n = base, n
        self.indices = np.asarray(indices, dtype=np.int64)
        self.name = f"{base.name}_{n}x{n}"
        self.K_color, self.K_depth = base.K_color, base.K_depth
        self.color_size, self.depth_size = base.color_size, base.depth_size
        poses = []
        for i in range(n):
            for j in range(n):
                p = base.poses[self.indices].copy()
                p[:, 0, 3] += i * offset[0]
                p[:, 1, 3] += j * offset[1]
                poses.append(p)
        self._poses = np.concatenate(poses)
        self.frame_ids = list(range(len(self._poses)))

    @property
    def poses(self) -> np.ndarray:
        return self._poses

    def read_frame(self, index: int) -> Frame:
        frame = self.base.read_frame(int(self.indices[index % len(self.indices)]))
        return replace(frame, pose=self._poses[index], frame_id=index)


def memory_reader(spec: dict, cfg: ModelConfig, n: int) -> TiledReader:
    """--mem-frames frames of the room (spread over the whole scan; with --quick the
    first ones, so that so few still make stereo pairs), on an n x n layout whose copies
    are one room grid apart (a whole number of coarsest voxels). Copies share images,
    so stereo may pair a frame with a copy's frame straight behind it: the prior's values
    are then meaningless, not its cost."""
    base = ScanNetFolder(spec["scene"])
    count = min(spec["mem_frames"], len(base))
    spread = np.linspace(0, len(base) - 1, count).round().astype(int)
    idx = np.arange(count) if spec["mem_first_frames"] else spread
    one = TiledReader(base, idx, 1)
    grid = model_grid(one, chosen_frames(one, DEFAULTS), cfg, spec["max_depth"])
    coarsest = cfg.voxel_sizes[-1]
    extent = np.ceil(np.array(grid.shape[:2]) * grid.voxel_size / coarsest) * coarsest
    return one if n == 1 else TiledReader(base, idx, n, tuple(extent))


# --- the measured cases (each in its own process) --------------------------------------------


def preload(reader: SceneReader, indices: np.ndarray, size: tuple[int, int]):
    """(1, N, 3, H, W) float images in [0, 1] and (N, 4, 4) poses, resized as
    ``reconstruct_volume`` does, all in memory."""
    images, poses = [], []
    for frame in reader.iter_frames(indices):
        img = Image.fromarray(frame.color).resize(size, Image.BILINEAR)
        images.append(torch.from_numpy(np.array(img)).permute(2, 0, 1))
        poses.append(frame.pose)
    return torch.stack(images)[None].float() / 255, np.stack(poses)


def case_room(spec: dict) -> dict:
    """Parts 1 and 2 on the room: 2D frames/s, 3D seconds per cubic metre."""
    device = spec["device"]
    net, cfg, _, _ = load_model(spec["model"], device)
    reader = ScanNetFolder(spec["scene"])
    icfg = inference_config(spec)
    indices = chosen_frames(reader, icfg)
    grid = model_grid(reader, indices, cfg, icfg.max_depth)
    w, h = spec["image_size"]
    with timed() as load:
        images, poses = preload(reader, indices, (w, h))
    load_s = load.wall
    K = scale_intrinsics(reader.K_color, w / reader.color_size[0], h / reader.color_size[1])
    proj = torch.tensor(K @ np.linalg.inv(poses)[:, :3], dtype=torch.float32, device=device)
    proj, images = proj[None], images.to(device)
    n, chunk = images.shape[1], net.view_chunk
    origin = torch.tensor(grid.origin, dtype=torch.float32, device=device)[None]

    def new_volume() -> FeatureVolume:
        return FeatureVolume(
            origin, grid.voxel_size, grid.shape, net.backbone.out_channels, net.feature_mode
        )

    def backbone_only() -> None:
        for s in range(0, n, chunk):
            net.backbone(images[0, s : s + chunk])

    volumes: list[FeatureVolume] = []
    colors: list[ColorVariance | None] = [None]

    def features() -> None:
        volumes[:] = [new_volume()]  # allocation inside: reconstruct_volume's does it too
        net.feature_volume(images, proj, volumes[0])
        if net.color_variance:  # the colour channel is part of the model's input
            colors[0] = ColorVariance(origin, grid.voxel_size, grid.shape, net.feature_mode)
            colors[0].add(images, proj)

    with torch.no_grad():
        net.feature_volume(images[:, :chunk], proj[:, :chunk], new_volume())  # warm-up
        t_backbone = best_of(backbone_only, spec["repeat"], device)[0].wall
        t_features = best_of(features, spec["repeat"], device)[0].wall
        volume = volumes.pop()
        seen = float((volume.count > 0).float().mean())
        if net.prior == "stereo":  # constants: see the module docstring
            prior = torch.ones((1, *grid.shape), device=device)
            x = net.volume_input(volume, prior, prior < 0, colors[0])
            del prior
        else:
            x = net.volume_input(volume, colors=colors[0])
        del volume, colors[:]
        warm = x[..., : min(32, x.shape[2]), : min(32, x.shape[3]), :]
        run_3d(net, warm, icfg.chunk_voxels, icfg.chunk_margin)  # warm-up
        t_3d = best_of(
            lambda: run_3d(net, x, icfg.chunk_voxels, icfg.chunk_margin),
            spec["repeat"],
            device,
        )[0].wall
    voxels = int(np.prod(grid.shape))
    m3 = voxels * grid.voxel_size**3
    return {
        "frames": n,
        "image_size": [w, h],
        "grid_shape": list(grid.shape),
        "voxel_size": grid.voxel_size,
        "voxels": voxels,
        "m3": m3,
        "seen_fraction": seen,
        "decode_ms_per_frame": 1000 * load_s / n,
        "backbone_fps": n / t_backbone,
        "features_fps": n / t_features,
        "backproject_ms_per_frame": 1000 * max(t_features - t_backbone, 0.0) / n,
        "net3d_s": t_3d,
        "net3d_s_per_m3": t_3d / m3,
        "tiles": len(tiles(grid.shape, icfg.chunk_voxels, icfg.chunk_margin)),
        "peak_rss_gb": rss_gb(),
        "cuda_peak_gb": cuda_peak_gb(device),
    }


def case_reconstruct(spec: dict) -> dict:
    """Part 3: reconstruct_model on the room, ``runs`` times in this process."""
    device = spec["device"]
    reader = ScanNetFolder(spec["scene"])
    icfg = inference_config(spec)
    runs = []
    for _ in range(spec["runs"]):
        with timed(device) as t:
            rec = reconstruct_model(reader, spec["model"], icfg, device)
        total = t.wall
        s = rec.summary
        runs.append(
            {
                "total_s": total,
                "seconds": s["seconds"],
                "other_s": total - sum(s["seconds"].values()),
                "frames_used": s["frames_used"],
                "keyframes": s.get("stereo", {}).get("keyframes"),
                "grid_shape": s["grid_shape"],
                "mesh_vertices": s["mesh_vertices"],
            }
        )
        del rec
    return {"runs": runs, "peak_rss_gb": rss_gb(), "cuda_peak_gb": cuda_peak_gb(device)}


def case_net3d_memory(spec: dict) -> dict:
    """Part 4 (a)/(b): predict_tiled on a random (1, C_in, X, Y, Z) input."""
    device = spec["device"]
    net = load_model(spec["model"], device).net
    c_in = net.net.stem[0][0].in_channels
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(1, c_in, *spec["shape"], generator=g, device=device)
    before, before_cuda = rss_gb(peak=False), None
    if device.startswith("cuda"):
        sync(device)
        torch.cuda.reset_peak_memory_stats()
        before_cuda = torch.cuda.memory_allocated() / GB
    with timed(device) as t:
        run_3d(net, x, spec["chunk_voxels"], spec["chunk_margin"])
    return {
        "seconds": t.wall,
        "tiles": len(tiles(tuple(spec["shape"]), spec["chunk_voxels"], spec["chunk_margin"])),
        "input_gb": x.numel() * x.element_size() / GB,
        "rss_before_gb": before,
        "peak_rss_gb": rss_gb(),
        "cuda_before_gb": before_cuda,
        "cuda_peak_gb": cuda_peak_gb(device),
    }


def case_recon_memory(spec: dict) -> dict:
    """Part 4, second comparison: reconstruct_volume on the room on an n x n layout."""
    device = spec["device"]
    net, cfg, _, contract = load_model(spec["model"], device)
    reader = memory_reader(spec, cfg, spec["n"])
    before = rss_gb(peak=False)
    with timed(device) as t:
        pred = reconstruct_volume(reader, net, cfg, inference_config(spec), contract, device)
    shape = pred.facts["grid_shape"]
    return {
        "seconds": t.wall,
        "frames": len(reader),
        "grid_shape": shape,
        "tiles": len(tiles(tuple(shape), spec["chunk_voxels"], spec["chunk_margin"])),
        "split_s": pred.facts["seconds"],
        "rss_before_gb": before,
        "peak_rss_gb": rss_gb(),
        "cuda_peak_gb": cuda_peak_gb(device),
    }


CASES = {
    "room": case_room,
    "reconstruct": case_reconstruct,
    "net3d_memory": case_net3d_memory,
    "recon_memory": case_recon_memory,
}


def run_case(spec: dict, opts: Settings) -> dict:
    """``spec`` in a fresh interpreter (so its peak memory is its own): its result, with
    ``wall_s`` (seconds, start-up included) added, or ``{"error": ...}``."""
    cmd = [__file__, "--case", json.dumps(spec)]
    if opts.threads:
        cmd += ["--threads", str(opts.threads)]
    run = run_python(cmd, timeout=opts.timeout)
    if run.timed_out:
        return {"error": f"did not finish in {opts.timeout} s"}
    if run.result is None:
        return {"error": run.last_line()[:160]}
    return {**run.result, "wall_s": run.wall}


# --- the parent: model, room, tables ---------------------------------------------------------


def resolve_model(tmp: Path, checkpoint: str | None) -> tuple[str, str, bool]:
    """(model file for the subprocesses, how to describe it, whether it is random).
    Without a file, a randomly initialised model of configs/model/resnet18_c16.yaml, saved
    to ``tmp``."""
    path = Path(checkpoint) if checkpoint else BUNDLED
    if path.is_file():
        return str(path), str(path), False
    from omegaconf import OmegaConf

    config = ROOT / "configs" / "model" / "resnet18_c16.yaml"
    block = OmegaConf.to_container(OmegaConf.load(config))
    cfg = ModelConfig.from_dict(block["model"])
    torch.manual_seed(0)
    net = build_model(cfg, load_backbone_weights=False)
    contract = make_contract(cfg, prior_stereo_config(), (160, 120))
    out = save_model(net, cfg, tmp / "random_cpu.pt", contract)
    print(
        f"note: {path} not found: using a RANDOMLY INITIALISED model "
        f"(configs/model/resnet18_c16.yaml, image size 160x120); timings do not depend on "
        f"the weights, except mesh and colour"
    )
    return str(out), "random init, configs/model/resnet18_c16.yaml", True


def hardware() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    hw = {
        "cpu": cpu or "unknown",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "gpu": None,
    }
    if torch.cuda.is_available():
        prop = torch.cuda.get_device_properties(0)
        hw["gpu"] = f"{prop.name} ({prop.total_memory / GB:.0f} GB)"
    return hw


def fmt(v, spec: str = ".2f", width: int = 7) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"


def bench_room(devices: list[str], base: dict, opts: Settings) -> dict:
    print(
        f"\n1-2. 2D and 3D parts on the room's grid; images preloaded "
        f"(decode+resize timed apart); best of {opts.repeat}"
    )
    print(
        f"{'device':<6} {'frames':>6} {'image':>7} {'grid':>12} {'m^3':>6} {'seen':>5} "
        f"{'decode':>7} {'backbone':>8} {'2D':>7} {'backproj':>8} {'3D':>6} {'3D':>7} "
        f"{'tiles':>5} {'peak':>6}"
    )
    print(
        f"{'':<6} {'':>6} {'':>7} {'':>12} {'':>6} {'':>5} {'ms/f':>7} {'f/s':>8} {'f/s':>7} "
        f"{'ms/f':>8} {'s':>6} {'s/m^3':>7} {'':>5} {'GB':>6}"
    )
    out = {}
    for device in devices:
        r = run_case({**base, "case": "room", "device": device}, opts)
        out[device] = r
        if "error" in r:
            print(f"{device:<6} failed: {r['error']}")
            continue
        grid = "x".join(map(str, r["grid_shape"]))
        image = "x".join(map(str, r["image_size"]))
        print(
            f"{device:<6} {r['frames']:>6} {image:>7} {grid:>12} {r['m3']:>6.1f} "
            f"{r['seen_fraction']:>5.2f} {r['decode_ms_per_frame']:>7.1f} "
            f"{r['backbone_fps']:>8.1f} {r['features_fps']:>7.1f} "
            f"{r['backproject_ms_per_frame']:>8.1f} {r['net3d_s']:>6.2f} "
            f"{r['net3d_s_per_m3']:>7.3f} {r['tiles']:>5} {r['peak_rss_gb']:>6.2f}"
            + (f"  cuda peak {r['cuda_peak_gb']:.2f} GB" if r["cuda_peak_gb"] is not None else "")
        )
        sys.stdout.flush()
    return out


def bench_reconstruct(devices: list[str], base: dict, random_model: bool, opts: Settings) -> dict:
    runs = 1 if opts.quick else 2
    print(
        f"\n3. reconstruct_model, {opts.room.n_frames}-frame room, fresh process"
        f"{'; run 2 warm (same process)' if runs > 1 else ''}; seconds"
    )
    print(
        f"{'device':<6} {'run':>4} {'total':>7} {'stereo':>7} {'2D':>7} {'bp+3D':>7} "
        f"{'mesh':>7} {'colour':>7} {'other':>6} {'keyfr':>5} {'grid':>12} {'verts':>7} "
        f"{'peak GB':>7}"
    )
    out = {}
    for device in devices:
        r = run_case({**base, "case": "reconstruct", "device": device, "runs": runs}, opts)
        out[device] = r
        if "error" in r:
            print(f"{device:<6} failed: {r['error']}")
            continue
        for i, run in enumerate(r["runs"]):
            s = run["seconds"]
            grid = "x".join(map(str, run["grid_shape"]))
            print(
                f"{device:<6} {'cold' if i == 0 else 'warm':>4} {run['total_s']:>7.2f} "
                f"{s['stereo_prior']:>7.2f} {s['features_2d']:>7.2f} "
                f"{s['backprojection_and_3d']:>7.2f} "
                f"{s['mesh']:>7.2f} {s['colour']:>7.2f} {run['other_s']:>6.2f} "
                f"{fmt(run['keyframes'], 'd', 5)} {grid:>12} {run['mesh_vertices']:>7} "
                f"{r['peak_rss_gb']:>7.2f}"
            )
        sys.stdout.flush()
    print(
        "(2D: JPEG decoding and the backbone; bp+3D: per-tile back-projection and 3D "
        "network; other: model loading and bookkeeping)"
    )
    if random_model:
        print("(random weights: the mesh and colour times say nothing about a trained model's)")
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a <= 0 else b / a


def peak_ratios(a: dict, b: dict) -> dict:
    """Peak-memory ratios b / a of two cases (total, and above the memory before the
    measured part), empty when either case failed."""
    if "error" in a or "error" in b:
        return {}
    out = {
        "rss": ratio(a["peak_rss_gb"], b["peak_rss_gb"]),
        "rss_above_base": ratio(
            a["peak_rss_gb"] - a["rss_before_gb"], b["peak_rss_gb"] - b["rss_before_gb"]
        ),
        "cuda": ratio(a["cuda_peak_gb"], b["cuda_peak_gb"]),
    }
    if a.get("cuda_before_gb") is not None and b.get("cuda_before_gb") is not None:
        out["cuda_above_base"] = ratio(
            a["cuda_peak_gb"] - a["cuda_before_gb"], b["cuda_peak_gb"] - b["cuda_before_gb"]
        )
    return out


def bench_memory(devices: list[str], base: dict, grid_one, opts: Settings) -> dict:
    chunk, margin = base["chunk_voxels"], base["chunk_margin"]
    z = opts.mem_z
    side_a = int(np.sqrt(chunk / z)) // 4 * 4  # the largest square one-tile volume
    core = tiles((4 * side_a, 4 * side_a, z), chunk, margin)[0][0].stop  # a tile's core side
    shapes = {"a: 1 tile": (side_a, side_a, z), "b: 3x3 tiles": (3 * core, 3 * core, z)}
    print(
        f"\n4. peak memory, one process per case; 3D network (predict_tiled) on a random "
        f"input, chunk_voxels {chunk}, margin {margin}"
    )
    print(
        f"{'device':<6} {'case':<13} {'volume':>12} {'tiles':>5} {'s':>7} {'input':>6} "
        f"{'base':>6} {'peak':>6} {'+peak':>6} {'cuda':>6}"
    )
    print(
        f"{'':<6} {'':<13} {'':>12} {'':>5} {'':>7} {'GB':>6} {'GB':>6} {'GB':>6} {'GB':>6} "
        f"{'GB':>6}"
    )
    out: dict = {}
    for device in devices:
        rows = {}
        for label, shape in shapes.items():
            spec = {**base, "case": "net3d_memory", "device": device, "shape": list(shape)}
            r = run_case(spec, opts)
            rows[label] = r
            volume = "x".join(map(str, shape))
            if "error" in r:
                print(f"{device:<6} {label:<13} {volume:>12} failed: {r['error']}")
                continue
            print(
                f"{device:<6} {label:<13} {volume:>12} {r['tiles']:>5} {r['seconds']:>7.2f} "
                f"{r['input_gb']:>6.3f} {r['rss_before_gb']:>6.2f} {r['peak_rss_gb']:>6.2f} "
                f"{r['peak_rss_gb'] - r['rss_before_gb']:>6.2f} {fmt(r['cuda_peak_gb'], '.3f', 6)}"
            )
        a, b = rows["a: 1 tile"], rows["b: 3x3 tiles"]
        ratios = peak_ratios(a, b)
        if ratios:
            print(
                f"{device:<6} ratio b/a: peak RSS {ratios['rss']:.2f}, above base "
                f"{fmt(ratios['rss_above_base'], '.2f', 0)}, cuda {fmt(ratios['cuda'], '.2f', 0)}"
                f"  (target <= 1.2; base: RSS once the model and the input are in memory)"
            )
        out[device] = {"net3d": rows, "net3d_ratio": ratios}
    sys.stdout.flush()

    voxels_one = int(np.prod(grid_one.shape))
    mem_chunk = max(chunk, voxels_one)
    note = "" if mem_chunk == chunk else f" (raised from {chunk} so the room fits one tile)"
    print(
        f"\n4b. whole reconstruct_volume: the room ({opts.mem_frames} of its frames) and "
        f"{opts.layout}x{opts.layout} copies of it side by side; chunk_voxels {mem_chunk}{note}"
    )
    print(
        f"{'device':<6} {'scene':<6} {'frames':>6} {'grid':>12} {'tiles':>5} {'s':>7} "
        f"{'base GB':>7} {'peak GB':>7} {'+peak':>6} {'cuda GB':>7}"
    )
    for device in devices:
        rows = {}
        for n in (1, opts.layout):
            spec = {
                **base,
                "case": "recon_memory",
                "device": device,
                "n": n,
                "chunk_voxels": mem_chunk,
            }
            r = run_case(spec, opts)
            rows[f"{n}x{n}"] = r
            if "error" in r:
                print(f"{device:<6} {n}x{n:<4} failed: {r['error']}")
                continue
            grid = "x".join(map(str, r["grid_shape"]))
            print(
                f"{device:<6} {f'{n}x{n}':<6} {r['frames']:>6} {grid:>12} {r['tiles']:>5} "
                f"{r['seconds']:>7.2f} {r['rss_before_gb']:>7.2f} {r['peak_rss_gb']:>7.2f} "
                f"{r['peak_rss_gb'] - r['rss_before_gb']:>6.2f} "
                f"{fmt(r['cuda_peak_gb'], '.3f', 7)}"
            )
        a, b = rows["1x1"], rows[f"{opts.layout}x{opts.layout}"]
        ratios = peak_ratios(a, b)
        if ratios:
            print(
                f"{device:<6} ratio {opts.layout}x{opts.layout}/1x1: peak RSS {ratios['rss']:.2f}, "
                f"above base {fmt(ratios['rss_above_base'], '.2f', 0)}, "
                f"cuda {fmt(ratios['cuda'], '.2f', 0)}"
                f"  (the prior, frame features and result arrays grow with the scene)"
            )
        out.setdefault(device, {}).update({"reconstruct_volume": rows, "recon_ratio": ratios})
    sys.stdout.flush()
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    set_threads(args.threads)  # the subprocesses inherit it
    if args.case:
        spec = json.loads(args.case)
        emit_result(CASES[spec["case"]](spec))
        return
    opts = Settings.from_args(args)
    t_start = time.perf_counter()
    if args.device == "auto":
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    else:
        devices = [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("--device cuda: CUDA is not available")
    tmp = Path(tempfile.mkdtemp(prefix="infer_bench_"))
    try:
        model, model_desc, random_model = resolve_model(tmp, args.checkpoint)
        _, cfg, _, contract = load_model(model)
        image_size = list(contract.image_size)
        scene = room_dir(opts)
        if not scene.exists():
            room = opts.room
            print(f"rendering {scene} ({room.n_frames} frames of {room.width}x{room.height})")
            write_scene(scene, room, progress=not opts.quick)
        hw = hardware()
        print(
            f"inference benchmark{' (quick)' if opts.quick else ''}: model {model_desc}; "
            f"voxel {cfg.voxel_sizes[0]} m; image {image_size[0]}x{image_size[1]}; "
            f"max depth {opts.max_depth} m; chunk_voxels {opts.chunk}, margin {opts.margin}"
        )
        print("hardware")
        print(f"{'  cpu':<10} {hw['cpu']}, {hw['cpu_count']} cores")
        print(f"{'  torch':<10} {hw['torch']}, {hw['torch_threads']} threads")
        print(f"{'  gpu':<10} {hw['gpu'] or 'none'}")
        print(f"{'  room':<10} {scene} (seed {opts.room.seed}, {opts.room.n_frames} frames)")
        base = {
            "model": model,
            "scene": str(scene),
            "image_size": image_size,
            "max_depth": opts.max_depth,
            "chunk_voxels": opts.chunk,
            "chunk_margin": opts.margin,
            "mem_frames": opts.mem_frames,
            "mem_first_frames": opts.quick,
            "repeat": opts.repeat,
        }
        results: dict = {}
        if "room" not in args.skip:
            results["room"] = bench_room(devices, base, opts)
        if "reconstruct" not in args.skip:
            results["reconstruct"] = bench_reconstruct(devices, base, random_model, opts)
        if "memory" not in args.skip:
            one = memory_reader(base, cfg, 1)
            grid_one = model_grid(one, chosen_frames(one, DEFAULTS), cfg, opts.max_depth)
            results["memory"] = bench_memory(devices, base, grid_one, opts)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    wall = time.perf_counter() - t_start
    print(f"\nwall time {wall:.1f} s")
    record = {
        "bench": "infer",
        "quick": opts.quick,
        "hardware": hw,
        "model": model_desc,
        "settings": {
            **{k: v for k, v in base.items() if k != "model"},
            "frames": opts.room.n_frames,
            "room_image": [opts.room.width, opts.room.height],
            "mem_z": opts.mem_z,
            "layout": opts.layout,
        },
        "results": results,
        "wall_s": round(wall, 1),
    }
    print(json.dumps(record, default=float))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
