"""``make demo`` (atlas/demo.py) end to end on a short sequence: the model, its stereo prior
and depth fusion scored against the room, the picture and the files written."""

from __future__ import annotations

import json

from atlas import demo


def test_demo_reports_the_model_its_prior_and_depth_fusion(tmp_path):
    summary = demo.main(["--root", str(tmp_path), "--frames", "12"])
    metrics = summary["metrics"]
    assert set(metrics) == {"model", "stereo_prior", "depth_fusion"}
    assert metrics["depth_fusion"]["fscore"] > 0.9  # its own depth, fused at 4 cm
    assert 0 < metrics["model"]["fscore"] <= 1 and metrics["model"]["prec"] > 0.3
    out = tmp_path / "output" / "scene0000_00"
    for name in ("model/mesh.ply", "depth_fusion/mesh.ply", "depth_fusion/summary.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text())["metrics"] == metrics
    assert (out / "preview.png").stat().st_size > 10_000
