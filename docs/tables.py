"""The README's methods table, generated from the measured reports in docs/.

    python docs/tables.py            # rewrite the block in README.md
    python docs/tables.py --check    # exit 1 when README.md's block is stale

Reads ``model_eval.json`` (``python -m atlas.model_card --stereo-method``, the model's
own 8 cm grid), ``model_eval_evidence.json`` (``python -m atlas.model_card --out
docs/model_eval_evidence.json``, with the evidence rule), ``real_rooms.json`` (``python
bench/real_rooms.py``), ``real_data.json`` (``python bench/real_data.py``) and
``stereo_bench.json`` (``python bench/stereo_bench.py``) and rewrites what lies between
``<!-- methods:start -->`` and ``<!-- methods:end -->`` in README.md. Numbers are never
typed into the README: rerun this after a report changes (``tests/test_docs.py`` fails
until then). Standard library only, so it runs without the project installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path

DOCS = Path(__file__).resolve().parent
README = DOCS.parent / "README.md"
START, END = "<!-- methods:start -->", "<!-- methods:end -->"

# Columns: (key, header). Each row gives, per column, an F-score and optionally seconds.
COLUMNS = (
    ("synthetic", "synthetic rooms¹"),
    ("scannet", "ScanNet room²"),
    ("7scenes", "7-Scenes kitchen³"),
)


def _load(docs: Path, name: str) -> dict:
    path = docs / name
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{path}: cannot read the report ({err})") from None


def _mean(model_eval: dict, set_name: str, method: str) -> float | None:
    """The F-score of ``method`` averaged over ``set_name`` in model_eval.json."""
    for row in model_eval["means"]:
        if row["set"] == set_name and row["method"] == method and row.get("status") == "ok":
            return row["fscore"]
    return None


def _stereo(bench: dict, scene: str, preset: str) -> tuple[float, float] | None:
    """(F-score, seconds) of a stereo preset on a scene in stereo_bench.json."""
    for row in bench["rows"]:
        if row["scene"] == scene and row["preset"] == preset:
            return row["fscore"], row["seconds"]
    return None


def rows(docs: Path = DOCS) -> list[dict]:
    """The table's rows: label, input, one F-score per column (or None), seconds on
    the 7-Scenes kitchen (or None)."""
    model_eval = _load(docs, "model_eval.json")
    real = _load(docs, "real_data.json")["methods"]
    bench = _load(docs, "stereo_bench.json")

    def real_f(method: str) -> float:
        return real[method]["metrics"]["atlas"]["fscore"]

    evidence = _load(docs, "model_eval_evidence.json")
    rooms = {(r["set"], r["method"]): r for r in _load(docs, "real_rooms.json")["rows"]}
    out = [
        {
            "label": "`method=model` (the bundled model with the evidence rule, 4 cm)",
            "input": "RGB",
            "synthetic": _mean(evidence, "synthetic", "model"),
            "scannet": rooms[("scannet", "model: bundled")]["fscore"],
            "7scenes": real_f("model"),
            "seconds": real["model"]["seconds"],
        },
        {
            "label": "the model's stereo prior alone (8 cm)",
            "input": "RGB",
            "synthetic": _mean(model_eval, "synthetic", "stereo prior"),
            "7scenes": real_f("model's stereo prior"),
            "seconds": real["model's stereo prior"]["seconds"],
        },
    ]
    labels = {
        "default": "`method=stereo` (its default preset, 4 cm)",
        "fast": "`method=stereo stereo=fast` (4 cm)",
    }
    for preset, label in labels.items():
        row = {"label": label, "input": "RGB"}
        for scene in ("scannet", "7scenes"):
            found = _stereo(bench, scene, preset)
            row[scene] = None if found is None else found[0]
            if scene == "7scenes" and found is not None:
                row["seconds"] = found[1]
        if preset == "fast":  # the model card's method=stereo runs used what is now `fast`
            row["synthetic"] = _mean(model_eval, "synthetic", "method=stereo")
        out.append(row)
    out.append(
        {
            "label": "`method=fusion` of the sensor depth (4 cm)",
            "input": "RGB-D",
            "7scenes": real_f("depth fusion"),
            "seconds": real["depth fusion"]["seconds"],
        }
    )
    return out


def methods_table(docs: Path = DOCS) -> str:
    """The Markdown block (table and notes) that goes between the README's markers."""
    table = rows(docs)
    best = {}  # per column, the best F-score from RGB alone
    for key, _ in COLUMNS:
        scores = [r[key] for r in table if r["input"] == "RGB" and r.get(key) is not None]
        best[key] = max(scores, default=None)
    header = ["method", "input", *(title for _, title in COLUMNS), "seconds³"]
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(COLUMNS) + 1)]
    for r in table:
        cells = [r["label"], r["input"]]
        for key, _ in COLUMNS:
            value = r.get(key)
            text = "–" if value is None else f"{value:.3f}"
            if value is not None and value == best[key] and r["input"] == "RGB":
                text = f"**{text}**"
            cells.append(text)
        seconds = r.get("seconds")
        cells.append("–" if seconds is None else f"{seconds:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = (
        "F-score at 5 cm (ATLAS protocol); in bold the best from RGB alone in each column. "
        "¹ The 7 held-out synthetic rooms of the [model card](docs/model_card.md) "
        "(`docs/model_eval.json`, the model row `docs/model_eval_evidence.json`; its "
        "`method=stereo` runs predate the presets and used what is now `fast`). "
        "² 300 real ScanNet frames against their depth fused at 2 cm "
        "(`docs/stereo_bench.json`, the model row `docs/real_rooms.json`). "
        "³ 500 real Kinect frames of 7-Scenes against their depth fused at 4 cm, and the "
        "wall-clock seconds from images to mesh on a shared 2-core CPU "
        "(`docs/real_data.json`; the stereo rows `docs/stereo_bench.json`). `fusion` fuses "
        "the very depth the ground truth is made of: its score checks the frames line up "
        "and is the RGB-D ceiling, not a competitor. Written by `python docs/tables.py` "
        "from those reports."
    )
    notes = textwrap.fill(notes, 88, break_long_words=False, break_on_hyphens=False)
    return "\n".join(lines) + "\n\n" + notes + "\n"


def replace_block(text: str, block: str, where: str = "README.md") -> str:
    """``text`` with what lies between the methods markers replaced by ``block``."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{where}: no '{START}' ... '{END}' block to update")
    return f"{text[: start + len(START)]}\n{block}{text[end:]}"


def current_block(text: str) -> str:
    """What lies between the methods markers of ``text`` (without the marker lines)."""
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"no '{START}' ... '{END}' block")
    return text[start + len(START) : end].lstrip("\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--docs", type=Path, default=DOCS, help="where the JSON reports are")
    parser.add_argument("--check", action="store_true", help="only say whether it is stale")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    new = replace_block(text, methods_table(args.docs), str(args.readme))
    if args.check:
        if new != text:
            print(f"{args.readme}: the methods table is stale; run python docs/tables.py")
            return 1
        return 0
    if new != text:
        tmp = args.readme.with_name(f".{args.readme.name}.tmp")
        tmp.write_text(new)
        tmp.replace(args.readme)
        print(f"{args.readme}: methods table rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
