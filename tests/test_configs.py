"""Every config in configs/ composes against its schema; the stereo presets are a
Hydra group; a misspelt group option or key is an error."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import OmegaConf

from atlas.config import InferConfig, register_configs
from atlas.evaluation.config import register_configs as register_evaluate_configs
from atlas.stereo.presets import STEREO_PRESETS, stereo_preset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
register_configs()
register_evaluate_configs()


def as_dict(cfg) -> dict:
    """A stereo config as a dict, tuples as lists (as OmegaConf holds them)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


@pytest.fixture(scope="module")
def hydra_dir():
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        yield


@pytest.mark.parametrize("preset", ["fast", "default", "quality"])
def test_infer_composes_each_stereo_preset(hydra_dir, preset):
    cfg = OmegaConf.to_object(compose("infer", overrides=[f"stereo={preset}"]))
    assert isinstance(cfg, InferConfig)
    assert as_dict(cfg.stereo) == as_dict(stereo_preset(preset))


def test_infer_default_is_the_default_preset_and_prepare_the_model_prior(hydra_dir):
    infer, prepare = (OmegaConf.to_object(compose(name)) for name in ("infer", "prepare"))
    assert as_dict(infer.stereo) == as_dict(stereo_preset("default"))
    assert as_dict(prepare.stereo) == as_dict(stereo_preset("model_prior"))


ENTRY_OF_GROUP = {
    "experiment": "train",
    "model": "train",
    "trainer": "train",
    "data": "prepare",
    "protocol": "evaluate",
}


@pytest.mark.parametrize(
    "group, name",
    [(p.parent.name, p.stem) for p in sorted(CONFIGS.glob("*/*.yaml"))],
)
def test_every_config_file_composes(hydra_dir, group, name):
    assert group in ENTRY_OF_GROUP, f"configs/{group}/ belongs to no entry point in this test"
    compose(ENTRY_OF_GROUP[group], overrides=[f"{group}={name}"])


def test_misspelt_preset_or_key_is_an_error(hydra_dir):
    with pytest.raises(MissingConfigException, match="qualty"):
        compose("infer", overrides=["stereo=qualty"])
    with pytest.raises(ConfigCompositionException):
        compose("infer", overrides=["stereo.refine_scal=2"])


def test_presets_differ_only_where_they_say():
    fast, default = stereo_preset("fast"), stereo_preset("default")
    assert fast.refine_scale == 1 and default.refine_scale > 1
    assert set(STEREO_PRESETS) == {"fast", "default", "quality", "model_prior"}
    with pytest.raises(ValueError, match="unknown stereo preset"):
        stereo_preset("best")
    assert dataclasses.replace(default) == default
