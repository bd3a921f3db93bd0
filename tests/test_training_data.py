"""Training items: targets agree with the images' cameras after augmentation; exact
90-degree crops; determinism; the DataModule's loaders."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from atlas.geometry import VoxelGrid
from atlas.readers.image_io import read_depth
from atlas.readers.prepared import load_index
from atlas.training.crops import sample_grid, smooth_displacement
from atlas.training.data import ATLASDataModule, ItemConfig, SceneItems
from atlas.training.resumable import ResumableSampler

SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def prepared(small_prepared) -> Path:
    return small_prepared[0]


def item_config(rotation: str) -> ItemConfig:
    return ItemConfig(
        n_frames=6,
        image_size=(160, 120),
        crop_voxels=(64, 64, 48),
        rotation=rotation,
        val_frames=6,
    )


def depth_points_in_item(item: dict, scene_dir) -> np.ndarray:
    """World (crop-frame) points of the item's depth maps, back-projected with its poses."""
    index = load_index(scene_dir)
    by_id = {f.frame_id: f for f in index.frames}
    K = np.array(index.K_depth)
    pts = []
    for fid, pose in zip(item["frame_ids"].tolist(), item["poses"].numpy(), strict=True):
        depth = read_depth(by_id[fid].depth)[::4, ::4]
        v, u = np.nonzero(depth > 0)
        d = depth[v, u]
        cam = np.stack([(4 * u - K[0, 2]) / K[0, 0] * d, (4 * v - K[1, 2]) / K[1, 1] * d, d], -1)
        pts.append(cam @ pose[:3, :3].T.astype(np.float64) + pose[:3, 3])
    return np.concatenate(pts)


@pytest.mark.parametrize("rotation", ["none", "90", "any"])
def test_depth_lands_on_the_target_zero_crossing(prepared, rotation):
    item = SceneItems([prepared / SCENE], item_config(rotation), train=True)[(0, 3)]
    target = VoxelGrid(
        item["tsdf_04"].numpy(), item["observed_04"].numpy().astype(np.float32), np.zeros(3), 0.04
    )
    tsdf, observed = sample_grid(target, depth_points_in_item(item, prepared / SCENE))
    assert observed.sum() > 1000
    # Surface points sit on the zero crossing: |tsdf| well under one voxel (1/3).
    assert np.median(np.abs(tsdf[observed])) < 0.1
    assert np.mean(np.abs(tsdf[observed]) < 0.34) > 0.95


def test_projection_matches_poses_and_intrinsics(prepared):
    item = SceneItems([prepared / SCENE], item_config("any"), train=True)[(0, 0)]
    P = item["K"] @ torch.linalg.inv(item["poses"])[:, :3]
    torch.testing.assert_close(P, item["projection"], rtol=1e-4, atol=1e-3)
    assert item["images"].shape == (6, 3, 120, 160)
    assert 0 <= item["images"].min() and item["images"].max() <= 1


def test_ninety_degree_crops_are_exact(prepared):
    """With 90-degree rotations the crop is a pure re-indexing of the ground truth."""
    item = SceneItems([prepared / SCENE], item_config("90"), train=True)[(0, 5)]
    fine = VoxelGrid.load(prepared / SCENE / "tsdf_04.npz")
    values = set(np.unique(fine.tsdf).tolist())
    crop = item["tsdf_04"].numpy()[item["observed_04"].numpy()]
    assert len(crop) > 1000 and set(np.unique(crop).tolist()) <= values


def test_same_seed_same_items(prepared):
    def first_batch(seed: int) -> dict:
        dm = ATLASDataModule(
            str(prepared), None, None, None, item_config("any"), items_per_scene=2, seed=seed
        )
        dm.setup()
        return next(iter(dm.train_dataloader()))

    a, b, c = first_batch(7), first_batch(7), first_batch(8)
    assert torch.equal(a["poses"], b["poses"]) and torch.equal(a["tsdf_04"], b["tsdf_04"])
    assert not torch.equal(a["poses"], c["poses"])
    assert a["images"].shape == (1, 6, 3, 120, 160)
    assert a["tsdf_08"].shape == (1, 32, 32, 24) and a["tsdf_16"].shape == (1, 16, 16, 12)


def test_validation_item_is_the_whole_scene(prepared):
    item = SceneItems([prepared / SCENE], item_config("any"), train=False)[0]
    fine = VoxelGrid.load(prepared / SCENE / "tsdf_04.npz")
    padded = tuple(-(-n // 4) * 4 for n in fine.shape)
    assert item["tsdf_04"].shape == padded and tuple(item["shape"].tolist()) == padded
    assert item["tsdf_08"].shape == tuple(n // 2 for n in padded)
    x, y, z = fine.shape
    np.testing.assert_array_equal(item["tsdf_04"][:x, :y, :z].numpy(), fine.tsdf)
    np.testing.assert_array_equal(item["observed_04"][:x, :y, :z].numpy(), fine.observed)
    assert not item["observed_04"][x:].any() and not item["observed_04"][:, :, z:].any()
    np.testing.assert_allclose(item["origin"].numpy(), fine.origin, atol=1e-6)
    np.testing.assert_array_equal(
        item["frame_ids"].numpy(), np.linspace(0, 59, 6).round().astype(int)
    )


def test_unprepared_split_scene_is_named(prepared, tmp_path):
    (tmp_path / "scannetv2_val.txt").write_text(f"{SCENE}\nscene0999_00\n")
    dm = ATLASDataModule(str(prepared), str(tmp_path), None, "val")
    with pytest.raises(FileNotFoundError, match="scene0999_00"):
        dm.setup()


def test_prepared_scene_opens_as_a_scene_for_inference(prepared):
    from atlas.readers.detect import open_scene
    from atlas.readers.prepared import PreparedSceneReader

    reader = open_scene(prepared / SCENE)
    index = load_index(prepared / SCENE)
    assert isinstance(reader, PreparedSceneReader)
    assert len(reader) == len(index.frames) and reader.valid.all()
    np.testing.assert_allclose(reader.poses[5], index.frames[5].pose)
    frame = reader.read_frame(5)
    assert frame.color.shape[1::-1] == reader.color_size
    assert frame.depth.shape[::-1] == reader.depth_size and frame.depth.max() > 0.5
    assert reader.gt_mesh_path == prepared / SCENE / "mesh.ply"


def test_resumable_order_depends_only_on_seed_and_position():
    """Starting at position k gives the tail of the stream from 0; each pass over the
    items is a permutation; ranks of one run draw disjoint positions of one order."""
    stream = list(itertools.islice(ResumableSampler(5, seed=1), 12))
    assert list(itertools.islice(ResumableSampler(5, seed=1, start=7), 5)) == stream[7:]
    for first in (0, 5):
        assert sorted(i for i, _ in stream[first : first + 5]) == list(range(5))
    assert len({s for _, s in stream}) == 12  # every item its own seed
    assert stream != list(itertools.islice(ResumableSampler(5, seed=2), 12))
    ranks = [list(itertools.islice(ResumableSampler(5, 1, r, 2), 6)) for r in (0, 1)]
    assert [k for pair in zip(*ranks, strict=True) for k in pair] == stream
    with pytest.raises(ValueError, match="rank 2"):
        ResumableSampler(5, 1, rank=2, world_size=2)


def test_smooth_displacement_moves_neighbours_together():
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 6.4, 641)  # 1 cm apart along a 6.4 m line
    pts = np.stack([x, np.full_like(x, 1.0), np.full_like(x, 0.5)], 1)
    d = smooth_displacement(rng, pts, 0.06, 0.32)
    assert d.shape == pts.shape and d.dtype == pts.dtype
    # at the lattice nodes (every 32 cm) each component is N(0, 6 cm); between them the
    # trilinear blend is tamer, so the overall spread is a bit below 6 cm
    assert 0.03 < d.std() < 0.07, d.std()
    steps = np.abs(np.diff(d, axis=0))  # 1 cm apart: at most 1/32 of a node-to-node change
    assert steps.max() < 0.06 * 8 / 32
    far = d[::64]  # 64 cm apart (two lattice cells): independent draws
    assert abs(np.corrcoef(far[:-1, 0], far[1:, 0])[0, 1]) < 0.5
    again = smooth_displacement(np.random.default_rng(0), pts, 0.06, 0.32)
    np.testing.assert_array_equal(d, again)


def test_negative_prior_jitter_is_refused(prepared):
    with pytest.raises(ValueError, match="prior_jitter"):
        SceneItems([prepared / SCENE], ItemConfig(prior_jitter=-0.1), train=True)
