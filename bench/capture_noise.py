"""How much capture noise makes synthetic stereo err as real stereo does: the keyframe
depth error of a stereo preset on training-like synthetic rooms at several noise levels,
beside the ScanNet room's.

    python bench/capture_noise.py [--presets default model_prior] [--levels 0,0,0 0.5,0.25,0.05]

A level is ``cm,deg,exposure`` (``atlas.synthetic.capture.CaptureNoise``: reported
pose error per axis, in cm and degrees, and the log-gain spread of exposure). For each,
one room like the training rooms (seed 1003: 100 frames of 320x240, the synth320 recipe)
is rendered under ``data/bench/capture_noise`` and the preset's filtered keyframe depth
maps are scored against the rendered depth (the share of pixels kept, AbsRel and
delta < 1.25 on them, as ``bench/stereo_bench.py`` scores them); the ScanNet room
(``../shared/data/scannet-dev``) is scored the same way once per preset. Writes
``docs/capture_noise.json`` and the table between the ``capture_noise`` markers of
``docs/model_card.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if not __package__:  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import harness
from bench.harness import BENCH_DATA, ROOT, SHARED_DATA

JSON_OUT = ROOT / "docs" / "capture_noise.json"
CARD = ROOT / "docs" / "model_card.md"
START, END = harness.block_markers("capture_noise")
ROOMS = BENCH_DATA / "capture_noise"
SCANNET = SHARED_DATA / "scannet-dev" / "scans" / "scene0000_00"
SEED = 1003
LEVELS = ("0,0,0", "0.5,0.25,0.05", "1,0.5,0")


def parse_level(text: str) -> tuple[float, float, float]:
    """``cm,deg,exposure`` -> three floats; ``ValueError`` naming the text otherwise."""
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError(f"a noise level is cm,deg,exposure, got {text!r}")
    cm, deg, exposure = (float(p) for p in parts)
    return cm, deg, exposure


def room(level: tuple[float, float, float]) -> Path:
    """The training-like room rendered with capture noise ``level`` (made once)."""
    from atlas.synthetic.capture import CaptureNoise
    from atlas.synthetic.generate import SceneConfig, write_scene

    cm, deg, exposure = level
    path = ROOMS / f"seed{SEED}_{cm}cm_{deg}deg_{exposure}"
    if not path.exists():
        noise = CaptureNoise(cm / 100, deg, 10.0, exposure)
        write_scene(path, SceneConfig(seed=SEED, n_frames=100, width=320, height=240, noise=noise))
    return path


def keyframe_error(scene_dir: str, preset: str) -> dict:
    """The preset's keyframe depth metrics on a ScanNet-layout scene (a fresh process)."""
    from atlas.readers.scannet import ScanNetFolder
    from atlas.stereo.pipeline import stereo_depths
    from atlas.stereo.presets import stereo_preset
    from bench.stereo_bench import keyframe_depth_metrics

    reader = ScanNetFolder(scene_dir)
    depths = stereo_depths(reader, stereo_preset(preset))
    m = keyframe_depth_metrics(reader, depths)
    return {
        "keyframes": len(depths.keyframes),
        **{k: round(m[k], 4) for k in ("complete", "AbsRel", "r1")},
    }


def markdown_table(rows: list[dict]) -> str:
    """The model card's table: one row per preset and capture (noise level or the
    ScanNet room)."""
    lines = [
        "| stereo preset | capture | pose error (cm, deg per axis) | exposure | keyframes "
        "| pixels kept | AbsRel | δ<1.25 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        noise = "-" if r["capture"] == "ScanNet room" else f"{r['cm']}, {r['deg']}"
        exposure = "-" if r["capture"] == "ScanNet room" else f"{r['exposure']}"
        lines.append(
            f"| {r['preset']} | {r['capture']} | {noise} | {exposure} | {r['keyframes']} | "
            f"{100 * r['complete']:.0f}% | {r['AbsRel']:.3f} | {r['r1']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["default", "model_prior"])
    parser.add_argument("--levels", nargs="+", default=list(LEVELS))
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    try:
        levels = [parse_level(text) for text in args.levels]
    except ValueError as err:
        parser.error(str(err))
    rows = []
    for preset in args.presets:
        for level in levels:
            path = harness.call_fresh(room, level)
            row = harness.call_fresh(keyframe_error, str(path), preset)
            cm, deg, exposure = level
            rows.append(
                {"preset": preset, "capture": f"synthetic, seed {SEED}", "cm": cm, "deg": deg,
                 "exposure": exposure, **row}
            )  # fmt: skip
            print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
        if SCANNET.is_dir():
            row = harness.call_fresh(keyframe_error, str(SCANNET), preset)
            rows.append({"preset": preset, "capture": "ScanNet room", **row})
            print(markdown_table(rows[-1:]).splitlines()[-1], flush=True)
    table = markdown_table(rows)
    print(table)
    if not args.no_write:
        harness.write_json(JSON_OUT, {"seed": SEED, "rows": rows})
        harness.replace_block(CARD, table, START, END)


if __name__ == "__main__":
    main()
