"""Export a training checkpoint as a model file for inference.

    python -m atlas.model.export outputs/train/synthetic_cpu/checkpoints/best.ckpt \\
        atlas/model/weights/atlas_cpu.pt --card docs/model_card.json

The model file holds the architecture, float32 weights, the input contract (the prior's
stereo settings and image size the checkpoint was trained on, see
:mod:`atlas.model.contract`) and a card (free-form facts: data, steps, time, hardware,
metrics), and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from atlas.model.checkpoint import load_model, read_model_file, save_model


def export(checkpoint: str | Path, out: str | Path, card: dict | None = None) -> Path:
    """Write ``out`` from a checkpoint; ``card`` entries join the checkpoint's own."""
    net, cfg, own_card, contract = load_model(checkpoint)
    return save_model(net, cfg, out, contract, {**own_card, **(card or {})})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", help="Lightning .ckpt or model file")
    parser.add_argument("out", help="model file to write (.pt)")
    parser.add_argument("--card", help="JSON file of facts to store with the model")
    args = parser.parse_args(argv)
    card = json.loads(Path(args.card).read_text()) if args.card else None
    path = export(args.checkpoint, args.out, card)
    record = read_model_file(path)
    size = path.stat().st_size / 1e6
    prior = record["contract"]["prior_preset"]
    print(f"{path}: {size:.1f} MB, prior {prior}, card keys {sorted(record['card'])}")


if __name__ == "__main__":
    main()
