"""Train the ATLAS model (Hydra entry point).

    python train.py experiment=synthetic_cpu                 # the bundled model's recipe
    python train.py experiment=synthetic_cpu ckpt_path=last  # resume where it stopped
    python train.py experiment=scannet trainer=gpu           # the paper setting

Writes ``<out_dir>/checkpoints/{last,best}.ckpt`` (best by validation F-score),
TensorBoard and CSV logs under ``<out_dir>/logs``, and per validation a mesh and a PNG
of every validation scene under ``<out_dir>/logs/.../val/step_N/``. Export a trained
checkpoint for inference with ``python -m atlas.model.export``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from atlas.config import register_configs

register_configs()


def resolve_ckpt(ckpt_path: str | None, out_dir: str) -> str | None:
    """``last`` means this run's last checkpoint; a missing file is an error naming it."""
    if ckpt_path is None:
        return None
    path = Path(out_dir) / "checkpoints" / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint to resume from")
    return str(path)


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    import pytorch_lightning as pl
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import LearningRateMonitor
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    try:
        ckpt = resolve_ckpt(cfg.ckpt_path, cfg.out_dir)
        pl.seed_everything(cfg.seed, workers=True)
        datamodule = instantiate(cfg.datamodule, _convert_="all")
        module = instantiate(cfg.model, _convert_="all")
        loggers = [
            TensorBoardLogger(cfg.out_dir, name="logs", version=""),
            CSVLogger(cfg.out_dir, name="logs", version=""),
        ]
        callbacks = [
            instantiate(cfg.checkpoint_best),
            instantiate(cfg.checkpoint_last),
            LearningRateMonitor("step"),
        ]
        trainer = instantiate(cfg.trainer, logger=loggers, callbacks=callbacks)
    except (FileNotFoundError, ValueError, TypeError, InstantiationException) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)  # one line
        sys.exit(2)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    best = callbacks[0].best_model_path
    print(f"checkpoints: {Path(cfg.out_dir) / 'checkpoints'} (best: {best or 'none'})")


if __name__ == "__main__":
    main()
