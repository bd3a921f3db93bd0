"""Train the ATLAS model (Hydra entry point).

    python train.py experiment=synthetic_cpu                 # the bundled model's recipe
    python train.py experiment=synthetic_cpu ckpt_path=last  # resume where it stopped
    python train.py experiment=scannet trainer=gpu           # the paper setting

Writes ``<out_dir>/checkpoints/{last,best}.ckpt`` (best by validation F-score),
TensorBoard and CSV logs under ``<out_dir>/logs``, and per validation a mesh and a PNG
of every validation scene under ``<out_dir>/logs/.../val/step_N/``. Export a trained
checkpoint for inference with ``python -m atlas.model.export``.

Bad settings, missing or unreadable prepared scenes, a checkpoint that does not fit the
model or an output folder that cannot be written end the run before anything is written
(one ``error:`` line on stderr, exit code 2); bad data met while training (an unreadable
image) ends it with one such line and exit code 1.
"""

from __future__ import annotations

from pathlib import Path

import hydra
from omegaconf import DictConfig

from atlas.cli import fail, run_cli
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


def check_resumable(path: str, module) -> None:
    """``ValueError`` naming ``path`` unless it is a readable training checkpoint whose
    weights fit ``module`` (the ``ATLASModule`` of this run's model config), so that
    resuming cannot fail inside Lightning. Loads the weights into ``module`` (resuming
    loads them again)."""
    import torch

    from atlas.model.checkpoint import load_weights

    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a bad file
        raise ValueError(f"{path}: not a readable checkpoint ({type(err).__name__})") from None
    if not isinstance(raw, dict) or "state_dict" not in raw or "optimizer_states" not in raw:
        raise ValueError(
            f"{path}: not a training checkpoint (to start from a model file's weights, "
            "use model.init_weights=...)"
        )
    load_weights(module, raw["state_dict"], path)


@hydra.main(version_base="1.3", config_path="configs", config_name="train")
def main(cfg: DictConfig) -> None:
    import pytorch_lightning as pl
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate
    from pytorch_lightning.callbacks import LearningRateMonitor
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from atlas.io_utils import check_writable_dir

    try:
        ckpt = resolve_ckpt(cfg.ckpt_path, cfg.out_dir)
        check_writable_dir(cfg.out_dir)
        pl.seed_everything(cfg.seed, workers=True)
        datamodule = instantiate(cfg.datamodule, _convert_="all")
        module = instantiate(cfg.model, _convert_="all")
        if ckpt is not None:
            check_resumable(ckpt, module)
        datamodule.setup("fit")  # missing or unreadable scenes: before anything is written
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
    except (OSError, ValueError, TypeError, InstantiationException) as err:
        fail(err, 2)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt)
    except (OSError, ValueError) as err:  # bad data: the readers name the file
        fail(err, 1)
    best = callbacks[0].best_model_path
    print(f"checkpoints: {Path(cfg.out_dir) / 'checkpoints'} (best: {best or 'none'})")


if __name__ == "__main__":
    run_cli(main)
