"""Model benchmark: back-projection against the original ATLAS algorithm, and training steps.

1. Back-projection of V views (C=32 feature maps of 80x60, stride 4 of 320x240) into a
   256x256x96 volume of 4 cm voxels: our ``FeatureVolume`` (nearest mode) against a plain
   copy of the original ATLAS algorithm (a loop over views, every voxel projected, a
   boolean-mask gather into a dense per-view volume), measured in the same run; prints
   the time per frame of both, their ratio and the largest difference of their outputs.
2. Training steps (``ATLASModule.losses``, backward, an Adam step) on synthetic batches
   shaped like the training data, each configuration in a fresh subprocess so its peak
   memory (peak resident set, VmHWM) is its own: the CPU recipe
   (configs/model/resnet18_c16.yaml, batch 2, 48x48x32 crops at 8 cm, 12 images of
   160x120) and the ATLAS paper setting (configs/model/atlas.yaml, batch 1, 160x160x64
   at 4 cm, 640x480 images) with fewer frames than its 50 and a single step, also on a
   quarter of the crop, under an address-space limit so that a configuration too big
   for this machine is reported, not run into swap.

Wall and CPU (user + sys) times are printed: CPU time is the steadier figure when
another job shares the cores. ``--thp`` lets torch back large CPU tensors with
transparent huge pages (fewer page faults), ``--quick`` shrinks everything.

    python bench/model_bench.py [--threads N] [--views 8] [--atlas-frames 8] [--thp]
        [--skip backproject|train|atlas] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
from pathlib import Path

import numpy as np

if not __package__:  # run as a script (python bench/model_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import harness
from bench.harness import best_of, rss_gb, timed


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: all cores)")
    p.add_argument("--views", type=int, default=8, help="back-projected views")
    p.add_argument("--repeat", type=int, default=3, help="timed back-projections; best kept")
    p.add_argument("--steps", type=int, default=3, help="timed CPU-recipe steps after 1 warm-up")
    p.add_argument("--atlas-frames", type=int, default=8, help="frames of the ATLAS setting")
    p.add_argument("--mem-limit-gb", type=float, default=12.0, help="per training subprocess")
    p.add_argument("--timeout", type=int, default=600, help="seconds per training subprocess")
    p.add_argument(
        "--skip",
        choices=("backproject", "train", "atlas"),
        action="append",
        default=[],
        help="leave a part out (repeatable)",
    )
    p.add_argument("--thp", action="store_true", help="THP_MEM_ALLOC_ENABLE=1: huge pages")
    p.add_argument("--device", default="cpu",
                   help="torch device (cpu, cuda): both methods run there; on CUDA the "
                   "training steps use bf16 autocast, as trainer=gpu does")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    p.add_argument("--child", help=argparse.SUPPRESS)  # a training configuration, as JSON
    return p.parse_args(argv)


# --- cameras -------------------------------------------------------------------------------


def intrinsics(width: int, height: int) -> np.ndarray:
    """ScanNet-like pinhole (fx = 0.9 W, about 58 degrees across) for a W x H image."""
    f = 0.9 * width
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world pose (OpenCV axes: x right, y down, z forward), world z up."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(forward, right), forward], 1)
    pose[:3, 3] = eye
    return pose


def ring_projections(
    n: int, lo: np.ndarray, hi: np.ndarray, image: tuple[int, int], seed: int = 0
) -> np.ndarray:
    """(n, 3, 4) world -> image-pixel projections of cameras walking a ring inside the box
    [lo, hi] at eye height, each looking across the box and slightly down, the way a
    handheld scan of a room sees it."""
    rng = np.random.default_rng(seed)
    centre, size = (lo + hi) / 2, hi - lo
    K = intrinsics(*image)
    out = np.zeros((n, 3, 4))
    for i in range(n):
        a = 2 * np.pi * i / n + rng.uniform(-0.2, 0.2)
        d = np.array([np.cos(a), np.sin(a), 0.0])
        eye = centre - 0.3 * size * d
        eye[2] = lo[2] + 0.6 * size[2]
        target = centre + 0.3 * size * d
        target[2] = lo[2] + 0.2 * size[2]
        out[i] = K @ np.linalg.inv(look_at(eye, target))[:3]
    return out


# --- 1. back-projection ----------------------------------------------------------------------


def original_backproject(shape, voxel_size, origin, projection, features):
    """The original ATLAS algorithm, written plainly: for each (item, view), project every
    voxel centre with a homogeneous matmul, round to the nearest pixel, gather the seen
    voxels' features into a dense (C, N) volume and add it to a running sum; mean =
    sum / count. Returns (B, C, X, Y, Z) mean and (B, 1, X, Y, Z) count."""
    import torch

    b, v, c, h, w = features.shape
    dev = features.device
    axes = [torch.arange(s, dtype=torch.float32, device=dev) for s in shape]
    ijk = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    n = ijk.shape[0]
    total = torch.zeros(b, c, n, device=dev)
    count = torch.zeros(b, 1, n, device=dev)
    for i in range(b):
        points = origin[i].float() + voxel_size * ijk  # (N, 3) voxel centres
        world = torch.cat([points.T, torch.ones(1, n, device=dev)], 0)  # (4, N)
        for j in range(v):
            cam = projection[i, j] @ world
            px = (cam[0] / cam[2]).round().long()
            py = (cam[1] / cam[2]).round().long()
            valid = (px >= 0) & (py >= 0) & (px < w) & (py < h) & (cam[2] > 0)
            volume = torch.zeros(c, n, device=dev)
            volume[:, valid] = features[i, j][:, py[valid], px[valid]]
            total[i] += volume
            count[i, 0] += valid
    mean = total / count.clamp(min=1)
    return mean.view(b, c, *shape), count.view(b, 1, *shape)


def ours_backproject(shape, voxel_size, origin, projection, features, chunk):
    from atlas.model.backproject import FeatureVolume

    vol = FeatureVolume(origin, voxel_size, shape, features.shape[2], mode="nearest")
    for start in range(0, features.shape[1], chunk):
        vol.add(features[:, start : start + chunk], projection[:, start : start + chunk])
    return vol.mean(), vol.count


def bench_backproject(args: argparse.Namespace) -> None:
    import torch

    from atlas.model.atlas_net import feature_projection

    shape = (64, 64, 32) if args.quick else (256, 256, 96)
    views = 2 if args.quick else args.views
    repeat = 1 if args.quick else args.repeat
    voxel, channels, image, fmap = 0.04, 32, (320, 240), (80, 60)
    dev = torch.device(args.device)
    origin = torch.full((1, 3), voxel / 2, device=dev)
    P = ring_projections(views, np.zeros(3), np.array(shape) * voxel, image)
    projection = feature_projection(torch.tensor(P, dtype=torch.float32), image, fmap)[None]
    projection = projection.to(dev)
    g = torch.Generator().manual_seed(0)
    features = torch.randn(1, views, channels, fmap[1], fmap[0], generator=g).to(dev)
    inputs = (shape, voxel, origin, projection, features)

    print(
        f"\nback-projection: {shape[0]}x{shape[1]}x{shape[2]} voxels of {voxel} m, C={channels}, "
        f"{views} views of {fmap[0]}x{fmap[1]} features (stride 4 of {image[0]}x{image[1]}), "
        f"nearest, on {dev};\nbest of {repeat}; per frame = (allocation + all views + mean, "
        f"the mean channels-first as the 3D network takes it) / views; "
        f"cpu = user + sys"
    )
    with torch.no_grad():
        t_orig, (m_orig, c_orig) = best_of(
            lambda: original_backproject(*inputs), repeat, args.device
        )
        rows = [("original ATLAS (per-view loop, dense volume)", t_orig, "")]
        for chunk in (views, 1):
            label = f"ours, FeatureVolume, {chunk} view{'s' * (chunk > 1)} per add()"
            t, (m, c) = best_of(
                lambda chunk=chunk: ours_backproject(*inputs, chunk), repeat, args.device
            )
            dm = (m - m_orig).abs()
            bad = int(((c != c_orig) | (dm > 1e-5).any(1, keepdim=True)).sum())
            diff = f"{dm.max().item():>10.2e} {(c - c_orig).abs().max().item():>11.0f} {bad:>7}"
            rows.append((label, t, diff))
            del m, c, dm
    seen = c_orig.sum().item() / (views * c_orig.numel())
    print(f"each view sees {100 * seen:.1f}% of the {c_orig.numel():,} voxels on average")
    print(
        f"{'method':<46} {'wall ms':>8} {'cpu ms':>7} {'sys ms':>7} {'speed-up':>8} "
        f"{'cpu':>6} {'max|dmean|':>10} {'max|dcount|':>11} {'differ':>7}"
    )
    for label, t, diff in rows:
        print(
            f"{label:<46} {1000 * t.wall / views:>8.1f} {1000 * t.cpu / views:>7.1f} "
            f"{1000 * t.sys / views:>7.1f} {t_orig.wall / t.wall:>7.2f}x "
            f"{t_orig.cpu / t.cpu:>5.2f}x {diff}"
        )
    print(
        "differ: voxels whose count or mean differs from the original's (a float32 rounding "
        "of the projection\n  that lands on the neighbouring pixel)"
    )
    sys.stdout.flush()


# --- 2. training steps -------------------------------------------------------------------------


def load_module_config(name: str) -> dict:
    """configs/model/<name>.yaml merged over its defaults, as Hydra composes it, without
    ``_target_``: the keyword arguments of ``ATLASModule``."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(harness.ROOT / "configs" / "model" / f"{name}.yaml")
    parts = []
    for d in cfg.pop("defaults", []):
        parts.append(load_module_config(d) if d != "_self_" else cfg)
    if not any(p is cfg for p in parts):
        parts.append(cfg)
    merged = OmegaConf.to_container(OmegaConf.merge(*parts))
    merged.pop("_target_", None)
    return merged


def synthetic_batch(spec: dict, voxel_sizes: tuple[float, ...], prior: bool) -> dict:
    """A batch with the keys of ``atlas.training.data`` (training crops: origin 0)."""
    import torch

    from atlas.readers.prepared import scale_key

    g = torch.Generator().manual_seed(0)
    b, n = spec["batch"], spec["frames"]
    (w, h), crop = spec["image"], np.array(spec["crop"])
    vs = voxel_sizes[0]
    P = np.stack(
        [ring_projections(n, np.zeros(3), crop * vs, (w, h), seed=i) for i in range(b)]
    )  # (B, N, 3, 4)
    batch = {
        "images": torch.rand(b, n, 3, h, w, generator=g),
        "projection": torch.tensor(P, dtype=torch.float32),
        "origin": torch.zeros(b, 3),
        "voxel_size": torch.full((b,), vs),
        "shape": torch.tensor([list(crop)] * b, dtype=torch.int64),
    }
    for s, size in enumerate(voxel_sizes):
        dims = tuple(int(x) // 2**s for x in crop)
        key = scale_key(size)
        batch[f"tsdf_{key}"] = torch.rand(b, *dims, generator=g) * 2 - 1
        batch[f"observed_{key}"] = torch.rand(b, *dims, generator=g) < 0.9
    if prior:
        batch["prior_tsdf"] = torch.rand(b, *crop, generator=g) * 2 - 1
        batch["prior_observed"] = torch.rand(b, *crop, generator=g) < 0.7
    return batch


def train_child(spec: dict, device: str) -> dict:
    """Runs in its own process: build the module, time ``spec['steps']`` training steps
    after ``spec['warmup']`` untimed ones on ``device``; returns their times (seconds),
    the peak memory (GB) and the model's size."""
    import torch

    kwargs = load_module_config(spec["config"])  # a bad name fails before the slow import
    from atlas.training.lightning import ATLASModule

    torch.manual_seed(0)
    dev = torch.device(device)
    module = ATLASModule(**kwargs).to(dev)
    module.train()
    cfg = module.config
    batch = synthetic_batch(spec, cfg.voxel_sizes, cfg.net.prior == "stereo")
    batch = {k: v.to(dev) for k, v in batch.items()}
    opt = torch.optim.Adam(module.parameters(), lr=kwargs.get("lr", 1e-3))
    model_gb = rss_gb()
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=dev.type == "cuda")
    times, forward, cpu = [], [], []
    for step in range(spec["warmup"] + spec["steps"]):
        with timed(device) as total:
            with timed(device) as fwd, autocast:
                loss, _, _, _ = module.losses(batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if step >= spec["warmup"]:
            times.append(total.wall)
            forward.append(fwd.wall)
            cpu.append(total.cpu)
    return {
        "times": times,
        "forward": forward,
        "cpu": cpu,
        "peak_gb": rss_gb(),
        "cuda_peak_gb": harness.cuda_peak_gb(device),
        "model_gb": model_gb,
        "params_m": sum(p.numel() for p in module.parameters()) / 1e6,
        "loss": loss.item(),
        "threads": torch.get_num_threads(),
    }


def run_child(spec: dict, args: argparse.Namespace) -> dict:
    """``spec`` in a fresh interpreter with an address-space limit of --mem-limit-gb (an
    allocation beyond it fails there instead of pushing this machine into swap)."""
    limit = int(args.mem_limit_gb * harness.GB)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    cmd = [__file__, "--child", json.dumps(spec), "--device", args.device]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    cmd += ["--thp"] if args.thp else []
    # on CUDA no cap: CUDA reserves far more address space than it uses
    run = harness.run_python(cmd, args.timeout, preexec_fn=cap if args.device == "cpu" else None)
    if run.timed_out:
        return {"error": f"not done in {args.timeout} s", "gpu": True}
    if run.result is not None:
        return run.result
    last = run.last_line()
    if "allocate" in last or "bad_alloc" in last or run.returncode < 0:
        return {
            "error": f"over the {args.mem_limit_gb:g} GB limit after {run.wall:.0f} s",
            "gpu": True,
        }
    return {"error": last[:120], "gpu": False}


def bench_train(args: argparse.Namespace) -> None:
    q = args.quick
    cpu = {
        "name": "CPU (resnet18_c16.yaml)",
        "config": "resnet18_c16",
        "batch": 1 if q else 2,
        "crop": (16, 16, 16) if q else (48, 48, 32),
        "frames": 2 if q else 12,
        "image": (64, 48) if q else (160, 120),
        "warmup": 1,
        "steps": 1 if q else args.steps,
    }
    atlas = {
        "name": "ATLAS (atlas.yaml)",
        "config": "atlas",
        "batch": 1,
        "crop": (32, 32, 16) if q else (160, 160, 64),
        "frames": 2 if q else args.atlas_frames,
        "image": (128, 96) if q else (640, 480),
        # on the CPU one cold step (minutes); on a GPU warm steps as for the CPU recipe
        "warmup": int(args.device != "cpu"),
        "steps": 1 if args.device == "cpu" else args.steps,
    }
    quarter = dict(atlas, name="ATLAS, 1/4 of the crop", crop=(16, 16, 16) if q else (80, 80, 64))
    specs = [cpu] + ([] if "atlas" in args.skip else [atlas, quarter])
    print(
        f"\ntraining steps (losses + backward + Adam) on synthetic batches, one subprocess "
        f"each, on {args.device}"
        + (f", address space capped at {args.mem_limit_gb:g} GB" if args.device == "cpu" else "")
        + "; peak = peak resident set, VmHWM (and the CUDA allocator's peak)"
    )
    print(
        f"{'configuration':<24} {'batch':>5} {'crop':>10} {'frames':>6} {'image':>7} "
        f"{'params':>7} {'steps':>5} {'s/step':>7} {'fwd s':>6} {'cpu s':>6} {'peak GB':>7} "
        f"{'cuda GB':>7}  note"
    )
    for spec in specs:
        r = run_child(spec, args)
        crop = "x".join(map(str, spec["crop"]))
        image = "x".join(map(str, spec["image"]))
        head = f"{spec['name']:<24} {spec['batch']:>5} {crop:>10} {spec['frames']:>6} {image:>7}"
        if "error" in r:
            gpu = "; GPU needed" if r["gpu"] else ""
            print(
                f"{head} {'':>7} {'':>5} {'-':>7} {'-':>6} {'-':>6} {'-':>7} {'-':>7}  "
                f"not run: {r['error']}{gpu}"
            )
            continue
        times = r["times"]
        if spec["warmup"]:
            note = f"mean of {len(times)} after {spec['warmup']} warm-up (best {min(times):.2f} s)"
        else:
            note = "ONE step, no warm-up (first-call overhead included)"
        if spec["config"] == "atlas" and not q:
            note += f"; {spec['frames']} of ATLAS' 50 frames"
        if args.device == "cpu" and (np.mean(times) > 30 or r["peak_gb"] > 8):
            note += "; GPU needed"
        cuda_gb = f"{r['cuda_peak_gb']:>7.2f}" if r["cuda_peak_gb"] is not None else f"{'-':>7}"
        print(
            f"{head} {r['params_m']:>6.1f}M {len(times):>5} {np.mean(times):>7.2f} "
            f"{np.mean(r['forward']):>6.2f} {np.mean(r['cpu']):>6.2f} {r['peak_gb']:>7.2f} "
            f"{cuda_gb}  {note}"
        )
        sys.stdout.flush()


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.thp:  # torch backs CPU tensors of >= 2 MB with transparent huge pages
        os.environ["THP_MEM_ALLOC_ENABLE"] = "1"  # before torch is loaded
    threads = harness.set_threads(args.threads)
    if args.child:
        harness.emit_result(train_child(json.loads(args.child), args.device))
        return
    import torch

    print(
        f"model benchmark: torch {torch.__version__} on {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else "")
        + f", torch threads {threads}"
        f" of {os.cpu_count()} cores{', huge pages' if args.thp else ''}"
        f"{', quick' if args.quick else ''}"
    )
    if "backproject" not in args.skip:
        bench_backproject(args)
    if "train" not in args.skip:
        bench_train(args)


if __name__ == "__main__":
    main()
