"""The model learns (overfits one scene), trains from the command line, resumes, and
its files load safely."""

import csv
import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import VoxelGrid, extract_mesh
from atlas.model.checkpoint import BUNDLED, load_model, read_model_file, save_model
from atlas.model.config import ModelConfig, build_model
from atlas.model.contract import assumed_contract
from atlas.preparation.prepare import PrepareSettings, prepare_scene
from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import prior_stereo_config
from atlas.synthetic.generate import SceneConfig, write_scene
from atlas.training.data import ItemConfig, SceneItems
from atlas.training.lightning import ATLASModule, prediction_grid

ROOT = Path(__file__).resolve().parents[1]
NO_COMPILE = {**os.environ, "ATLAS_COMPILE": "0"}  # no compile warm-up per process
SIZES = (0.08, 0.16, 0.32)
SMALL_MODEL = {
    "backbone": {"depth": 18, "width": 8, "out_channels": 8},
    "net": {"channels": [8, 16, 32]},
    "voxel_sizes": list(SIZES),
}
# The prepared scenes' prior: no preset's settings (5x5 windows), so a model trained on
# them must have its prior settings from the data.
PRIOR = dataclasses.replace(
    prior_stereo_config(), sweep=dataclasses.replace(prior_stereo_config().sweep, window=5)
)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """One small synthetic room, prepared at 8/16/32 cm with its stereo prior."""
    root = tmp_path_factory.mktemp("model")
    scene = write_scene(
        root / "raw" / "scans" / "scene0000_00",
        SceneConfig(seed=5, n_frames=20, width=160, height=120),
    )
    (root / "raw" / "scannetv2_train.txt").write_text("scene0000_00\n")
    (root / "raw" / "scannetv2_val.txt").write_text("scene0000_00\n")
    settings = PrepareSettings(
        voxel_sizes=SIZES,
        max_depth=4.0,
        prior_voxel_size=0.08,
        stereo=PRIOR,
    )
    prepare_scene(ScanNetFolder(scene), root / "prepared", settings, "scannet", "none")
    return root


def test_overfits_one_crop(prepared):
    """The loss falls at least 5x and the crop's mesh lands on its target's."""
    torch.manual_seed(0)
    cfg = ItemConfig(
        n_frames=4,
        image_size=(80, 60),
        crop_voxels=(32, 32, 16),
        voxel_sizes=SIZES,
        rotation="none",
        prior="stereo",
    )
    item = SceneItems([prepared / "prepared" / "scene0000_00"], cfg, train=True)[0]
    assert item["observed_08"].float().mean() > 0.3
    batch = default_collate([item])
    module = ATLASModule(SMALL_MODEL, lr=3e-3, warmup_steps=1)
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss, _, outputs, count = module.losses(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) / 5, (losses[:5], losses[-5:])
    module.eval()
    with torch.no_grad():
        _, _, outputs, count = module.losses(batch)
    pred = extract_mesh(prediction_grid(outputs[0], count, batch["origin"], SIZES[0]))
    target = extract_mesh(
        VoxelGrid(
            item["tsdf_08"].numpy(), item["observed_08"].float().numpy(), np.zeros(3), SIZES[0]
        )
    )
    fscore = mesh_metrics(pred, target, 0.05)["fscore"]
    assert fscore > 0.8, fscore


def test_prior_jitter_moves_the_prior_not_the_targets(prepared):
    """A jittered training item reads its prior displaced (surfaces shift by centimetres)
    and its targets unchanged; validation items are never jittered."""
    base = dict(n_frames=4, image_size=(80, 60), crop_voxels=(32, 32, 24))
    base.update(voxel_sizes=SIZES, rotation="none", prior="stereo")
    dirs = [prepared / "prepared" / "scene0000_00"]
    plain = SceneItems(dirs, ItemConfig(**base), train=True)[(0, 3)]
    jittered = SceneItems(dirs, ItemConfig(**base, prior_jitter=0.06), train=True)[(0, 3)]
    assert torch.equal(plain["tsdf_08"], jittered["tsdf_08"])
    both = plain["prior_observed"] & jittered["prior_observed"]
    change = (plain["prior_tsdf"] - jittered["prior_tsdf"])[both].abs()
    # 6 cm against a 24 cm truncation band: TSDF values move by ~0.1-0.3 near surfaces
    assert 0.02 < change.mean() < 0.5, change.mean()
    val = SceneItems(dirs, ItemConfig(**base, prior_jitter=0.06), train=False)[0]
    val_plain = SceneItems(dirs, ItemConfig(**base), train=False)[0]
    assert torch.equal(val["prior_tsdf"], val_plain["prior_tsdf"])


def train_command(prepared: Path, out: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "train.py",
        "experiment=demo",
        f"out_dir={out}",
        f"data.raw.root={prepared / 'raw'}",
        f"data.prepared_root={prepared / 'prepared'}",
        "model.model.backbone.width=8",
        "model.model.net.channels=[8,16,32]",
        "datamodule.item.image_size=[80,60]",
        "datamodule.item.crop_voxels=[32,32,16]",
        "datamodule.item.n_frames=4",
        "datamodule.item.val_frames=8",
        *overrides,
    ]


def run_train(prepared: Path, out: Path, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        train_command(prepared, out, *overrides),
        cwd=ROOT,
        env=NO_COMPILE,
        capture_output=True,
        text=True,
        timeout=600,
    )


def checkpoint_step(path: Path) -> int | None:
    """The step of a training checkpoint, or None while it is missing or unreadable."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except (OSError, RuntimeError, EOFError, KeyError, pickle.UnpicklingError):
        return None


KILL_RUN = (
    "trainer.max_steps=6",
    "trainer.val_check_interval=6",
    "checkpoint_last.every_n_train_steps=2",
)


def test_train_killed_resumes_at_the_step_and_equals_an_uninterrupted_run(prepared, tmp_path):
    """SIGKILL in the middle of training, then ``ckpt_path=last``: the run goes on from
    the checkpointed step with the same items, so its weights equal a run never killed."""
    whole = tmp_path / "whole"
    result = run_train(prepared, whole, *KILL_RUN)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (whole / "checkpoints" / "best.ckpt").is_file()
    assert list((whole / "logs" / "val").glob("step_000006/*.png"))

    out = tmp_path / "killed"
    last = out / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen(
        train_command(prepared, out, *KILL_RUN),
        cwd=ROOT,
        env=NO_COMPILE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline and not (checkpoint_step(last) or 0) >= 2:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = checkpoint_step(last)
    assert killed_at is not None and 2 <= killed_at < 6, killed_at  # killed mid-run
    resumed = run_train(prepared, out, *KILL_RUN, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert checkpoint_step(last) == 6
    a = torch.load(whole / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(last, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6, msg=key)
    with open(out / "logs" / "metrics.csv") as f:
        steps = [int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")]
    assert max(steps) >= 3
    # The checkpoint loads as a model.
    _, cfg, card, contract = load_model(last)
    assert cfg.backbone.width == 8 and card["global_step"] == 6
    # It carries the input it was trained on: the prepared scenes' prior settings (not
    # a preset's: PRIOR) and the items' image size.
    assert contract.prior_stereo == PRIOR and contract.prior_preset == "custom"
    assert contract.image_size == (80, 60) and ("prior_tsdf", 1) in contract.channels


def test_config_typo_fails_at_start_naming_the_key(prepared, tmp_path):
    result = run_train(prepared, tmp_path / "typo", "+model.model.net.chanels=3")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "chanels" in last
    assert not (tmp_path / "typo" / "checkpoints").exists()


def test_model_file_round_trip_and_mismatch(tmp_path):
    cfg = ModelConfig.from_dict(SMALL_MODEL)
    net = build_model(cfg)
    path = save_model(net, cfg, tmp_path / "m.pt", assumed_contract(cfg, {}), {"steps": 1})
    assert torch.load(path, weights_only=True)["card"] == {"steps": 1}
    loaded = load_model(path).net
    for k, v in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    record = read_model_file(path)
    record["config"]["net"]["channels"] = [8, 16, 64]
    torch.save(record, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"other\.pt: weights do not fit"):
        load_model(tmp_path / "other.pt")


def test_bundled_model_loads_with_weights_only():
    record = torch.load(BUNDLED, map_location="cpu", weights_only=True)
    assert BUNDLED.stat().st_size < 30e6
    net, cfg, card, _ = load_model()
    assert cfg.net.prior == "stereo" and card["steps"] > 0
    assert sum(p.numel() for p in net.parameters()) == sum(
        v.numel()
        for k, v in record["state_dict"].items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
