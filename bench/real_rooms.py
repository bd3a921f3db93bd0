"""The learned model against the project's own stereo on real rooms: the model card's
"Real rooms" table, by one command.

    python bench/real_rooms.py [--checkpoint PATH] [--label NAME] [--sets scannet ...]

For each real set whose data is present, the model (``--checkpoint``, default the
bundled one; every frame, the prior its contract names, ``model.evidence`` on unless
``--no-evidence``) and ``method=stereo`` with the
``default`` preset reconstruct the same frames through the one per-scene pipeline
(``reconstruct_scene``, in the capture's own frame), and both are scored with the ATLAS
protocol at 5 cm against the set's fused depth:

- ``scannet``: ScanNet scene0000_00 in ``../shared/data/scannet-dev`` (300 frames, full
  resolution), its depth fused at 2 cm up to 4 m (the stereo benchmark's ground truth);
- ``scannet-sample``: ScanNet scene0005_00 in ``../shared/data/scannet-sample`` (58
  frames at 320x240), its depth fused at 2 cm up to 4 m;
- ``7scenes``: 7-Scenes dev frames 400-499, gravity-aligned, their Kinect depth fused at
  4 cm up to 3 m (``atlas.model_card``'s held-out real set).

Rows are kept per label (``--label``, default ``bundled``), so candidates and the
shipped model sit side by side: ``docs/real_rooms.json`` holds every number and the
table between the ``real_rooms`` markers of ``docs/model_card.md`` is rewritten. The
stereo rows are measured once per set and reused (``--stereo-again`` remeasures).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if not __package__:  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import harness
from bench.harness import ROOT, SEVEN_SCENES, SHARED_DATA, timed

SETS = ("scannet", "scannet-sample", "7scenes")
JSON_OUT = ROOT / "docs" / "real_rooms.json"
CARD = ROOT / "docs" / "model_card.md"
START, END = harness.block_markers("real_rooms")


def open_set(name: str):
    """(reader, ground-truth mesh) of a real set, or None when its data is absent."""
    from atlas.model_card import seven_scenes_held_out
    from atlas.readers.scannet import ScanNetFolder
    from bench.stereo_bench import fused_ground_truth

    if name == "7scenes":
        return seven_scenes_held_out(SEVEN_SCENES) if SEVEN_SCENES.is_dir() else None
    folder = {
        "scannet": SHARED_DATA / "scannet-dev" / "scans" / "scene0000_00",
        "scannet-sample": SHARED_DATA / "scannet-sample" / "scans" / "scene0005_00",
    }[name]
    if not folder.is_dir():
        return None
    reader = ScanNetFolder(folder)
    return reader, fused_ground_truth(name, reader, 0.02, 4.0)


def run_one(name: str, method: str, checkpoint: str | None, evidence: bool = True) -> dict | None:
    """Reconstruct set ``name`` with ``method`` (a model with ``model.evidence`` on or
    off) and score it (meant for a fresh process)."""
    from atlas.evaluation.mesh_metrics import mesh_metrics
    from atlas.model.inference import ModelInferenceConfig
    from atlas.pipeline.methods import MethodSettings
    from atlas.pipeline.scene import reconstruct_scene
    from atlas.stereo.presets import stereo_preset

    opened = open_set(name)
    if opened is None:
        return None
    reader, gt = opened
    settings = MethodSettings(
        checkpoint=checkpoint,
        model=ModelInferenceConfig(evidence=evidence),
        stereo=stereo_preset("default"),
    )
    with timed() as t:  # align=none: scored in the capture's own frame, the ground truth's
        rec = reconstruct_scene(reader, method, settings, align="none")
    m = mesh_metrics(rec.mesh, gt)
    return {
        "set": name,
        "frames": int(reader.valid.sum()),
        "seconds": round(t.wall, 1),
        **{k: round(float(m[k]), 4) for k in ("fscore", "prec", "recal", "acc", "comp")},
    }


def markdown_table(rows: list[dict]) -> str:
    """One line per set and method: F@5cm, precision, recall, accuracy, seconds, and
    each model's margin over stereo on that set."""
    stereo = {r["set"]: r for r in rows if r["method"] == "stereo"}
    lines = [
        "| set | frames | method | F@5cm | precision | recall | acc (cm) | comp (cm) | seconds "
        "| F - stereo |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ref = stereo.get(r["set"])
        margin = (
            "" if r["method"] == "stereo" or ref is None else f"{r['fscore'] - ref['fscore']:+.3f}"
        )
        lines.append(
            f"| {r['set']} | {r['frames']} | {r['method']} | **{r['fscore']:.3f}** | "
            f"{r['prec']:.3f} | {r['recal']:.3f} | {100 * r['acc']:.1f} | "
            f"{100 * r['comp']:.1f} | {r['seconds']:.0f} | {margin} |"
        )
    return "\n".join(lines)


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` rows with those of the same set and method replaced by ``new`` ones, in
    set order, stereo first."""
    by_key = {(r["set"], r["method"]): r for r in old}
    by_key.update({(r["set"], r["method"]): r for r in new})
    return sorted(
        by_key.values(), key=lambda r: (SETS.index(r["set"]), r["method"] != "stereo", r["method"])
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="model file or checkpoint (default: bundled)")
    parser.add_argument("--label", default="bundled", help="the model's name in the table")
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--stereo-again", action="store_true", help="remeasure stereo rows")
    parser.add_argument(
        "--no-evidence", action="store_true", help="the model's own grid (model.evidence=false)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    old = json.loads(JSON_OUT.read_text())["rows"] if JSON_OUT.exists() else []
    have = {(r["set"], r["method"]) for r in old}
    rows = []
    for name in args.sets:
        label = args.label + (" (evidence off)" if args.no_evidence else "")
        runs = [(f"model: {label}", args.checkpoint)]
        if args.stereo_again or (name, "stereo") not in have:
            runs.insert(0, ("stereo", None))
        for method, checkpoint in runs:
            kind = "stereo" if method == "stereo" else "model"
            row = harness.call_fresh(run_one, name, kind, checkpoint, not args.no_evidence)
            if row is None:
                print(f"{name}: data not found, skipped")
                break
            rows.append({**row, "method": method})
            print(
                f"{name:<15} {method:<30} F {row['fscore']:.3f} P {row['prec']:.3f} "
                f"R {row['recal']:.3f} {row['seconds']:.0f} s",
                flush=True,
            )
    table = markdown_table(merged(old, rows))
    print(table)
    if args.no_write or not rows:
        return
    harness.write_json(JSON_OUT, {"rows": merged(old, rows)})
    harness.replace_block(CARD, table, START, END)


if __name__ == "__main__":
    main()
