"""Training and validation items over prepared scenes, and the Lightning DataModule.

An item is a set of frames and the ground-truth TSDF of a volume they see:

    images      (N, 3, H, W) float32 RGB in [0, 1], resized to ``image_size``
    K           (N, 3, 3) intrinsics of the resized images
    poses       (N, 4, 4) camera-to-world in the item's (crop) frame
    projection  (N, 3, 4) ``K @ inv(pose)[:3]``
    origin      (3,) world position of voxel (0,0,0)'s centre (0 for training crops)
    shape       (3,) int64 voxels at the finest scale (whole scenes padded to a multiple
                of the coarsest/finest ratio; padding is unobserved)
    voxel_size  () finest voxel size, metres
    tsdf_<cm>   (X, Y, Z) float32 target per scale (e.g. tsdf_04, tsdf_08, tsdf_16)
    observed_<cm> (X, Y, Z) bool: the target is known there
    frame_ids   (N,) int64; scene: the scene's name; scene_dir: its prepared folder
    prior_tsdf, prior_observed (X, Y, Z) at the finest scale, with ItemConfig.prior

Training items are crops (default 160x160x64 voxels at 4 cm) at a random position and
rotation about +z; poses and targets are transformed together. Validation items are the
whole prepared scene, unrotated. A training item's randomness (crop, rotation, frames,
prior dropout) comes from the item seed of its key (``atlas.training.resumable``): the run's
seed and the item's position in the run fix every item, so a resumed run draws the
same items as an uninterrupted one.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from atlas.geometry.camera import scale_intrinsics
from atlas.geometry.voxel_grid import VoxelGrid
from atlas.model.config import ModelConfig
from atlas.model.contract import InputContract, make_contract
from atlas.readers.image_io import read_color
from atlas.readers.prepared import INDEX, frame_path, is_prepared, load_index, scale_key
from atlas.readers.scannet import read_split
from atlas.stereo.pipeline import StereoConfig
from atlas.stereo.presets import stereo_differences, stereo_from_dict, unrecorded_prior
from atlas.training.crops import (
    crop_centres,
    random_crop_transform,
    sample_grid,
    smooth_displacement,
)
from atlas.training.resumable import ItemKey, ResumableSampler

log = logging.getLogger(__name__)


@dataclass
class ItemConfig:
    """n_frames: frames per item; frame_selection: ``random`` (among the frames that see
    the volume) or ``even`` (evenly spaced over the valid frames); image_size: (width,
    height); crop_voxels: training volume at the finest size; voxel_sizes: scales, finest
    first; rotation: ``none``, ``90`` or ``any`` (about +z); prior: ``stereo`` adds the
    stereo prior
    (``prior_tsdf``, ``prior_observed`` at the finest scale; the scenes must be prepared
    with ``prior_voxel_size`` equal to it); prior_dropout: share of training items whose
    prior is replaced by an empty one (all unobserved, TSDF 1: what inference gives a
    single frame or a sequence with no baseline), so the network also learns to work
    from image features alone; prior_jitter: metres, the standard deviation of a smooth
    random displacement (lattice ``prior_jitter_spacing`` metres) of where training
    items read their prior, so its surfaces are shifted and bent against the targets
    the way real stereo's errors place them (0: off); val_frames: frames of a
    validation item."""

    n_frames: int = 20
    frame_selection: str = "random"
    image_size: tuple[int, int] = (320, 240)
    crop_voxels: tuple[int, int, int] = (160, 160, 64)
    voxel_sizes: tuple[float, ...] = (0.04, 0.08, 0.16)
    rotation: str = "any"
    prior: str = "none"
    prior_dropout: float = 0.0
    prior_jitter: float = 0.0
    prior_jitter_spacing: float = 0.32
    val_frames: int = 60


class PreparedScene:
    """A prepared scene's index, its valid frames and (lazily) its grids."""

    def __init__(self, scene_dir: Path) -> None:
        self.dir = Path(scene_dir)
        self.index = load_index(self.dir)
        self.name = self.index.scene
        frames = [f for f in self.index.frames if f.valid]
        if not frames:
            raise ValueError(f"{self.dir}: no valid frames")
        self.frame_ids = np.array([f.frame_id for f in frames])
        self.colors = [frame_path(self.dir, f.color) for f in frames]
        self.poses = np.array([f.pose for f in frames], dtype=np.float64)
        self.K_color = np.array(self.index.K_color)
        self.color_size = tuple(self.index.color_size)

    def grid(self, voxel_size: float) -> VoxelGrid:
        """The ground truth at ``voxel_size`` (recently used grids stay loaded, a few
        scenes' worth, so memory stays bounded over a large dataset)."""
        name = self.index.tsdf.get(str(voxel_size))
        if name is None:
            raise ValueError(
                f"{self.dir}: no ground truth at {voxel_size} m (has {sorted(self.index.tsdf)})"
            )
        return _load_grid(self.dir / name)

    def prior(self, voxel_size: float) -> VoxelGrid:
        """The stereo prior at ``voxel_size`` (see ``PrepareSettings.prior_voxel_size``)."""
        name = self.index.prior.get(str(voxel_size))
        if name is None:
            raise ValueError(
                f"{self.dir}: no stereo prior at {voxel_size} m; prepare with "
                f"prior_voxel_size={voxel_size}"
            )
        return _load_grid(self.dir / name)

    def observed_bounds(self, voxel_size: float) -> tuple[np.ndarray, np.ndarray]:
        g = self.grid(voxel_size)
        idx = np.argwhere(g.observed)
        return g.origin + idx.min(0) * g.voxel_size, g.origin + idx.max(0) * g.voxel_size


@functools.lru_cache(maxsize=12)
def _load_grid(path: Path) -> VoxelGrid:
    return VoxelGrid.load(path)


def visible_share(
    points: np.ndarray, K: np.ndarray, poses: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """(V,) share of world points (P, 3) inside each view's image and in front of it."""
    world_to_cam = np.linalg.inv(poses)
    cam = points @ world_to_cam[:, :3, :3].transpose(0, 2, 1) + world_to_cam[:, None, :3, 3]
    z = cam[..., 2]
    uv = cam[..., :2] / np.maximum(z, 1e-6)[..., None] * K[[0, 1], [0, 1]] + K[:2, 2]
    inside = (
        (z > 0.1)
        & (uv[..., 0] >= 0)
        & (uv[..., 0] <= size[0] - 1)
        & (uv[..., 1] >= 0)
        & (uv[..., 1] <= size[1] - 1)
    )
    return inside.mean(axis=1)


class SceneItems(Dataset):
    """Items over prepared scenes; ``train`` picks random crops, else whole scenes."""

    def __init__(
        self, scene_dirs: list[Path], cfg: ItemConfig, train: bool, items_per_scene: int = 1
    ) -> None:
        if not scene_dirs:
            raise ValueError("no prepared scenes for this split")
        self.scenes = [PreparedScene(d) for d in scene_dirs]
        if cfg.prior not in ("stereo", "none"):
            raise ValueError(f"item prior must be stereo or none, got {cfg.prior!r}")
        if not 0.0 <= cfg.prior_dropout <= 1.0:
            raise ValueError(f"item prior_dropout must be in [0, 1], got {cfg.prior_dropout}")
        if not (cfg.prior_jitter >= 0 and cfg.prior_jitter_spacing > 0):
            raise ValueError(
                "item prior_jitter must be >= 0 and prior_jitter_spacing > 0 metres, got "
                f"{cfg.prior_jitter} and {cfg.prior_jitter_spacing}"
            )
        self.cfg = cfg
        self.train = train
        self.items_per_scene = items_per_scene if train else 1

    def __len__(self) -> int:
        return len(self.scenes) * self.items_per_scene

    def __getitem__(self, key: int | ItemKey) -> dict:
        """Item ``key``: an index (its own seed), or ``(index, item_seed)`` as
        ``ResumableSampler`` draws them for training."""
        index, seed = key if isinstance(key, tuple) else (int(key), int(key))
        scene = self.scenes[index % len(self.scenes)]
        rng = np.random.default_rng(seed)
        cfg = self.cfg
        sizes = cfg.voxel_sizes
        if self.train:
            crop_size = np.array(cfg.crop_voxels) * sizes[0]
            lo, hi = scene.observed_bounds(sizes[-1])
            crop_from_world = random_crop_transform(rng, lo, hi, crop_size, sizes[-1], cfg.rotation)
            origin = np.zeros(3)
            shape = np.array(cfg.crop_voxels)
        else:  # the whole scene, padded to a multiple of the coarsest/finest ratio
            crop_from_world = np.eye(4)
            origin = scene.grid(sizes[0]).origin
            ratio = round(sizes[-1] / sizes[0])
            shape = -(-np.array(scene.grid(sizes[0]).shape) // ratio) * ratio
        targets = {}
        fine_world = None
        for vs in sizes:
            k = round(vs / sizes[0])
            centres = origin + crop_centres(tuple(-(-int(n) // k) for n in shape), vs)
            world = (centres - crop_from_world[:3, 3]) @ crop_from_world[:3, :3]
            fine_world = world if fine_world is None else fine_world
            tsdf, observed = sample_grid(scene.grid(vs), world)
            targets[f"tsdf_{scale_key(vs)}"] = torch.from_numpy(tsdf)
            targets[f"observed_{scale_key(vs)}"] = torch.from_numpy(observed)
        if cfg.prior == "stereo":
            prior_at = fine_world
            if self.train and cfg.prior_jitter > 0:
                prior_at = fine_world + smooth_displacement(
                    rng, fine_world, cfg.prior_jitter, cfg.prior_jitter_spacing
                )
            tsdf, observed = sample_grid(scene.prior(sizes[0]), prior_at)
            if self.train and cfg.prior_dropout > 0 and rng.random() < cfg.prior_dropout:
                tsdf, observed = np.ones_like(tsdf), np.zeros_like(observed)
            targets["prior_tsdf"] = torch.from_numpy(tsdf)
            targets["prior_observed"] = torch.from_numpy(observed)
        chosen = self._choose_frames(scene, crop_from_world, targets, sizes, rng)
        return {
            **self._views(scene, chosen, crop_from_world),
            "origin": torch.tensor(origin, dtype=torch.float32),
            "voxel_size": torch.tensor(sizes[0], dtype=torch.float32),
            "shape": torch.tensor(shape, dtype=torch.int64),
            "frame_ids": torch.from_numpy(scene.frame_ids[chosen]),
            "scene": scene.name,
            "scene_dir": str(scene.dir),
            **targets,
        }

    def _choose_frames(
        self,
        scene: PreparedScene,
        crop_from_world: np.ndarray,
        targets: dict,
        sizes: tuple[float, ...],
        rng: np.random.Generator,
    ) -> np.ndarray:
        n = len(scene.frame_ids)
        k = min(self.cfg.n_frames if self.train else self.cfg.val_frames, n)
        if self.cfg.frame_selection == "even" or not self.train:
            return np.linspace(0, n - 1, k).round().astype(int)
        if self.cfg.frame_selection != "random":
            raise ValueError(
                f"frame_selection must be random or even, got {self.cfg.frame_selection!r}"
            )
        # Frames that see the crop's observed coarse voxels (a sample of them).
        observed = targets[f"observed_{scale_key(sizes[-1])}"].numpy()
        pts = np.argwhere(observed) * sizes[-1]
        if len(pts):
            pts = pts[rng.choice(len(pts), min(len(pts), 256), replace=False)]
            world = (pts - crop_from_world[:3, 3]) @ crop_from_world[:3, :3]
            share = visible_share(world, scene.K_color, scene.poses, scene.color_size)
            seeing = np.flatnonzero(share > 0.05)
        else:
            seeing = np.zeros(0, int)
        pool = seeing if len(seeing) >= k else np.arange(n)
        return np.sort(rng.choice(pool, k, replace=False))

    def _views(self, scene: PreparedScene, chosen: np.ndarray, crop_from_world: np.ndarray) -> dict:
        w, h = self.cfg.image_size
        images = []
        for i in chosen:
            color = read_color(scene.colors[i], scene.color_size)
            img = Image.fromarray(color).resize((w, h), Image.BILINEAR)
            images.append(np.asarray(img))
        K = scale_intrinsics(scene.K_color, w / scene.color_size[0], h / scene.color_size[1])
        poses = crop_from_world @ scene.poses[chosen]
        projection = K @ np.linalg.inv(poses)[:, :3]
        n = len(chosen)
        return {
            "images": torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255,
            "K": torch.from_numpy(np.broadcast_to(K, (n, 3, 3)).astype(np.float32)),
            "poses": torch.from_numpy(poses.astype(np.float32)),
            "projection": torch.from_numpy(projection.astype(np.float32)),
        }


def prepared_scene_dirs(
    prepared_root: str | Path, raw_root: str | Path | None, split: str | None
) -> list[Path]:
    """Prepared scenes of a split (names from ``raw_root``'s split list), or all of them
    when ``split`` is None. A scene listed but not prepared is an error naming it."""
    prepared_root = Path(prepared_root)
    if not prepared_root.is_dir():
        raise FileNotFoundError(f"{prepared_root}: prepared data folder not found")
    if split is None:
        dirs = sorted(p for p in prepared_root.iterdir() if is_prepared(p))
        if not dirs:
            raise ValueError(f"{prepared_root}: no prepared scenes (run prepare.py first)")
        return dirs
    names = read_split(raw_root, split)
    if not names:
        raise ValueError(f"{Path(raw_root) / f'scannetv2_{split}.txt'}: the split lists no scenes")
    missing = [n for n in names if not is_prepared(prepared_root / n)]
    if missing:
        raise FileNotFoundError(
            f"{prepared_root}: scenes of split {split!r} not prepared: "
            f"{missing[:5]}{' ...' if len(missing) > 5 else ''}"
        )
    return [prepared_root / n for n in names]


class ATLASDataModule(pl.LightningDataModule):
    """Train/val loaders over prepared scenes. raw_root holds the split lists; a split of
    None takes every prepared scene; seed: the training items' order and randomness.

    The training loader is endless (``max_steps`` ends a run) and, on a resumed run,
    starts at the item after the last one the checkpointed step consumed.
    """

    def __init__(
        self,
        prepared_root: str,
        raw_root: str | None = None,
        train_split: str | None = "train",
        val_split: str | None = "val",
        item: ItemConfig | None = None,
        items_per_scene: int = 4,
        batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.prepared_root = prepared_root
        self.raw_root = raw_root
        self.train_split = train_split
        self.val_split = val_split
        self.item = item or ItemConfig()
        self.items_per_scene = items_per_scene
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.train_set: SceneItems | None = None
        self.val_set: SceneItems | None = None

    def setup(self, stage: str | None = None) -> None:
        """Open the scenes of both splits (once: ``train.py`` calls this before training
        to report bad data before anything is written, Lightning again)."""
        if self.train_set is not None and self.val_set is not None:
            return
        self.train_set = SceneItems(
            prepared_scene_dirs(self.prepared_root, self.raw_root, self.train_split),
            self.item,
            train=True,
            items_per_scene=self.items_per_scene,
        )
        self.val_set = SceneItems(
            prepared_scene_dirs(self.prepared_root, self.raw_root, self.val_split),
            self.item,
            train=False,
        )

    def prior_stereo(self) -> StereoConfig | None:
        """The stereo settings every scene's prior was made with (as recorded by
        ``prepare.py``), None when the items take no prior. Scenes prepared before the
        record existed count as :func:`atlas.stereo.presets.unrecorded_prior` (a logged
        warning); scenes that disagree are a ``ValueError`` naming two of them and the
        settings."""
        self.setup()
        if self.item.prior != "stereo":
            return None
        found: list[tuple[Path, StereoConfig]] = []
        unrecorded = []
        for scene in self.train_set.scenes + self.val_set.scenes:
            recorded = scene.index.prior_stereo
            if not recorded:
                unrecorded.append(scene.dir)
            try:
                cfg = stereo_from_dict(recorded) if recorded else unrecorded_prior()
            except (TypeError, KeyError) as err:
                raise ValueError(
                    f"{scene.dir / INDEX}: 'prior_stereo' is not a stereo settings record "
                    f"({type(err).__name__}: {err}); prepare the scene again"
                ) from None
            found.append((scene.dir, cfg))
        if unrecorded:
            log.warning(
                "%d prepared scene(s) record no prior settings (prepared before 2026-12-07, "
                "e.g. %s): assuming the model_prior preset of then (planes from 0.3 m)",
                len(unrecorded),
                unrecorded[0],
            )
        (dir_a, a), *others = found
        for dir_b, b in others:
            if b != a:
                raise ValueError(
                    f"{dir_a} and {dir_b}: priors made with different stereo settings "
                    f"({'; '.join(stereo_differences(a, b))}); prepare every scene with one"
                )
        return a

    def input_contract(self, model: ModelConfig) -> InputContract:
        """The input contract of a model of architecture ``model`` trained on this data."""
        return make_contract(model, self.prior_stereo(), self.item.image_size)

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler | None) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        """Endless; Lightning builds it after restoring a checkpoint, so the trainer's
        step says how many items this rank has consumed."""
        trainer = self.trainer
        rank, world, start = 0, 1, 0
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
            start = trainer.global_step * trainer.accumulate_grad_batches * self.batch_size
        sampler = ResumableSampler(len(self.train_set), self.seed, rank, world, start)
        return self._loader(self.train_set, self.batch_size, sampler)

    def val_dataloader(self) -> DataLoader:
        """Whole scenes, one a batch (they differ in size); split between ranks."""
        trainer = self.trainer
        sampler = None
        if trainer is not None and trainer.world_size > 1:
            sampler = DistributedSampler(
                self.val_set, trainer.world_size, trainer.global_rank, shuffle=False
            )
        return self._loader(self.val_set, 1, sampler)
