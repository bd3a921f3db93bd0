"""Scene preparation: ground-truth TSDFs at several voxel sizes, an index, a mesh.

A prepared scene is a folder::

    index.json        scene, dataset, source, intrinsics, image sizes, per-frame files and
                      (aligned) camera-to-world poses, validity, alignment, voxel sizes
    tsdf_04.npz ...   VoxelGrid per voxel size (cm in the name); all share one origin, so
                      voxel i of the 8 cm grid is voxel 2i of the 4 cm grid
    mesh.ply          ground-truth mesh (the dataset's own, aligned; else the 4 cm TSDF's)
    preview.png       a picture of it
    frames/           colour and depth extracted from a .sens file (only for those)

Raw data is only read. A scene is built in a hidden folder beside its destination and
renamed when complete, so a killed run leaves no partial scene and a re-run skips the
finished ones.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from atlas.geometry import Mesh, TSDFFusion, extract_mesh, frustum_bounds, read_ply, write_ply
from atlas.geometry.render import save_preview
from atlas.io_utils import atomic_dir
from atlas.readers.alignment import AlignedReader, estimate_alignment
from atlas.readers.frames import SceneReader
from atlas.readers.prepared import (
    INDEX,
    FrameEntry,
    PreparedIndex,
    is_prepared,
    prior_name,
    tsdf_name,
)
from atlas.stereo.pipeline import (
    StereoConfig,
    fuse_prior,
    prior_stereo_config,
    stereo_depths,
)
from atlas.stereo.presets import preset_name, stereo_to_dict

log = logging.getLogger(__name__)


@dataclass
class PrepareSettings:
    """voxel_sizes: metres, finest first, each an integer multiple of the first;
    max_depth: depth cut (metres); trunc_voxels: truncation in voxels; margin: metres kept
    around the observed region; align: ``auto``, ``none``, ``dataset`` (the dataset's
    default) or an up axis (``-y``...); device: torch device for fusion;
    skip_bad_frames: a missing or unreadable frame file is skipped with a warning (and
    counted) instead of failing the scene; prior_voxel_size: when positive, also run
    plane-sweep stereo on the colour frames and store the fused stereo prior a model
    takes as input (``prior_<cm>.npz``, see :func:`atlas.stereo.pipeline.fuse_prior`)
    with the ``stereo`` settings (which the model's inference must share)."""

    voxel_sizes: tuple[float, ...] = (0.04, 0.08, 0.16)
    max_depth: float = 3.0
    trunc_voxels: float = 3.0
    margin: float = 0.2
    align: str = "dataset"
    device: str = "cpu"
    skip_bad_frames: bool = False
    prior_voxel_size: float = 0.0
    stereo: StereoConfig = field(default_factory=prior_stereo_config)

    def check(self) -> None:
        """``ValueError`` naming the first setting no scene could be prepared with, so a
        run stops before its first scene (``device`` is checked by
        :func:`atlas.config.resolve_device`)."""
        from atlas.readers.alignment import check_up

        sizes = list(self.voxel_sizes)
        if not sizes or any(
            not isinstance(v, int | float) or not math.isfinite(v) or v <= 0 for v in sizes
        ):
            raise ValueError(f"voxel_sizes must be positive sizes in metres, got {sizes}")
        if any(b <= a for a, b in itertools.pairwise(sizes)):
            raise ValueError(f"voxel_sizes must be different sizes, finest first, got {sizes}")
        for vs in sizes[1:]:
            k = vs / sizes[0]
            if k < 1 or abs(k - round(k)) > 1e-6:
                raise ValueError(
                    f"voxel_sizes must be the finest first, each an integer multiple of it: "
                    f"{vs} is not one of {sizes[0]} (got {sizes})"
                )
        for name, low, strict in (
            ("max_depth", 0.0, True),
            ("trunc_voxels", 0.0, True),
            ("margin", 0.0, False),
            ("prior_voxel_size", 0.0, False),
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or not math.isfinite(value)  # nan and inf are no sizes
                or value < low
                or (strict and value == low)
            ):
                rule = f"> {low:g}" if strict else f">= {low:g}"
                raise ValueError(f"{name} must be {rule}, got {value!r}")
        check_up(self.align, extra=("dataset",))


def _multi_scale_fusions(
    lo: np.ndarray,
    hi: np.ndarray,
    settings: PrepareSettings,
) -> list[TSDFFusion]:
    """Volumes for every voxel size sharing the finest one's origin (snapped to the
    coarsest voxel size, so the coarse grids nest exactly)."""
    base = settings.voxel_sizes[0]
    coarsest = settings.voxel_sizes[-1]
    origin = np.floor(lo / coarsest) * coarsest
    fusions = []
    for vs in settings.voxel_sizes:
        k = vs / base
        if abs(k - round(k)) > 1e-6:
            raise ValueError(f"voxel size {vs} is not an integer multiple of {base}")
        shape = tuple(np.ceil((hi - origin) / vs).astype(int) + 1)
        fusions.append(
            TSDFFusion(
                origin,
                shape,
                vs,
                trunc_voxels=settings.trunc_voxels,
                max_depth=settings.max_depth,
                with_color=vs == base,
                mode="frustum",
                device=settings.device,
            )
        )
    return fusions


def _crop_to_observed(grids: list, margin: float) -> list:
    """Crop all grids to the coarsest grid's observed box plus ``margin`` (same world box
    for every grid, start indices multiples of each size ratio)."""
    coarse = grids[-1]
    obs = np.argwhere(coarse.observed)
    if len(obs) == 0:
        return grids
    pad = int(np.ceil(margin / coarse.voxel_size))
    lo = np.maximum(obs.min(0) - pad, 0)
    hi = np.minimum(obs.max(0) + pad + 1, coarse.shape)
    out = []
    for g in grids:
        k = round(coarse.voxel_size / g.voxel_size)
        a, b = lo * k, np.minimum(hi * k, g.shape)
        sl = tuple(slice(int(x), int(y)) for x, y in zip(a, b, strict=True))
        out.append(
            type(g)(
                g.tsdf[sl],
                g.weight[sl],
                g.origin + a * g.voxel_size,
                g.voxel_size,
                None if g.color is None else g.color[sl],
                g.trunc_voxels,
            )
        )
    return out


def _extract_sens_frame(frame, scene_dir: Path) -> tuple[str, str]:
    """Write a streamed frame's colour and depth (mm PNG) under ``scene_dir/frames``;
    returns their paths relative to ``scene_dir`` (the folder is renamed when done)."""
    color = Path("frames") / "color" / f"{frame.frame_id}.jpg"
    depth = Path("frames") / "depth" / f"{frame.frame_id}.png"
    Image.fromarray(frame.color).save(scene_dir / color, quality=95)
    buf = io.BytesIO()
    Image.fromarray(np.round(frame.depth * 1000).astype(np.uint16)).save(buf, format="PNG")
    (scene_dir / depth).write_bytes(buf.getvalue())
    return str(color), str(depth)


def prepare_scene(
    reader: SceneReader,
    out_dir: str | Path,
    settings: PrepareSettings,
    dataset_kind: str = "raw",
    dataset_up: str = "auto",
) -> dict:
    """Prepare one scene into ``out_dir / reader.name``; returns its summary."""
    with atomic_dir(Path(out_dir) / reader.name) as tmp:
        summary = _build(reader, tmp, settings, dataset_kind, dataset_up)
    return summary


def _read_frames(reader: SceneReader, indices: np.ndarray, skip_bad: bool, bad: dict[int, str]):
    """(index, frame) pairs; with ``skip_bad`` an unreadable frame is logged, recorded in
    ``bad`` and skipped (files of random-access readers; a damaged stream still fails)."""
    if reader.sequential:
        yield from zip(indices, reader.iter_frames(indices), strict=True)
        return
    for index in indices:
        try:
            yield index, reader.read_frame(int(index))
        except (OSError, ValueError) as err:
            if not skip_bad:
                raise
            log.warning("%s: skipping a bad frame: %s", reader.name, err)
            bad[int(index)] = str(err)


def _build(
    reader: SceneReader, tmp: Path, settings: PrepareSettings, dataset_kind: str, dataset_up: str
) -> dict:
    if reader.K_depth is None or reader.depth_size is None:
        raise ValueError(f"{reader.name}: no depth maps, so no ground truth can be fused")
    valid = reader.valid
    n_skipped = int((~valid).sum())
    if not valid.any():
        raise ValueError(f"{reader.name}: no frame has a finite pose ({len(valid)} frames)")
    if n_skipped:
        log.warning(
            "%s: skipping %d of %d frames with non-finite poses", reader.name, n_skipped, len(valid)
        )
    up = dataset_up if settings.align == "dataset" else settings.align
    alignment = estimate_alignment(reader, up)
    T = alignment.transform
    poses = reader.poses.copy()
    poses[valid] = T @ poses[valid]
    lo, hi = frustum_bounds(reader.K_depth, poses[valid], reader.depth_size, settings.max_depth)
    fusions = _multi_scale_fusions(lo, hi, settings)
    frames_dir = tmp / "frames"
    frame_records = []
    indices = np.flatnonzero(valid)
    bad_frames: dict[int, str] = {}
    frames = _read_frames(reader, indices, settings.skip_bad_frames, bad_frames)
    for index, frame in tqdm(
        frames, total=len(indices), desc=f"fusing {reader.name}", unit="frame", leave=False
    ):
        pose = poses[index]
        color = np.asarray(Image.fromarray(frame.color).resize(reader.depth_size, Image.BILINEAR))
        for f in fusions:
            f.integrate(
                frame.depth,
                reader.K_depth,
                pose,
                color if f.color is not None else None,
                name=frame.name,
            )
        raw_files = reader.frame_files(int(index))
        if raw_files is None:
            (frames_dir / "color").mkdir(parents=True, exist_ok=True)
            (frames_dir / "depth").mkdir(parents=True, exist_ok=True)
            files = list(_extract_sens_frame(frame, tmp))
        else:  # raw files by absolute path, so the index works from any directory
            files = [str(Path(p).resolve()) if p else None for p in raw_files]
        frame_records.append((int(index), files))
    valid[list(bad_frames)] = False
    grids = _crop_to_observed([f.to_grid() for f in fusions], settings.margin)
    for g in grids:
        g.save(tmp / tsdf_name(g.voxel_size))
    priors, prior_stereo, prior_preset = {}, {}, ""
    if settings.prior_voxel_size > 0:
        prior_stereo, prior_preset = stereo_to_dict(settings.stereo), preset_name(settings.stereo)
        vs = settings.prior_voxel_size
        depths = stereo_depths(AlignedReader(reader, alignment), settings.stereo, settings.device)
        fuse_prior(depths, settings.stereo, vs, settings.device).save(tmp / prior_name(vs))
        priors[str(vs)] = prior_name(vs)
    if reader.gt_mesh_path is not None:
        raw_mesh = read_ply(reader.gt_mesh_path)
        verts = raw_mesh.vertices.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        mesh = Mesh(verts, raw_mesh.faces, raw_mesh.colors)
        mesh_source = str(reader.gt_mesh_path)
    else:
        mesh = extract_mesh(grids[0])
        mesh_source = f"fused depth at {grids[0].voxel_size} m"
    write_ply(mesh, tmp / "mesh.ply")
    save_preview([(f"{reader.name} ground truth", mesh)], tmp / "preview.png")
    files_of = dict(frame_records)
    frames = []
    for i, frame_id in enumerate(reader.frame_ids):
        color, depth = files_of.get(i, (None, None))
        pose = poses[i].tolist() if valid[i] else None
        frames.append(FrameEntry(int(frame_id), bool(valid[i]), color, depth, pose))
    source = getattr(reader, "scene_dir", getattr(reader, "folder", getattr(reader, "path", "")))
    index = PreparedIndex(
        scene=reader.name,
        dataset=dataset_kind,
        source=str(reader.source or source),
        K_color=reader.K_color.tolist(),
        K_depth=reader.K_depth.tolist(),
        color_size=list(reader.color_size),
        depth_size=list(reader.depth_size),
        alignment={
            "transform": T.tolist(),
            "method": alignment.method,
            "floor_inliers": alignment.floor_inliers,
        },
        voxel_sizes=list(settings.voxel_sizes),
        tsdf={str(g.voxel_size): tsdf_name(g.voxel_size) for g in grids},
        tsdf_shape={str(g.voxel_size): list(g.shape) for g in grids},
        origin=grids[0].origin.tolist(),
        prior=priors,
        prior_stereo=prior_stereo,
        prior_preset=prior_preset,
        mesh="mesh.ply",
        mesh_source=mesh_source,
        frames_total=len(valid),
        frames_skipped=n_skipped,
        frames_unreadable=list(bad_frames.values()),
        frames=frames,
    )
    (tmp / INDEX).write_text(json.dumps(index.to_json(), indent=1))
    return {
        "scene": reader.name,
        "frames": int(valid.sum()),
        "skipped_frames": n_skipped,
        "unreadable_frames": len(bad_frames),
        "alignment": alignment.method,
        "voxels": list(grids[0].shape),
    }


@dataclass
class DatasetSummary:
    """Scene names prepared now, skipped (already prepared) and failed (name -> reason)."""

    done: list[str]
    skipped: list[str]
    failed: dict[str, str]

    def lines(self) -> list[str]:
        out = [
            f"prepared {len(self.done)}, already done {len(self.skipped)}, "
            f"failed {len(self.failed)}"
        ]
        out += [f"  FAILED {name}: {reason}" for name, reason in self.failed.items()]
        return out


def shard_of(names: list[str], shard: int, num_shards: int) -> list[str]:
    """Every ``num_shards``-th name starting at ``shard`` (shards partition the list)."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard must be in [0, num_shards), got {shard} of {num_shards}")
    return names[shard::num_shards]


def prepare_dataset(
    dataset,
    out_dir: str | Path,
    settings: PrepareSettings,
    shard: int = 0,
    num_shards: int = 1,
    stop_on_error: bool = False,
) -> DatasetSummary:
    """Prepare this shard's scenes of a raw dataset (``atlas.readers.datasets``) into
    ``out_dir``, skipping finished ones; a failing scene is reported, not fatal (unless
    ``stop_on_error``)."""
    settings.check()
    out_dir = Path(out_dir)
    openers = dict(dataset.scenes())
    if not openers:
        raise ValueError(f"{getattr(dataset, 'root', dataset)}: no scenes to prepare")
    names = shard_of(sorted(openers), shard, num_shards)
    for name in names:  # before any work, not after a scene's
        if (out_dir / name).exists() and not (out_dir / name).is_dir():
            raise NotADirectoryError(
                f"{out_dir / name}: a file is where scene {name}'s prepared folder goes; "
                "move it away or choose another out_dir"
            )
    summary = DatasetSummary([], [], {})
    for name in tqdm(names, desc="scenes", unit="scene"):
        if is_prepared(out_dir / name):
            summary.skipped.append(name)
            continue
        try:
            prepare_scene(openers[name](), out_dir, settings, dataset.kind, dataset.up)
            summary.done.append(name)
        except (OSError, ValueError) as err:
            if stop_on_error:
                raise
            log.error("%s: %s", name, err)
            summary.failed[name] = str(err)
    return summary
