"""Named stereo settings: ``fast``, ``default`` and ``quality`` for ``method=stereo``
(the Hydra group ``stereo``: ``infer.py method=stereo stereo=quality``), and the
settings a model's prior is made with. ``docs/benchmarks.md`` has the measured
quality and speed of each (``bench/stereo_bench.py``)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict

from atlas.stereo.pipeline import StereoConfig, prior_stereo_config
from atlas.stereo.plane_sweep import SweepConfig

CUSTOM = "custom"  # the name of settings that match no preset

# Settings added after stereo records were first written (in model files and prepared
# scenes), each with the value that does what a record from before it meant.
ADDED_SETTINGS = {"refine_poses": False, "refine_fallback": False}


def fast_stereo() -> StereoConfig:
    """One winner-take-all sweep at 160x120 over 48 planes from 0.5 to 5 m, without
    regularisation, refinement or pose refinement, keyframes every 5 cm."""
    return StereoConfig(
        sweep=SweepConfig(sgm=False, min_depth=0.5, n_planes=48),
        keyframe_translation=0.05,
        refine_scale=1,
        refine_poses=False,
    )


def default_stereo() -> StereoConfig:
    """:class:`StereoConfig`'s defaults: keyframes every 10 cm, the coarse sweep at
    160x120 over 64 planes from 0.5 to 5 m regularised by semi-global aggregation, the
    poses refined photometrically from it, then the depths refined per pixel at
    320x240."""
    return StereoConfig()


def quality_stereo() -> StereoConfig:
    """The default with keyframes every 5 cm and a finer refinement search (12
    hypotheses over +-2 coarse planes): slower."""
    return dataclasses.replace(
        StereoConfig(), keyframe_translation=0.05, refine_hypotheses=12, refine_range=2.0
    )


def unrecorded_prior() -> StereoConfig:
    """The prior settings of a model file or a prepared scene that records none (made
    before 2026-12-07): the ``model_prior`` preset as it was then, its planes from
    0.3 m."""
    prior = prior_stereo_config()
    return dataclasses.replace(prior, sweep=dataclasses.replace(prior.sweep, min_depth=0.3))


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


def stereo_to_dict(cfg: StereoConfig) -> dict:
    """Stereo settings as plain values (tuples as lists)."""
    d = asdict(cfg)
    d["image_size"] = list(cfg.image_size)
    return d


def stereo_from_dict(d: dict) -> StereoConfig:
    """Stereo settings from :func:`stereo_to_dict`'s values, every one of them: an
    unknown or a missing key is a TypeError naming it (a record is never completed
    with defaults, which may change); only a setting of :data:`ADDED_SETTINGS`, which
    records older than it lack, takes the value it stands for there."""
    d = {**ADDED_SETTINGS, **d}
    sweep_d = dict(d.pop("sweep", {}))
    for record, kind in ((d, StereoConfig), (sweep_d, SweepConfig)):
        names = {f.name for f in dataclasses.fields(kind)} - (
            {"sweep"} if kind is StereoConfig else set()
        )
        missing = sorted(names - set(record))
        if missing:
            raise TypeError(f"{kind.__name__} record lacks {missing}")
    cfg = StereoConfig(sweep=SweepConfig(**sweep_d), **d)
    cfg.image_size = tuple(cfg.image_size)
    return cfg


def preset_name(cfg: StereoConfig) -> str:
    """The name of the preset whose settings are exactly ``cfg``, else ``custom``."""
    for name, make in STEREO_PRESETS.items():
        if stereo_to_dict(make()) == stereo_to_dict(cfg):
            return name
    return CUSTOM


def stereo_differences(a: StereoConfig, b: StereoConfig) -> list[str]:
    """``name: a_value != b_value`` for each setting that differs (sweep settings as
    ``sweep.name``), in field order."""
    da, db = stereo_to_dict(a), stereo_to_dict(b)
    out = []
    for key in da:
        if key == "sweep":
            out += [
                f"sweep.{k}: {v!r} != {db['sweep'][k]!r}"
                for k, v in da["sweep"].items()
                if v != db["sweep"][k]
            ]
        elif da[key] != db[key]:
            out.append(f"{key}: {da[key]!r} != {db[key]!r}")
    return out
