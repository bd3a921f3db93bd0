"""Evaluate reconstructed meshes against ground truth (Hydra entry point).

    python evaluate.py pred_mesh=mesh.ply gt_mesh=gt.ply protocol=atlas
    python evaluate.py pred_mesh=mesh.ply scene=data/demo/scans/scene0000_00 protocol=culled
    python evaluate.py pred_dir=outputs/infer data_root=data/scannet split=val baseline.enabled=true

Prints a Markdown table and, as the last line of stdout, one JSON object of the mean
metrics. Keys, protocols and outputs: docs/evaluation.md. Logic: atlas/evaluation/.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from atlas.evaluation.config import register_configs
from atlas.evaluation.report import json_safe
from atlas.evaluation.runner import run

register_configs()


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(dict_cfg: DictConfig) -> None:
    cfg = OmegaConf.to_object(dict_cfg)
    out_dir = Path(cfg.output_dir or HydraConfig.get().runtime.output_dir)
    try:
        line, table = run(cfg, out_dir)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(table, flush=True)
    print(json.dumps(json_safe(line)), flush=True)
    if line["n_failed"] == line["n_scenes"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
