"""bench/real_data.py rewrites only the README's real-data table block."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("real_data", ROOT / "bench" / "real_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_table_block_is_replaced_and_nothing_else(tmp_path):
    bench = load_bench()
    scores = {"atlas": 0.5, "trimmed": 0.25, "culled": 0.125}
    methods = {
        bench.MODEL: {
            "voxel_size": 0.08,
            "metrics": {p: {"fscore": f} for p, f in scores.items()},
        }
    }
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{bench.README_START}\nold table\n{bench.README_END}\noutro\n")
    bench.update_readme(readme, bench.readme_table(methods))
    lines = readme.read_text().splitlines()
    assert lines[0] == "intro" and lines[-1] == "outro"
    assert "old table" not in lines
    assert "| bundled model (0.08 m) | 0.500 | 0.250 | 0.125 |" in lines
    assert lines.index(bench.README_START) < lines.index(bench.README_END)
    missing = tmp_path / "other.md"
    missing.write_text("no markers\n")
    with pytest.raises(SystemExit, match="other.md"):
        bench.update_readme(missing, "x")
