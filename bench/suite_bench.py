"""Wall time of ``make test`` on a fresh clone, as CI runs it.

    .venv/bin/python bench/suite_bench.py [--keep] [--no-write]

Clones HEAD into a temporary folder outside the repository (so ``../shared/data`` is
absent there, as on CI, and the tests that need it skip), then times ``make setup``
(the virtual environment and every package: on this machine from the local package
mirror) and ``make test`` apart, and counts the passed and skipped tests. Writes
``docs/suite_bench.json`` and the ``suite_bench`` block of docs/benchmarks.md. The
target (issue 20) is ``make test`` under 5 minutes on 2 cores; the number printed is
the suite's, setup excluded.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script (python bench/suite_bench.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness

JSON_OUT = harness.ROOT / "docs" / "suite_bench.json"
SUMMARY = re.compile(r"(\d+) passed(?:, (\d+) skipped)?.* in ([\d.]+)s")


def timed_make(target: str, clone: Path) -> tuple[float, str]:
    """``make target`` in ``clone``: (wall seconds, its output); ``SystemExit`` with the
    output's tail when it fails."""
    t0 = time.perf_counter()
    run = subprocess.run(["make", target], cwd=clone, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"make {target} failed in {clone}:\n{(run.stdout + run.stderr)[-3000:]}")
    return seconds, run.stdout + run.stderr


def parse_counts(output: str) -> tuple[int, int]:
    """(passed, skipped) from pytest's last summary line in ``output``."""
    found = SUMMARY.findall(output)
    if not found:
        raise ValueError("no pytest summary line ('N passed ... in Ss') in the output")
    passed, skipped, _ = found[-1]
    return int(passed), int(skipped or 0)


def markdown(result: dict) -> str:
    return (
        "| what | seconds |\n|---|---:|\n"
        f"| `make setup` on a fresh clone (venv and packages) | {result['setup_s']:.0f} |\n"
        f"| `make test` after it ({result['passed']} passed, {result['skipped']} skipped) "
        f"| {result['test_s']:.0f} |\n\n"
        f"{result['machine']}; commit {result['commit']}, {result['date']}."
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    clone = Path(tempfile.mkdtemp(prefix="suite_bench_")) / "atlas"
    subprocess.run(["git", "clone", "-q", str(harness.ROOT), str(clone)], check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    try:
        setup_s, _ = timed_make("setup", clone)
        test_s, output = timed_make("test", clone)
    finally:
        if not args.keep:
            shutil.rmtree(clone.parent, ignore_errors=True)
    passed, skipped = parse_counts(output)
    result = {
        "commit": commit,
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})",
        "setup_s": round(setup_s, 1),
        "test_s": round(test_s, 1),
        "passed": passed,
        "skipped": skipped,
    }
    table = markdown(result)
    print(table)
    if not args.no_write:
        harness.write_json(JSON_OUT, result)
        harness.replace_block(harness.BENCHMARKS_MD, table, *harness.block_markers("suite_bench"))
    return result


if __name__ == "__main__":
    main()
