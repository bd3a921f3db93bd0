"""A model file carries its input contract (prior stereo settings, image size, input
channels): inference builds exactly that input, asks that differ stop with an error
naming the file and the settings, and model files from before the contract load with
the settings they were made with."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from atlas.cli import check_selected
from atlas.model.checkpoint import BUNDLED, load_model, read_model_file, save_model
from atlas.model.config import ModelConfig, build_model
from atlas.model.contract import InputContract, assumed_contract, make_contract
from atlas.model.inference import ModelInferenceConfig
from atlas.pipeline.methods import reconstruct_model
from atlas.readers.prepared import INDEX, load_index
from atlas.readers.scannet import ScanNetFolder
from atlas.stereo.pipeline import prior_stereo_config, stereo_depths
from atlas.stereo.presets import (
    preset_name,
    stereo_from_dict,
    stereo_preset,
    stereo_to_dict,
    unrecorded_prior,
)
from atlas.training.data import ATLASDataModule, ItemConfig
from tests.conftest import run_main
from tests.test_model import PRIOR, SMALL_MODEL

ROOT = Path(__file__).resolve().parents[1]
TINY = SMALL_MODEL
CUSTOM = PRIOR  # no preset's settings: 5x5 NCC windows


@pytest.fixture(scope="module")
def scene(room_24) -> ScanNetFolder:
    return room_24


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, Path]:
    """(a model file whose contract names CUSTOM priors and 80x60 images, the same
    weights in a file without a contract, as written before 2026-12-07)."""
    torch.manual_seed(0)
    cfg = ModelConfig.from_dict(TINY)
    net = build_model(cfg).eval()
    root = tmp_path_factory.mktemp("models")
    path = save_model(net, cfg, root / "custom.pt", make_contract(cfg, CUSTOM, (80, 60)))
    record = read_model_file(path)
    del record["contract"]
    record["card"] = {"image_size": [80, 60]}
    net_cfg = record["config"]["net"]  # and the key's spelling of those days
    net_cfg["colour_variance"] = net_cfg.pop("color_variance")
    torch.save(record, root / "legacy.pt")
    return path, root / "legacy.pt"


class Recorder:
    """``prior_depths`` that remembers the stereo settings it was asked for (and the
    depths of each, shared by every test: the tests here are about which settings)."""

    depths: ClassVar[dict] = {}

    def __init__(self) -> None:
        self.asked: list = []
        self.refined_scales: list[int] = []

    def __call__(self, reader, cfg, device, refined_scale):
        self.asked.append(cfg)
        self.refined_scales.append(refined_scale)
        key = json.dumps([stereo_to_dict(cfg), refined_scale], sort_keys=True)
        if key not in Recorder.depths:
            Recorder.depths[key] = stereo_depths(reader, cfg, device, refined_scale)
        return Recorder.depths[key]


def test_contract_round_trips_and_names_presets():
    cfg = ModelConfig.from_dict(TINY)
    contract = make_contract(cfg, stereo_preset("default"), (160, 120))
    assert contract.prior_preset == "default"
    assert contract.channels == [
        ("features", 8),
        ("seen", 1),
        ("prior_tsdf", 1),
        ("prior_observed", 1),
    ]
    assert contract.prior_voxel_size == 0.08
    again = InputContract.from_dict(json.loads(json.dumps(contract.to_dict())), "x.pt")
    assert again == contract
    assert preset_name(CUSTOM) == "custom" and preset_name(prior_stereo_config()) == "model_prior"
    assert stereo_from_dict(stereo_to_dict(CUSTOM)) == CUSTOM
    # a record written before pose refinement or the refinement's fallback existed meant
    # neither; any other gap is an error
    older = stereo_to_dict(stereo_preset("default"))
    del older["refine_poses"], older["refine_fallback"]
    assert stereo_from_dict(older) == dataclasses.replace(
        stereo_preset("default"), refine_poses=False, refine_fallback=False
    )
    del older["max_depth"]
    with pytest.raises(TypeError, match="max_depth"):
        stereo_from_dict(older)
    priorless = ModelConfig.from_dict({**TINY, "net": {**TINY["net"], "prior": "none"}})
    none = make_contract(priorless, CUSTOM, (80, 60))
    assert none.prior_preset == "none" and none.prior_stereo is None and len(none.channels) == 2


def test_inference_builds_the_contract_input(scene, tiny):
    """With nothing asked, the prior is made with the contract's settings (not the
    model_prior preset's) and the model sees the contract's image size."""
    path, _ = tiny
    recorder = Recorder()
    rec = reconstruct_model(scene, path, prior_depths=recorder)
    # the contract's settings, pose refinement on for the refined maps only
    assert recorder.asked == [dataclasses.replace(CUSTOM, refine_poses=True)]
    assert rec.summary["stereo"]["preset"] == "custom"
    # the prior is the contract's 160x120 maps; the evidence rule took them refined 2x
    assert rec.summary["evidence"] == "on" and rec.summary["evidence_depth_size"] == [320, 240]
    # without the evidence rule nothing is refined (no time spent on it)
    off = Recorder()
    reconstruct_model(scene, path, ModelInferenceConfig(evidence=False), prior_depths=off)
    assert recorder.refined_scales == [2] and off.refined_scales == [1]
    assert off.asked == [CUSTOM]
    fixed = Recorder()
    cfg = ModelInferenceConfig(evidence_refine_poses=False)
    reconstruct_model(scene, path, cfg, prior_depths=fixed)
    assert fixed.asked == [CUSTOM] and fixed.refined_scales == [2]
    # Asking for exactly the contract's settings is no mismatch, nor is asking for pose
    # refinement in settings that refine no map themselves (the evidence rule's is
    # model.evidence_refine_poses).
    for stereo in (CUSTOM, dataclasses.replace(CUSTOM, refine_poses=True)):
        asked = ModelInferenceConfig(stereo=stereo, image_size=(80, 60))
        same = reconstruct_model(scene, path, asked, prior_depths=recorder)
        np.testing.assert_array_equal(same.grid.tsdf, rec.grid.tsdf)
    assert recorder.asked[-1] == recorder.asked[0]  # the same sweep as asked for by default


@pytest.mark.parametrize(
    "asked, named",
    [
        ({"stereo": prior_stereo_config()}, "model.stereo.sweep.window: 7 != 5"),
        ({"image_size": (160, 120)}, "model.image_size: [160, 120] != [80, 60]"),
    ],
)
def test_asking_for_other_input_stops_naming_file_and_settings(scene, tiny, asked, named):
    path, _ = tiny
    with pytest.raises(ValueError) as err:
        reconstruct_model(scene, path, ModelInferenceConfig(**asked))
    assert str(path) in str(err.value) and named in str(err.value)
    assert "allow_input_mismatch" in str(err.value)


def test_a_deliberate_mismatch_runs_with_a_warning(scene, tiny, caplog):
    path, _ = tiny
    recorder = Recorder()
    cfg = ModelInferenceConfig(stereo=prior_stereo_config(), allow_input_mismatch=True)
    with caplog.at_level(logging.WARNING, logger="atlas.model.contract"):
        rec = reconstruct_model(scene, path, cfg, prior_depths=recorder)
    asked = dataclasses.replace(prior_stereo_config(), refine_poses=True)
    assert recorder.asked == [asked] and rec.summary["stereo"]["keyframes"] > 0
    assert "sweep.window: 7 != 5" in caplog.text


def test_a_model_file_without_contract_loads_and_reconstructs_as_before(scene, tiny, caplog):
    """A file from before the contract gets the settings such files were used with (the
    model_prior preset of then, the card's image size) and a note; its reconstruction equals
    that of the same weights with that contract written out."""
    _, legacy = tiny
    with caplog.at_level(logging.WARNING, logger="atlas.model.checkpoint"):
        net, cfg, card, contract = load_model(legacy)
    assert "no input contract stored" in caplog.text and "planes from 0.3 m" in caplog.text
    assert contract == assumed_contract(cfg, card) and contract.image_size == (80, 60)
    assert contract.prior_stereo == unrecorded_prior() != prior_stereo_config()
    explicit = save_model(net, cfg, legacy.with_name("explicit.pt"), contract)
    a = reconstruct_model(scene, legacy, prior_depths=Recorder()).grid
    b = reconstruct_model(scene, explicit, prior_depths=Recorder()).grid
    np.testing.assert_array_equal(a.tsdf, b.tsdf)
    np.testing.assert_array_equal(a.observed, b.observed)


def test_a_malformed_contract_names_the_file(tiny, tmp_path):
    path, _ = tiny
    record = read_model_file(path)
    record["contract"]["image_size"] = "wide"
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: the input contract is malformed"):
        load_model(tmp_path / "bad.pt")
    record["contract"]["image_size"] = [80, 60]
    record["contract"]["channels"] = [["features", 8], ["seen", 1]]  # a prior-less net's
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: the input contract's channels"):
        load_model(tmp_path / "bad.pt")
    del record["contract"]["prior_stereo"]["sweep"]
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: the input contract is malformed"):
        load_model(tmp_path / "bad.pt")
    del record["contract"]["channels"]
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"bad\.pt: the input contract must have the keys"):
        load_model(tmp_path / "bad.pt")


def test_the_bundled_model_states_its_contract():
    record = torch.load(BUNDLED, map_location="cpu", weights_only=True)
    contract = InputContract.from_dict(record["contract"], BUNDLED)
    assert contract.prior_preset == "model_prior" and contract.image_size == (160, 120)
    assert contract.prior_voxel_size == 0.08


def test_infer_stops_before_any_scene_on_a_mismatch(scene, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_main(
        "infer",
        [f"scene={scene.scene_dir}", f"out_dir={out}", "stereo@model.stereo=default"],
        capsys,
    )
    assert code == 2 and err[-1].startswith("error: ") and str(BUNDLED) in err[-1]
    assert "model.stereo.refine_scale: 2 != 1" in err[-1]
    assert not (out / scene.name).exists()


def test_an_override_under_the_unset_prior_names_what_to_type():
    with pytest.raises(ValueError, match=r"stereo@model.stereo=<option> model.stereo.sweep"):
        check_selected(["model.stereo.sweep.window=11"], {"model.stereo": "stereo@model.stereo"})
    check_selected(
        ["stereo@model.stereo=model_prior", "model.stereo.sweep.window=11"],
        {"model.stereo": "stereo@model.stereo"},
    )
    result = subprocess.run(
        [sys.executable, "infer.py", "scene=nowhere", "model.stereo.sweep.window=11"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: model.stereo.sweep.window=11")


def test_prepared_scenes_record_their_prior_and_training_takes_it(small_prepared, tmp_path, caplog):
    """The prepared index names the prior's settings; the data module gives them to the
    model's contract; scenes of different priors, or of none recorded, are caught."""
    root, _ = small_prepared
    scene_dir = root / "scene0000_00"
    index = load_index(scene_dir)  # prepared without a prior: none recorded
    assert index.prior_stereo == {} and index.prior_preset == ""
    # (tests/test_model.py trains on a scene prepared with one, through to the contract)
    # Two copies of the scene: one as recorded, one claiming another prior.
    data = tmp_path / "prepared"
    for name, stereo in (("a", unrecorded_prior()), ("b", CUSTOM)):
        (data / name).mkdir(parents=True)
        for f in scene_dir.iterdir():
            if f.name != INDEX:
                (data / name / f.name).symlink_to(f)
        raw = json.loads((scene_dir / INDEX).read_text())
        raw["prior_stereo"] = stereo_to_dict(stereo)
        (data / name / INDEX).write_text(json.dumps(raw))
    item = ItemConfig(prior="stereo", voxel_sizes=(0.04, 0.08, 0.16), image_size=(96, 72))
    cfg = ModelConfig.from_dict({**TINY, "voxel_sizes": [0.04, 0.08, 0.16]})
    module = ATLASDataModule(str(data), None, None, None, item)
    with pytest.raises(
        ValueError,
        match=r"different stereo settings \(sweep.min_depth: 0.3 != 0.5; sweep.window: 7 != 5\)",
    ):
        module.input_contract(cfg)
    (data / "b" / INDEX).unlink()
    raw = json.loads((scene_dir / INDEX).read_text())
    raw["version"] = 1
    del raw["prior_stereo"], raw["prior_preset"]
    (data / "b" / INDEX).write_text(json.dumps(raw))
    module = ATLASDataModule(str(data), None, None, None, item)
    with caplog.at_level(logging.WARNING, logger="atlas.training.data"):
        contract = module.input_contract(cfg)
    # an unrecorded scene was made with the prior of then, planes from 0.3 m: it agrees
    # with "a", which records those settings, and no preset has them today
    assert "record no prior settings" in caplog.text
    assert contract.prior_stereo == unrecorded_prior() and contract.prior_preset == "custom"
    assert contract.image_size == (96, 72)
