"""The README stays short, and its methods table is what docs/tables.py makes from the
JSON reports in docs/ (a report rerun without regenerating the table fails here)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def load_tables():
    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "docs" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_under_12_kb():
    size = len(README.read_bytes())
    assert size < 12 * 1024, f"README.md is {size} bytes; move detail into docs/"


def test_readme_methods_table_is_generated_from_the_reports():
    tables = load_tables()
    text = README.read_text()
    assert tables.current_block(text) == tables.methods_table(), (
        "README.md's methods table is stale: run python docs/tables.py"
    )
    assert tables.main(["--check"]) == 0


REPORTS = (
    "model_eval.json",
    "model_eval_evidence.json",
    "real_rooms.json",
    "real_data.json",
    "stereo_bench.json",
)


def test_a_changed_report_changes_the_table(tmp_path):
    tables = load_tables()
    docs = ROOT / "docs"
    for name in REPORTS:
        (tmp_path / name).write_text((docs / name).read_text())
    bench = json.loads((tmp_path / "stereo_bench.json").read_text())
    for row in bench["rows"]:  # a rerun of the stereo benchmark
        if row["scene"] == "scannet":
            row["fscore"] = 0.9
    (tmp_path / "stereo_bench.json").write_text(json.dumps(bench))
    assert tables.methods_table(tmp_path) != tables.methods_table(docs)
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    assert tables.main(["--check", "--readme", str(readme), "--docs", str(tmp_path)]) == 1
    assert tables.main(["--readme", str(readme), "--docs", str(tmp_path)]) == 0
    assert tables.main(["--check", "--readme", str(readme), "--docs", str(tmp_path)]) == 0


def test_a_readme_without_markers_is_an_error(tmp_path):
    tables = load_tables()
    readme = tmp_path / "README.md"
    readme.write_text("no table here\n")
    with pytest.raises(SystemExit, match="methods:start"):
        tables.main(["--readme", str(readme)])


def test_local_links_in_readme_and_docs_resolve():
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target:
                continue
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"
