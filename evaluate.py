"""Evaluate reconstructed meshes against ground truth (Hydra entry point).

    python evaluate.py pred_mesh=mesh.ply gt_mesh=gt.ply protocol=atlas
    python evaluate.py pred_mesh=mesh.ply scene=data/demo/scans/scene0000_00 protocol=culled
    python evaluate.py pred_dir=outputs/infer data_root=data/scannet split=val baseline.enabled=true

Prints a Markdown table and, as the last line of stdout, one JSON object of the mean
metrics. Keys, protocols and outputs: docs/evaluation.md. Logic: atlas/evaluation/.
Each scene that could not be evaluated (a missing or unreadable prediction included,
unless ``missing_pred=zero``) also gets one ``error:`` line on stderr (the exit code is
1 when all failed); bad settings or an output folder that cannot be written stop the
run at once (exit code 2).

Nothing here imports torch, Matplotlib or Open3D: they load only when a run needs them
(fusion, plots), so a mesh pair without plots starts quickly (docs/benchmarks.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from atlas.cli import fail, run_cli
from atlas.evaluation.config import register_configs
from atlas.evaluation.report import json_safe
from atlas.evaluation.runner import Recordings, run
from atlas.io_utils import check_writable_dir

register_configs()


def report_failures(report: Path) -> None:
    """One ``error: <scene> (<method>): <reason>`` line on stderr per failed row of the
    JSON report ``report``."""
    for row in json.loads(report.read_text())["scenes"]:
        if row["status"] == "failed":
            reason = " ".join(row["error"].split())
            print(f"error: {row['scene']} ({row['method']}): {reason}", file=sys.stderr)


def _open_scannet(scene_dir: Path):
    from atlas.readers.scannet import ScanNetFolder

    return ScanNetFolder(scene_dir)


def _scannet_split(data_root: str, split: str) -> list[str]:
    from atlas.readers.scannet import read_split

    return read_split(data_root, split)


@hydra.main(config_path="configs", config_name="evaluate", version_base="1.3")
def main(dict_cfg: DictConfig) -> None:
    cfg = OmegaConf.to_object(dict_cfg)
    out_dir = Path(cfg.output_dir or HydraConfig.get().runtime.output_dir)
    try:
        # The readers load only when a run names recordings (scene=, data_root=).
        recordings = Recordings(_open_scannet, _scannet_split)
        line, table = run(cfg, check_writable_dir(out_dir), recordings)
    except (OSError, ValueError) as err:
        fail(err)
    print(table, flush=True)
    print(json.dumps(json_safe(line)), flush=True)
    report_failures(Path(line["report"]))
    if line["n_failed"] == line["n_scenes"]:
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main)
