"""The layer contract (pyproject.toml ``[tool.importlinter]``, docs/architecture.md) holds,
and breaks when a lower layer imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the ``atlas`` package found first on ``project``'s path."""
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(project / "pyproject.toml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_layers_hold_and_a_reversed_import_breaks_them(tmp_path):
    kept = lint_imports(ROOT)
    assert kept.returncode == 0, kept.stdout[-2000:]
    assert "1 kept, 0 broken" in kept.stdout

    copy = tmp_path / "project"
    shutil.copytree(ROOT / "atlas", copy / "atlas", ignore=shutil.ignore_patterns("weights"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    mesh = copy / "atlas" / "geometry" / "mesh.py"  # the base layer reaching for the top
    mesh.write_text(mesh.read_text() + "\nfrom atlas.pipeline import scene  # noqa: E402\n")
    broken = lint_imports(copy)
    assert broken.returncode == 1, broken.stdout[-2000:]
    assert "atlas.geometry is not allowed to import atlas.pipeline" in broken.stdout
    assert "atlas.geometry.mesh -> atlas.pipeline.scene" in broken.stdout
