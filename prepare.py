"""Prepare raw scenes for training and evaluation (ground-truth TSDFs, index, mesh).

python prepare.py data=synthetic
python prepare.py data=scannet shard=0 num_shards=4          # one of 4 processes
python prepare.py -m data=scannet shard=0,1,2,3 num_shards=4 # all 4 (Hydra multirun)
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from atlas.config import register_configs

register_configs()


@hydra.main(version_base="1.3", config_path="configs", config_name="prepare")
def main(cfg: DictConfig) -> None:
    from atlas.data.prepare import PrepareSettings, prepare_dataset

    settings = PrepareSettings(
        voxel_sizes=tuple(cfg.voxel_sizes),
        max_depth=cfg.max_depth,
        trunc_voxels=cfg.trunc_voxels,
        margin=cfg.margin,
        align=cfg.align,
        device=cfg.device,
        skip_bad_frames=cfg.skip_bad_frames,
        prior_voxel_size=cfg.prior_voxel_size,
        stereo=OmegaConf.to_object(cfg.stereo),
    )
    dataset = instantiate(cfg.data.raw)
    summary = prepare_dataset(
        dataset, cfg.out_dir, settings, cfg.shard, cfg.num_shards, cfg.stop_on_error
    )
    for line in summary.lines():
        print(line)
    if summary.failed:
        sys.exit(1)


if __name__ == "__main__":
    logging.captureWarnings(True)
    main()
