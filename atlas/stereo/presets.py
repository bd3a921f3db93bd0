"""Named stereo settings: ``fast``, ``default`` and ``quality`` for ``method=stereo``
(the Hydra group ``stereo``: ``infer.py method=stereo stereo=quality``), and the
settings a model's prior is made with. ``docs/benchmarks.md`` has their measured
quality and speed."""

from __future__ import annotations

import dataclasses

from atlas.stereo.pipeline import StereoConfig, prior_stereo_config
from atlas.stereo.plane_sweep import SweepConfig


def fast_stereo() -> StereoConfig:
    """One winner-take-all sweep at 160x120, keyframes every 5 cm, every kept depth
    weighing the same in fusion (the method as it was before refinement existed)."""
    return StereoConfig(
        sweep=SweepConfig(sgm=False),
        keyframe_translation=0.05,
        refine_scale=1,
        weighted_fusion=False,
        min_consistent=1,
    )


def default_stereo() -> StereoConfig:
    """:class:`StereoConfig`'s defaults: the coarse sweep at 160x120, refined per pixel
    at 320x240, confidence- and angle-weighted fusion."""
    return StereoConfig()


def quality_stereo() -> StereoConfig:
    """The default refined at 640x480 with keyframes every 5 cm: several times slower."""
    return dataclasses.replace(StereoConfig(), refine_scale=4, keyframe_translation=0.05)


STEREO_PRESETS = {
    "fast": fast_stereo,
    "default": default_stereo,
    "quality": quality_stereo,
    "model_prior": prior_stereo_config,
}


def stereo_preset(name: str) -> StereoConfig:
    """The stereo settings called ``name`` (one of :data:`STEREO_PRESETS`)."""
    if name not in STEREO_PRESETS:
        raise ValueError(f"unknown stereo preset {name!r}; choose one of {sorted(STEREO_PRESETS)}")
    return STEREO_PRESETS[name]()
