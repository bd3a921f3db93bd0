"""bench/stereo_bench.py: rows merge by scene and preset, only its block of the
benchmarks page is rewritten, and the depth-in-colour-view projection is exact."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from atlas.readers.frames import Frame

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location(
        "stereo_bench", ROOT / "bench" / "stereo_bench.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importing runs nothing
    return module


def _row(scene, preset, f):
    keys = ("keyframes", "seconds", "peak_gb", "prec", "recal", "kept", "AbsRel", "r1")
    return {"scene": scene, "preset": preset, "fscore": f, **dict.fromkeys(keys, 1)}


def test_rows_merge_by_scene_and_preset(bench):
    old = [_row("scannet", "fast", 0.1), _row("synthetic", "fast", 0.2)]
    new = [_row("scannet", "fast", 0.3), _row("scannet", "default", 0.4)]
    merged = bench.merge_rows(old, new)
    assert [(r["scene"], r["preset"], r["fscore"]) for r in merged] == [
        ("synthetic", "fast", 0.2),
        ("scannet", "fast", 0.3),
        ("scannet", "default", 0.4),
    ]


def test_only_the_marked_block_is_replaced(bench, tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"intro\n{bench.START}\nold\n{bench.END}\noutro\n")
    bench.replace_block(doc, bench.markdown_table([_row("scannet", "fast", 0.5)]))
    text = doc.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n")
    assert "old" not in text and "**0.500**" in text
    (tmp_path / "plain.md").write_text("no markers")
    with pytest.raises(ValueError, match="plain.md"):
        bench.replace_block(tmp_path / "plain.md", "x")


def test_depth_seen_from_the_color_camera(bench):
    # a wall 2 m ahead seen by a depth camera of twice the colour camera's focal length
    depth = np.full((8, 8), 2.0, dtype=np.float32)
    K_depth = np.array([[8.0, 0, 3.5], [0, 8.0, 3.5], [0, 0, 1]])
    K_color = np.array([[4.0, 0, 3.5], [0, 4.0, 3.5], [0, 0, 1]])
    frame = Frame(np.zeros((8, 8, 3), np.uint8), depth, np.eye(4), K_color, K_depth, 0, "f")
    out = bench.depth_in_color_view(frame, K_color, (8, 8))
    # the depth camera sees half the colour camera's field: its middle 4x4 pixels
    assert np.all(out[2:6, 2:6] == 2.0)
    assert out[0].max() == 0 and out[:, 0].max() == 0
