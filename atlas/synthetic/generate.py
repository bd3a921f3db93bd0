"""Synthetic ScanNet-format scenes: procedural furnished rooms rendered by ray casting.

Writes the extracted ScanNet layout::

    ROOT/scans/sceneXXXX_00/color/N.jpg            RGB, JPEG
    ROOT/scans/sceneXXXX_00/depth/N.png            uint16 millimetres, 0 = no hit
    ROOT/scans/sceneXXXX_00/pose/N.txt             4x4 camera-to-world, metres, OpenCV axes
    ROOT/scans/sceneXXXX_00/intrinsic/{intrinsic,extrinsic}_{color,depth}.txt   4x4
    ROOT/scans/sceneXXXX_00/sceneXXXX_00.txt       ScanNet-style metadata
    ROOT/scans/sceneXXXX_00/sceneXXXX_00_vh_clean_2.ply   ground-truth mesh (Z-up)
    ROOT/scans/sceneXXXX_00/sceneXXXX_00.sens      optional, ScanNet .sens v4
    ROOT/scannetv2_{train,val,test}.txt            split lists

Everything is deterministic from the seed. The ground-truth mesh holds the triangles
that at least one rendered pixel saw (a scanned mesh only has what was scanned), with
vertex colours from the surface albedo.

Command line: ``python -m atlas.synthetic --out data/synthetic --scenes 3``.
"""

from __future__ import annotations

import argparse
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.geometry.mesh import Mesh, write_ply
from atlas.geometry.raycast import MeshRaycaster
from atlas.io_utils import atomic_dir
from atlas.readers.sens import SensHeader, write_sens
from atlas.synthetic.capture import CaptureNoise, exposure_gains, reported_poses
from atlas.synthetic.room import Room, generate_room, scan_path

SPLITS = ("train", "val", "test")


@dataclass
class SceneConfig:
    """How to make one synthetic scene.

    seed: everything derives from it; n_frames: 30-300 camera frames; width, height:
    image size in pixels (colour and depth alike); focal: pixels for 640-wide images
    (scaled with the width); edge: maximum triangle edge of the geometry, metres;
    jpeg_quality: colour JPEG quality; write_sens: also write a ScanNet ``.sens`` file;
    noise: the capture's imperfections (:class:`CaptureNoise`: pose error, exposure
    changes; none by default), drawn from their own random stream, so the room, path
    and images of a seed do not depend on them.
    """

    seed: int = 0
    n_frames: int = 100
    width: int = 640
    height: int = 480
    focal: float = 480.0
    edge: float = 0.03
    jpeg_quality: int = 92
    write_sens: bool = False
    noise: CaptureNoise = field(default_factory=CaptureNoise)

    def intrinsics(self) -> np.ndarray:
        f = self.focal * self.width / 640.0
        return np.array(
            [[f, 0.0, (self.width - 1) / 2], [0.0, f, (self.height - 1) / 2], [0.0, 0.0, 1.0]]
        )


@dataclass
class RenderedFrame:
    """color: (H, W, 3) uint8 RGB; depth_mm: (H, W) uint16 millimetres (0 = none);
    pose: (4, 4) camera-to-world."""

    color: np.ndarray
    depth_mm: np.ndarray
    pose: np.ndarray


def shade(room: Room, points: np.ndarray, normals: np.ndarray, view_dirs: np.ndarray) -> np.ndarray:
    """Diffuse shading factor (N,) for hits: ambient plus two ceiling lights, Lambertian,
    with normals turned toward the camera."""
    normals = np.where((np.sum(normals * view_dirs, axis=1) > 0)[:, None], -normals, normals)
    lights = np.array(
        [
            [room.size[0] * 0.3, room.size[1] * 0.4, room.size[2] - 0.2],
            [room.size[0] * 0.7, room.size[1] * 0.6, room.size[2] - 0.2],
        ],
        dtype=np.float32,
    )
    intensity = np.full(len(points), 0.3, np.float32)
    for light, power in zip(lights, (0.55, 0.35), strict=True):
        to_light = light - points
        dist = np.maximum(np.sqrt(np.einsum("ij,ij->i", to_light, to_light)), 1e-6)
        lambert = np.clip(np.einsum("ij,ij->i", normals, to_light) / dist, 0, 1)
        intensity += power * lambert * np.minimum(1.0, (2.5 / dist) ** 2)
    return intensity


def render_frame(
    room: Room, caster: MeshRaycaster, K: np.ndarray, pose: np.ndarray, width: int, height: int
) -> tuple[RenderedFrame, np.ndarray]:
    """Render colour and depth of one view; also returns the (H, W) hit triangle ids."""
    hit = caster.render(K, pose, width, height)
    ok = hit.hit
    faces = room.geometry.faces[hit.triangle_ids[ok]]
    material = room.geometry.material[faces[:, 0]]
    normals = room.geometry.normals[faces[:, 0]].astype(np.float32)
    points = hit.points[ok]
    albedo = room.textures.sample(material, points, normals)
    view = points - pose[:3, 3]
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    rgb = np.zeros((height, width, 3), np.float32)
    rgb[ok] = albedo * shade(room, points, normals, view)[:, None]
    color = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    depth_mm = np.where(ok, np.rint(np.where(ok, hit.depth, 0) * 1000), 0)
    depth_mm = np.where(depth_mm > 65535, 0, depth_mm).astype(np.uint16)
    return RenderedFrame(color, depth_mm, pose), hit.triangle_ids


def ground_truth_mesh(room: Room, seen_faces: np.ndarray) -> Mesh:
    """The faces any view saw, with vertex colours = albedo at each vertex."""
    geometry = room.geometry
    faces = geometry.faces[seen_faces]
    used, inverse = np.unique(faces, return_inverse=True)
    albedo = room.textures.sample(
        geometry.material[used], geometry.vertices[used], geometry.normals[used]
    )
    colors = np.clip(np.rint(albedo * 255), 0, 255).astype(np.uint8)
    return Mesh(geometry.vertices[used], inverse.reshape(-1, 3), colors)


def _write_matrix(path: Path, matrix: np.ndarray) -> None:
    np.savetxt(path, matrix, fmt="%.9f")


def _jpeg_bytes(color: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(color).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _png_bytes(depth_mm: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(depth_mm).save(buf, format="PNG")
    return buf.getvalue()


def scene_name(index: int) -> str:
    return f"scene{index:04d}_00"


def make_scene(cfg: SceneConfig) -> tuple[Room, np.ndarray]:
    """The room and its scan path (poses (N, 4, 4)) for a config, deterministic."""
    if not 2 <= cfg.n_frames:
        raise ValueError(f"n_frames must be at least 2, got {cfg.n_frames}")
    rng = np.random.default_rng(cfg.seed)
    size = np.array([rng.uniform(3, 8), rng.uniform(3, 8), rng.uniform(2.4, 3.0)])
    poses = scan_path(size, cfg.n_frames, rng)
    room = generate_room(rng, camera_xy=poses[:, :2, 3], size=size, edge=cfg.edge)
    return room, poses


def write_scene(scene_dir: Path, cfg: SceneConfig, progress: bool = False) -> Path:
    """Render and write one scene into ``scene_dir`` (atomically: built in a temporary
    folder beside it, then renamed). Returns ``scene_dir``."""
    scene_dir = Path(scene_dir)
    with atomic_dir(scene_dir) as tmp:
        _render_scene_files(tmp, scene_dir.name, cfg, progress)
    return scene_dir


def _render_scene_files(tmp: Path, name: str, cfg: SceneConfig, progress: bool) -> None:
    from tqdm import tqdm

    for sub in ("color", "depth", "pose", "intrinsic"):
        (tmp / sub).mkdir(parents=True)
    cfg.noise.check()
    room, poses = make_scene(cfg)
    noise_rng = np.random.default_rng([cfg.seed, 1])  # apart from the room's stream
    reported = reported_poses(poses, cfg.noise, noise_rng)
    gains = exposure_gains(cfg.n_frames, cfg.noise, noise_rng)
    K = cfg.intrinsics()
    K4 = np.eye(4)
    K4[:3, :3] = K
    for kind in ("color", "depth"):
        _write_matrix(tmp / "intrinsic" / f"intrinsic_{kind}.txt", K4)
        _write_matrix(tmp / "intrinsic" / f"extrinsic_{kind}.txt", np.eye(4))
    caster = MeshRaycaster(Mesh(room.geometry.vertices, room.geometry.faces))
    seen = np.zeros(len(room.geometry.faces), dtype=bool)
    color_jpegs: list[bytes] = []
    depth_pngs: list[np.ndarray] = []
    frames = tqdm(range(cfg.n_frames), desc=f"rendering {name}", unit="frame", disable=not progress)
    for i in frames:
        frame, tri_ids = render_frame(room, caster, K, poses[i], cfg.width, cfg.height)
        seen[tri_ids[tri_ids >= 0]] = True
        color = frame.color
        if gains[i] != 1:
            color = np.clip(np.rint(color * gains[i]), 0, 255).astype(np.uint8)
        jpeg = _jpeg_bytes(color, cfg.jpeg_quality)
        (tmp / "color" / f"{i}.jpg").write_bytes(jpeg)
        (tmp / "depth" / f"{i}.png").write_bytes(_png_bytes(frame.depth_mm))
        _write_matrix(tmp / "pose" / f"{i}.txt", reported[i])
        if cfg.write_sens:
            color_jpegs.append(jpeg)
            depth_pngs.append(frame.depth_mm)
    write_ply(ground_truth_mesh(room, seen), tmp / f"{name}_vh_clean_2.ply")
    meta = {
        "axisAlignment": " ".join(
            ["1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1", "0", "0", "0", "0", "1"]
        ),
        "colorHeight": cfg.height,
        "colorWidth": cfg.width,
        "depthHeight": cfg.height,
        "depthWidth": cfg.width,
        "fx_color": K[0, 0],
        "fy_color": K[1, 1],
        "mx_color": K[0, 2],
        "my_color": K[1, 2],
        "fx_depth": K[0, 0],
        "fy_depth": K[1, 1],
        "mx_depth": K[0, 2],
        "my_depth": K[1, 2],
        "numColorFrames": cfg.n_frames,
        "numDepthFrames": cfg.n_frames,
        "sceneType": "synthetic",
        "seed": cfg.seed,
        "objects": ",".join(kind for kind, _, _ in room.objects),
        **{f"noise_{k}": v for k, v in asdict(cfg.noise).items()},
    }
    (tmp / f"{name}.txt").write_text("".join(f"{k} = {v}\n" for k, v in meta.items()))
    if cfg.write_sens:
        header = SensHeader(
            K_color=K,
            K_depth=K,
            color_size=(cfg.width, cfg.height),
            depth_size=(cfg.width, cfg.height),
        )
        write_sens(
            tmp / f"{name}.sens",
            header,
            zip(reported, color_jpegs, depth_pngs, strict=True),
            cfg.n_frames,
        )


def split_of(index: int) -> str:
    """Deterministic split: 8 of every 10 scenes train, 1 val, 1 test."""
    return {8: "val", 9: "test"}.get(index % 10, "train")


def generate_dataset(
    root: str | Path,
    n_scenes: int,
    base: SceneConfig | None = None,
    first_index: int = 0,
    progress: bool = True,
) -> list[Path]:
    """Write ``n_scenes`` scenes (seeds ``base.seed + index``) under ``root/scans`` plus the
    split lists; scenes already complete are kept (resumable). Returns the scene folders."""
    from dataclasses import replace

    base = base or SceneConfig()
    root = Path(root)
    (root / "scans").mkdir(parents=True, exist_ok=True)
    dirs = []
    for index in range(first_index, first_index + n_scenes):
        scene_dir = root / "scans" / scene_name(index)
        if not (scene_dir / f"{scene_dir.name}_vh_clean_2.ply").exists():
            write_scene(scene_dir, replace(base, seed=base.seed + index), progress=progress)
        dirs.append(scene_dir)
    existing = sorted(
        p.name for p in (root / "scans").iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    for split in SPLITS:
        names = [n for n in existing if split_of(int(n[5:9])) == split]
        (root / f"scannetv2_{split}.txt").write_text("".join(f"{n}\n" for n in names))
    return dirs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="data/synthetic", help="dataset root folder")
    parser.add_argument("--scenes", type=int, default=1, help="number of scenes")
    parser.add_argument("--first", type=int, default=0, help="index of the first scene")
    parser.add_argument("--seed", type=int, default=0, help="base seed (scene i uses seed+i)")
    parser.add_argument("--frames", type=int, default=100, help="frames per scene (30-300)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--sens", action="store_true", help="also write a ScanNet .sens file")
    parser.add_argument(
        "--pose-noise-cm", type=float, default=0.0, help="reported position error, cm per axis"
    )
    parser.add_argument(
        "--pose-noise-deg", type=float, default=0.0, help="reported orientation error per axis"
    )
    parser.add_argument(
        "--exposure-noise", type=float, default=0.0, help="std of the log brightness gain"
    )
    args = parser.parse_args(argv)
    for flag, value, low in (
        ("--scenes", args.scenes, 1),
        ("--first", args.first, 0),
        ("--width", args.width, 16),
        ("--height", args.height, 16),
    ):
        if value < low:  # before any scene is written
            parser.error(f"argument {flag}: must be at least {low}, got {value}")
    cfg = SceneConfig(
        seed=args.seed,
        n_frames=args.frames,
        width=args.width,
        height=args.height,
        write_sens=args.sens,
        noise=CaptureNoise(
            pose_translation=args.pose_noise_cm / 100,
            pose_rotation_deg=args.pose_noise_deg,
            exposure=args.exposure_noise,
        ),
    )
    try:
        cfg.noise.check()
    except ValueError as err:  # before any scene is written
        parser.error(str(err))
    for d in generate_dataset(args.out, args.scenes, cfg, first_index=args.first):
        print(d)


if __name__ == "__main__":
    main()
