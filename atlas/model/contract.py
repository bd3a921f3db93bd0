"""A model's input contract: what its network was trained to take, stored in its file,
so that inference builds exactly that input.

- prior_preset: the name of the stereo preset the prior was made with
  (:data:`atlas.stereo.presets.STEREO_PRESETS`), or ``custom`` when its settings match
  none; ``none`` for a model without a prior;
- prior_stereo: every setting of that stereo (:class:`StereoConfig`), or None without
  a prior;
- prior_voxel_size: metres, the grid the prior is fused on (the finest scale);
- image_size: (width, height) pixels the 2D backbone sees;
- channels: the 3D network's input channels in order, (name, count) pairs.

A model file from before the contract existed loads with :func:`assumed_contract`: the
settings such files were made with, and a note saying so.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from atlas.model.config import ModelConfig
from atlas.stereo.pipeline import StereoConfig
from atlas.stereo.presets import (
    preset_name,
    stereo_differences,
    stereo_from_dict,
    stereo_to_dict,
    unrecorded_prior,
)

log = logging.getLogger(__name__)

NO_PRIOR = "none"
DEFAULT_IMAGE_SIZE = (160, 120)


@dataclass
class InputContract:
    """See the module docstring."""

    prior_preset: str
    prior_stereo: StereoConfig | None
    prior_voxel_size: float
    image_size: tuple[int, int]
    channels: list[tuple[str, int]]

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))

    def check_fits(self, cfg: ModelConfig, path: str | Path) -> None:
        """``ValueError`` naming the model file ``path`` unless the contract's channels
        and prior are those of the architecture ``cfg``."""
        if self.channels != input_channels(cfg):
            raise ValueError(
                f"{path}: the input contract's channels {self.channels} are not the model's "
                f"{input_channels(cfg)}"
            )
        if (self.prior_stereo is None) != (cfg.net.prior != "stereo"):
            raise ValueError(
                f"{path}: the input contract's prior ({self.prior_preset}) does not fit a "
                f"model with prior={cfg.net.prior}"
            )

    def to_dict(self) -> dict:
        """Plain values, as stored in a model file (loads with ``weights_only=True``)."""
        return {
            "prior_preset": self.prior_preset,
            "prior_stereo": None
            if self.prior_stereo is None
            else stereo_to_dict(self.prior_stereo),
            "prior_voxel_size": self.prior_voxel_size,
            "image_size": list(self.image_size),
            "channels": [[name, count] for name, count in self.channels],
        }

    @classmethod
    def from_dict(cls, data: object, path: str | Path) -> InputContract:
        """The contract stored in model file ``path``; a ``ValueError`` naming the file and
        the key when it is malformed."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path}: the input contract must have the keys {names}, got {keys}")
        stereo = data["prior_stereo"]
        try:
            return cls(
                str(data["prior_preset"]),
                None if stereo is None else stereo_from_dict(stereo),
                float(data["prior_voxel_size"]),
                (int(data["image_size"][0]), int(data["image_size"][1])),
                [(str(name), int(count)) for name, count in data["channels"]],
            )
        except (TypeError, ValueError, IndexError, KeyError) as err:
            raise ValueError(f"{path}: the input contract is malformed ({err})") from None


def input_channels(cfg: ModelConfig) -> list[tuple[str, int]]:
    """The 3D network's input channels of a model config, in the order
    :meth:`ATLASNet.volume_input` stacks them."""
    channels = [("features", cfg.backbone.out_channels), ("seen", 1)]
    if cfg.net.prior == "stereo":
        channels += [("prior_tsdf", 1), ("prior_observed", 1)]
    if cfg.net.color_variance:
        channels.append(("color_std", 1))
    return channels


def make_contract(
    cfg: ModelConfig, prior_stereo: StereoConfig | None, image_size: tuple[int, int]
) -> InputContract:
    """The contract of a model of architecture ``cfg`` trained on priors made with
    ``prior_stereo`` (ignored for a model without a prior) and images of ``image_size``
    (width, height)."""
    if cfg.net.prior != "stereo":
        prior_stereo = None
    return InputContract(
        NO_PRIOR if prior_stereo is None else preset_name(prior_stereo),
        prior_stereo,
        float(cfg.voxel_sizes[0]),
        (int(image_size[0]), int(image_size[1])),
        input_channels(cfg),
    )


def assumed_contract(cfg: ModelConfig, card: dict) -> InputContract:
    """The contract of a model file that stores none (made before 2026-12-07): its prior
    made with :func:`atlas.stereo.presets.unrecorded_prior` (the settings those files
    were used with) and the card's image size (default 160x120)."""
    return make_contract(cfg, unrecorded_prior(), tuple(card.get("image_size", DEFAULT_IMAGE_SIZE)))


def resolve_input(
    contract: InputContract,
    stereo: StereoConfig | None,
    image_size: tuple[int, int] | None,
    allow_mismatch: bool,
    where: str,
) -> tuple[StereoConfig | None, tuple[int, int]]:
    """The prior's stereo settings (None for a model without a prior) and the image size
    to build a model's input with: the contract's where ``stereo`` / ``image_size`` are
    None, else the ones asked for, which must equal the contract's unless
    ``allow_mismatch`` (then a logged warning): a ``ValueError`` naming ``where`` (the
    model file) and every setting that differs, as asked != trained (``refine_poses``
    counts only where the settings refine their maps themselves)."""
    differ = []
    if stereo is not None and contract.prior_stereo is not None:
        trained = contract.prior_stereo
        if stereo.refine_scale == 1 == trained.refine_scale:
            # settings that refine no map: their pose refinement changes nothing the
            # model takes (the evidence maps follow model.evidence_refine_poses)
            trained = dataclasses.replace(trained, refine_poses=stereo.refine_poses)
        differ += [f"model.stereo.{d}" for d in stereo_differences(stereo, trained)]
    if image_size is not None and tuple(image_size) != contract.image_size:
        differ.append(f"model.image_size: {list(image_size)} != {list(contract.image_size)}")
    if differ and not allow_mismatch:
        raise ValueError(
            f"{where}: asked for another input than the model was trained on "
            f"(asked != trained: {'; '.join(differ)}); leave model.stereo and "
            "model.image_size unset to use the model's own, or set "
            "model.allow_input_mismatch=true to run it on this input deliberately"
        )
    if differ:
        log.warning("%s: running on another input than trained on: %s", where, "; ".join(differ))
    prior = None if contract.prior_stereo is None else (stereo or contract.prior_stereo)
    return prior, (tuple(image_size) if image_size is not None else contract.image_size)
