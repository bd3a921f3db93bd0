"""Prepare raw scenes for training and evaluation (ground-truth TSDFs, index, mesh).

python prepare.py data=synthetic
python prepare.py data=scannet shard=0 num_shards=4          # one of 4 processes
python prepare.py -m data=scannet shard=0,1,2,3 num_shards=4 # all 4 (Hydra multirun)

Prints a summary on stdout; each failed scene also gets one ``error: <scene>: <reason>``
line on stderr (the exit code is then 1). Bad settings (``device=gpu``, ``device=cuda``
without a CUDA GPU, ``align=upp``, voxel sizes that do not nest...) or an output folder
that cannot be written end the run before any scene (exit code 2).
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atlas.cli import fail, run_cli
from atlas.config import register_configs, resolve_device
from atlas.stereo.pipeline import check_stereo_config

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="prepare")
def main(cfg: DictConfig) -> None:
    from atlas.io_utils import check_writable_dir
    from atlas.preparation.prepare import PrepareSettings, prepare_dataset

    try:
        settings = PrepareSettings(
            voxel_sizes=tuple(cfg.voxel_sizes),
            max_depth=cfg.max_depth,
            trunc_voxels=cfg.trunc_voxels,
            margin=cfg.margin,
            align=cfg.align,
            device=resolve_device(cfg.device),
            skip_bad_frames=cfg.skip_bad_frames,
            prior_voxel_size=cfg.prior_voxel_size,
            stereo=OmegaConf.to_object(cfg.stereo),
        )
        settings.check()
        check_stereo_config(settings.stereo)
        check_writable_dir(cfg.out_dir)
        dataset = instantiate(cfg.data.raw)
        summary = prepare_dataset(
            dataset, cfg.out_dir, settings, cfg.shard, cfg.num_shards, cfg.stop_on_error
        )
    except (OSError, ValueError) as err:
        fail(err)
    for line in summary.lines():
        print(line)
    for name, reason in summary.failed.items():
        print(f"error: {name}: {reason}", file=sys.stderr)
    if summary.failed:
        sys.exit(1)


if __name__ == "__main__":
    logging.captureWarnings(True)
    run_cli(main)
