"""Structured Hydra configs of ``evaluate.py`` (schemas: a key typo is an error).

The ``protocol`` group's options (configs/protocol/*.yaml) extend the protocol
dataclasses of :mod:`atlas.evaluation.protocols`, so ``OmegaConf.to_object`` turns the
composed config straight into an :class:`EvaluateConfig` holding a protocol object.
Paths may contain ``{scene}``, replaced by each scene's name in multi-scene mode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from atlas.evaluation.protocols import PROTOCOLS


class MissingPred(Enum):
    """What a prediction that cannot be scored counts as. ``error`` (the default): a
    missing or unreadable prediction file fails its scene with an error naming the file.
    ``zero``: it scores precision = recall = F = 0 with a warning, as benchmark tables
    do for a method that produced nothing. A readable mesh without vertices scores 0
    with a warning either way; non-finite vertices are an error either way."""

    error = "error"
    zero = "zero"


@dataclass
class DepthConfig:
    """Depth metrics (needs a scene with depth). max_depth: ground truth valid in
    (0, max_depth) metres."""

    enabled: bool = True
    max_depth: float = 10.0


@dataclass
class BaselineConfig:
    """The fused-ground-truth-depth baseline (needs a scene with depth): TSDF fusion at
    voxel_size metres, truncation trunc_voxels voxels, depth cut max_depth metres."""

    enabled: bool = False
    voxel_size: float = 0.04
    trunc_voxels: float = 3.0
    max_depth: float = 5.0


def _curve_thresholds() -> list[float]:
    return [round(0.01 * i, 2) for i in range(1, 21)]


@dataclass
class PlotConfig:
    """PNG plots: thresholds (metres) of the precision/recall/F curve; color_max: the
    distance (metres) at the top of the error colour scale."""

    enabled: bool = True
    thresholds: list[float] = field(default_factory=_curve_thresholds)
    color_max: float = 0.10


@dataclass
class EvaluateConfig:
    """One scene: ``pred_mesh`` with ``gt_mesh`` and/or ``scene`` (an extracted ScanNet
    layout folder: cameras, depth, and its ``<name>_vh_clean_2.ply`` as default ground
    truth). Several: ``pred_dir`` (``<pred_dir>/<scene>/<pred_name>``) with ``data_root``
    and ``split`` (or a ``scenes`` list). See docs/evaluation.md."""

    pred_mesh: str | None = None
    gt_mesh: str | None = None
    scene: str | None = None
    name: str | None = None
    pred_dir: str | None = None
    pred_name: str = "mesh.ply"
    data_root: str | None = None
    split: str | None = None
    scenes: list[str] | None = None
    pred_tsdf: str | None = None
    gt_tsdf: str | None = None
    visibility_mask: str | None = None
    frame_stride: int = 1
    missing_pred: MissingPred = MissingPred.error
    output_dir: str | None = None
    protocol: Any = MISSING
    depth: DepthConfig = field(default_factory=DepthConfig)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    plots: PlotConfig = field(default_factory=PlotConfig)


def check_settings(cfg: EvaluateConfig) -> None:
    """``ValueError`` naming the first numeric setting no evaluation could use (a
    threshold, depth cut or voxel size that is not a positive finite number)."""
    numbers = [
        (f"protocol.{key}", value)
        for key, value in vars(cfg.protocol).items()
        if key in ("threshold", "max_depth") and value is not None
    ]
    numbers += [("depth.max_depth", cfg.depth.max_depth)]
    numbers += [(f"baseline.{k}", getattr(cfg.baseline, k)) for k in ("voxel_size", "max_depth")]
    for key, value in numbers:
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{key} must be a positive number, got {value!r}")


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (``evaluate_schema``, and
    ``protocol/<name>_schema`` for each protocol)."""
    cs = ConfigStore.instance()
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    for name, cls in PROTOCOLS.items():
        cs.store(group="protocol", name=f"{name}_schema", node=cls)
