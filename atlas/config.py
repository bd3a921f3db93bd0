"""Structured config schemas: Hydra checks every key against them, so a typo in a
config file or on the command line is an error, not a silently ignored setting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from atlas.model.inference import ModelInferenceConfig
from atlas.stereo.pipeline import StereoConfig, prior_stereo_config


@dataclass
class DataConfig:
    """name: the dataset's name; raw: ``_target_`` spec of an ``atlas.data.datasets``
    class and its arguments; prepared_root: where prepared scenes go."""

    name: str = "???"
    raw: Any = "???"
    prepared_root: str = "???"


@dataclass
class PrepareConfig:
    data: DataConfig = field(default_factory=DataConfig)
    out_dir: str = "${data.prepared_root}"
    voxel_sizes: list[float] = field(default_factory=lambda: [0.04, 0.08, 0.16])
    max_depth: float = 3.0
    trunc_voxels: float = 3.0
    margin: float = 0.2
    align: str = "dataset"
    device: str = "cpu"
    shard: int = 0
    num_shards: int = 1
    stop_on_error: bool = False
    skip_bad_frames: bool = False
    prior_voxel_size: float = 0.0
    stereo: StereoConfig = field(default_factory=prior_stereo_config)


@dataclass
class InferConfig:
    """scene / scenes: raw scene folders (any supported layout, see atlas.data.detect) or
    ``data_root`` + ``split`` (ScanNet layout); format: ``auto`` or a layout name;
    method: ``model`` (a trained model: ``checkpoint``, default the bundled one, with the
    ``model`` settings) or ``stereo`` (no model, the ``stereo`` settings); align:
    gravity alignment, ``dataset`` (none for ScanNet, which is Z-up, ``auto``
    otherwise), ``auto``, ``none`` or an up axis such as ``-y``; out_dir: one
    sub-folder per scene; device: torch device, ``auto`` for CUDA when available;
    overwrite: redo scenes whose outputs
    exist; snapshot_every: also save the meshes of the first k, 2k, ... frames
    (incremental reconstruction; 0: none)."""

    scene: str | None = None
    scenes: list[str] | None = None
    data_root: str | None = None
    split: str | None = None
    format: str = "auto"
    method: str = "model"
    checkpoint: str | None = None
    align: str = "dataset"
    out_dir: str = "outputs/reconstructions"
    device: str = "auto"
    overwrite: bool = False
    snapshot_every: int = 0
    stereo: StereoConfig = field(default_factory=StereoConfig)
    model: ModelInferenceConfig = field(default_factory=ModelInferenceConfig)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; other names unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="infer_schema", node=InferConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
