"""Structured config schemas: Hydra checks every key against them, so a typo in a
config file or on the command line is an error, not a silently ignored setting."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from atlas.model.inference import ModelInferenceConfig
from atlas.pipeline.methods import METHODS, FusionConfig
from atlas.stereo.pipeline import StereoConfig, check_stereo_config, prior_stereo_config
from atlas.stereo.presets import STEREO_PRESETS
from atlas.validate import is_int_at_least


@dataclass
class DataConfig:
    """name: the dataset's name; raw: ``_target_`` spec of an ``atlas.readers.datasets``
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
    """scene / scenes: raw scene folders (any supported layout, see atlas.readers.detect) or
    ``data_root`` + ``split`` (ScanNet layout); format: ``auto`` or a layout name;
    method: ``model`` (a trained model: ``checkpoint``, default the bundled one, with the
    ``model`` settings), ``stereo`` (no model, the ``stereo`` settings) or ``fusion``
    (TSDF fusion of the sensor depth, the ``fusion`` settings); align: gravity
    alignment, ``dataset`` (the layout's own: none for ScanNet, which is Z-up, ``auto``
    otherwise), ``auto``, ``none`` or an up axis such as ``-y``; frame: the world frame
    outputs are written in, ``input`` (the poses' own) or ``aligned`` (Z-up, floor at
    0); out_dir: one sub-folder per scene; device: torch device, ``auto`` for CUDA when
    available; overwrite: redo scenes whose outputs exist; snapshot_every: also save
    the meshes of the first k, 2k, ... frames (incremental reconstruction; 0: none).
    The per-scene steps are those of :mod:`atlas.pipeline.scene`."""

    scene: str | None = None
    scenes: list[str] | None = None
    data_root: str | None = None
    split: str | None = None
    format: str = "auto"
    method: str = "model"
    checkpoint: str | None = None
    align: str = "dataset"
    frame: str = "input"
    out_dir: str = "outputs/reconstructions"
    device: str = "auto"
    overwrite: bool = False
    snapshot_every: int = 0
    stereo: StereoConfig = field(default_factory=StereoConfig)
    model: ModelInferenceConfig = field(default_factory=ModelInferenceConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)


DEVICES = "auto, cpu, cuda or cuda:N"


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is usable, else ``cpu``; other names unchanged once
    checked: a name torch does not know (``gpu``), CUDA on a machine without a usable
    CUDA GPU, or a GPU number beyond the last is a ``ValueError`` naming the setting, so
    an entry point stops before its first scene instead of failing inside one."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device must be {DEVICES}, got {device!r}") from None
    if parsed.type == "cpu":
        return device
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = torch.version.cuda or "none: a CPU-only build"
            raise ValueError(
                f"device={device}: no usable CUDA GPU on this machine (torch "
                f"{torch.__version__}, CUDA {build}); use device=cpu or device=auto"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(
                f"device={device}: this machine has {count} CUDA GPU(s), numbered 0 to {count - 1}"
            )
        return device
    if parsed.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ValueError(f"device must be {DEVICES}, got {device!r}")


def check_infer_config(cfg: InferConfig) -> str:
    """Every setting of an ``infer.py`` run checked before its first scene (a
    ``ValueError`` naming the key); returns the torch device to use."""
    from atlas.pipeline.scene import check_frame
    from atlas.readers.alignment import check_up
    from atlas.readers.detect import FORMATS

    if cfg.method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {cfg.format!r}")
    check_up(cfg.align, extra=("dataset",))
    check_frame(cfg.frame)
    if not is_int_at_least(cfg.snapshot_every, 0):
        raise ValueError(
            f"snapshot_every must be a number of frames >= 0 (0: none), got {cfg.snapshot_every!r}"
        )
    # every method's settings, used or not: a bad value is a mistake either way
    cfg.model.check(prefix="model.")
    if cfg.model.stereo is not None:  # None: the model's own
        check_stereo_config(cfg.model.stereo, prefix="model.stereo.")
    check_stereo_config(cfg.stereo, prefix="stereo.")
    cfg.fusion.check(prefix="fusion.")
    return resolve_device(cfg.device)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="prepare_schema", node=PrepareConfig)
    cs.store(name="infer_schema", node=InferConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    for name, make in STEREO_PRESETS.items():  # infer.py stereo=fast|default|quality
        cs.store(group="stereo", name=name, node=make())
