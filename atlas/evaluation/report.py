"""Evaluation reports: per-scene rows and their means, as JSON, CSV and a Markdown table.

A row is a flat dict: ``scene``, ``method`` (``prediction`` or a baseline's name),
``status`` (``ok`` or ``failed``), ``warning`` / ``error`` text, and metric values.
Non-finite values (the infinite accuracy of an empty prediction, a metric with nothing
to average) are written as ``null`` in JSON and empty in CSV.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from atlas.io_utils import atomic_path

TEXT_KEYS = ("scene", "method", "status", "warning", "error")
TABLE_KEYS = (
    "acc",
    "comp",
    "chamfer",
    "prec",
    "recal",
    "fscore",
    "AbsRel",
    "AbsDiff",
    "RMSE",
    "r1",
    "complete",
    "tsdf_l1",
)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)


def metric_keys(rows: list[dict]) -> list[str]:
    """Numeric keys of the rows, in order of first appearance."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update({k: None for k, v in row.items() if k not in TEXT_KEYS and _is_number(v)})
    return list(keys)


def mean_rows(rows: list[dict]) -> list[dict]:
    """One ``scene = "mean"`` row per method over its ``ok`` rows (NaN values skipped,
    infinite ones kept), with ``n_scenes`` and ``n_failed``."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        ok = [r for r in mine if r["status"] == "ok"]
        mean: dict[str, Any] = {"scene": "mean", "method": method, "status": "ok"}
        for key in metric_keys(ok):
            values = np.array([r[key] for r in ok if _is_number(r.get(key))], np.float64)
            finite_or_inf = values[~np.isnan(values)]
            mean[key] = float(finite_or_inf.mean()) if len(finite_or_inf) else float("nan")
        mean.update(n_scenes=len(ok), n_failed=len(mine) - len(ok))
        out.append(mean)
    return out


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats replaced by None (strict JSON), recursively."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _cell(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not _is_number(value):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(value)
    if math.isnan(value):
        return "-"
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def markdown_table(rows: list[dict]) -> str:
    """A Markdown table of the rows: scene, method, the main metrics present, status."""
    keys = [k for k in TABLE_KEYS if any(k in r for r in rows)]
    header = ["scene", "method", *keys, "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        status = r["status"] if r["status"] == "ok" else f"failed: {r.get('error', '')}"
        if r.get("warning"):
            status += f" ({r['warning']})"
        cells = [r["scene"], r["method"], *(_cell(r.get(k, float("nan"))) for k in keys)]
        lines.append("| " + " | ".join([*cells, status.replace("|", "/")]) + " |")
    return "\n".join(lines) + "\n"


def write_reports(summary: dict, rows: list[dict], means: list[dict], out_dir: Path) -> dict:
    """Write ``metrics.json`` (the summary), ``metrics.csv`` and ``metrics.md`` (rows then
    means) into ``out_dir``, each atomically. Returns their paths by format."""
    out_dir = Path(out_dir)
    paths = {fmt: out_dir / f"metrics.{fmt}" for fmt in ("json", "csv", "md")}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps(json_safe(summary), indent=2) + "\n")
    table = rows + means
    columns = [*TEXT_KEYS, *metric_keys(table)]
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for r in table:
            writer.writerow({k: "" if (v := json_safe(r.get(k))) is None else v for k in columns})
    with atomic_path(paths["md"]) as tmp:
        tmp.write_text(markdown_table(table))
    return paths
