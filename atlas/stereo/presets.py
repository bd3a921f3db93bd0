"""Named stereo settings: ``fast``, ``default`` and ``quality`` for ``method=stereo``
(the Hydra group ``stereo``: ``infer.py method=stereo stereo=quality``), and the
settings a model's prior is made with. ``docs/benchmarks.md`` has the measured
quality and speed of each (``bench/stereo_bench.py``)."""

from __future__ import annotations

import dataclasses

from atlas.stereo.pipeline import StereoConfig, prior_stereo_config
from atlas.stereo.plane_sweep import SweepConfig


def fast_stereo() -> StereoConfig:
    """One winner-take-all sweep at 160x120 without regularisation or refinement,
    keyframes every 5 cm (the method before the presets existed)."""
    return StereoConfig(sweep=SweepConfig(sgm=False), keyframe_translation=0.05, refine_scale=1)


def default_stereo() -> StereoConfig:
    """:class:`StereoConfig`'s defaults: keyframes every 10 cm, the coarse sweep at
    160x120 regularised by semi-global aggregation, refined per pixel at 320x240."""
    return StereoConfig()


def quality_stereo() -> StereoConfig:
    """The default with keyframes every 5 cm and a finer refinement search (12
    hypotheses over +-2 coarse planes): slower."""
    return dataclasses.replace(
        StereoConfig(), keyframe_translation=0.05, refine_hypotheses=12, refine_range=2.0
    )


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
