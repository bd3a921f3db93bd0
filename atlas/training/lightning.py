"""LightningModule: training, validation with meshes and F-score, optimiser schedule."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytorch_lightning as pl
import torch

from atlas.evaluation.mesh_metrics import mesh_metrics
from atlas.geometry import VoxelGrid, extract_mesh, read_ply, write_ply
from atlas.geometry.render import save_preview
from atlas.model.checkpoint import load_weights, read_model_file
from atlas.model.config import ModelConfig, build_model
from atlas.model.loss import observed_loss, scale_loss, semantic_loss
from atlas.model.volume_net import ScaleOutput
from atlas.readers.prepared import scale_key

log = logging.getLogger(__name__)


def prediction_grid(
    output: ScaleOutput,
    count: torch.Tensor,
    origin: torch.Tensor,
    voxel_size: float,
    index: int = 0,
) -> VoxelGrid:
    """The finest prediction of batch item ``index`` as a grid: voxels no view saw, or
    that the observed head says no scan would see, are unobserved (weight 0), so no
    surface is made there."""
    seen = (count[index, 0] > 0) & (output.observed[index, 0] > 0)
    return VoxelGrid(
        output.tsdf[index, 0].detach().float().cpu().numpy(),
        seen.float().cpu().numpy(),
        origin[index].double().cpu().numpy(),
        voxel_size,
    )


class ATLASModule(pl.LightningModule):
    """model: :class:`ModelConfig` fields as a dict; loss_weights: per scale, finest
    first; lr, weight_decay: Adam; warmup_steps then cosine decay to ``min_lr_ratio``
    of ``lr`` at the trainer's ``max_steps``; observed_weight: weight of the observed
    head's cross-entropy; semantic_weight: cross-entropy weight
    when the model has a semantic head; fscore_threshold: metres, validation F-score;
    init_weights: a model file or training checkpoint of the same architecture to start
    from (fine-tuning: fresh optimiser and schedule; ``ckpt_path`` resumption overrides
    it), or of one without this model's trailing input channels (``color_variance``),
    which then start at zero weight."""

    def __init__(
        self,
        model: dict,
        loss_weights: tuple[float, ...] = (1.0, 1.0, 1.0),
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.05,
        observed_weight: float = 0.5,
        semantic_weight: float = 0.1,
        fscore_threshold: float = 0.05,
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.config = ModelConfig.from_dict(model)
        self.save_hyperparameters(
            {
                "model": self.config.to_dict(),
                "loss_weights": list(loss_weights),
                "lr": lr,
                "weight_decay": weight_decay,
                "warmup_steps": warmup_steps,
                "min_lr_ratio": min_lr_ratio,
                "observed_weight": observed_weight,
                "semantic_weight": semantic_weight,
                "fscore_threshold": fscore_threshold,
                "init_weights": init_weights,
            }
        )
        if len(loss_weights) != len(self.config.voxel_sizes):
            raise ValueError(
                f"loss_weights needs one weight per scale "
                f"{self.config.voxel_sizes}, got {list(loss_weights)}"
            )
        self.model = build_model(self.config)
        if init_weights is not None:
            state = read_model_file(init_weights)["state_dict"]
            wide = self.model.net.widen_inputs(state, "net.")
            if wide is not state:
                log.info(
                    "%s: the 3D network's input widened from %d to %d channels (zero weights)",
                    init_weights,
                    state["net.stem.0.0.weight"].shape[1],
                    wide["net.stem.0.0.weight"].shape[1],
                )
            load_weights(self.model, wide, init_weights)
        self.loss_weights = tuple(loss_weights)

    def setup(self, stage: str) -> None:
        """Record the input contract of the data module's scenes (prior settings, image
        size) in the hyper-parameters, so every checkpoint, and the model file exported
        from it, carries the input the weights were trained on."""
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:
            self.hparams["contract"] = datamodule.input_contract(self.config).to_dict()

    def losses(self, batch: dict) -> tuple[torch.Tensor, dict, list[ScaleOutput], torch.Tensor]:
        outputs, count = self.model(batch)
        parts = {}
        total = 0.0
        for vs, out, w in zip(self.config.voxel_sizes, outputs, self.loss_weights, strict=True):
            key = scale_key(vs)
            parts[f"loss_{key}"] = scale_loss(out, batch[f"tsdf_{key}"], batch[f"observed_{key}"])
            total = total + w * parts[f"loss_{key}"]
        fine = scale_key(self.config.voxel_sizes[0])
        parts["loss_observed"] = observed_loss(
            outputs[0].observed, batch[f"observed_{fine}"], count > 0
        )
        total = total + self.hparams.observed_weight * parts["loss_observed"]
        if outputs[0].semantic is not None:
            key = f"semantic_{scale_key(self.config.voxel_sizes[0])}"
            if key not in batch:
                raise ValueError(f"the model has a semantic head but the data has no {key}")
            parts["loss_semantic"] = semantic_loss(outputs[0].semantic, batch[key])
            total = total + self.hparams.semantic_weight * parts["loss_semantic"]
        return total, parts, outputs, count

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss, parts, _, _ = self.losses(batch)
        bs = batch["images"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=bs)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        loss, parts, outputs, count = self.losses(batch)
        self.log("val/loss", loss, batch_size=1, sync_dist=True)
        self.log_dict({f"val/{k}": v for k, v in parts.items()}, batch_size=1, sync_dist=True)
        grid = prediction_grid(outputs[0], count, batch["origin"], self.config.voxel_sizes[0])
        mesh = extract_mesh(grid)
        gt = read_ply(Path(batch["scene_dir"][0]) / "mesh.ply")
        metrics = mesh_metrics(mesh, gt, self.hparams.fscore_threshold)
        self.log("val/fscore", metrics["fscore"], batch_size=1, prog_bar=True, sync_dist=True)
        self.log("val/acc", min(metrics["acc"], 1.0), batch_size=1, sync_dist=True)
        self.log("val/comp", min(metrics["comp"], 1.0), batch_size=1, sync_dist=True)
        if self.trainer.log_dir and not self.trainer.sanity_checking:
            out = Path(self.trainer.log_dir) / "val" / f"step_{self.global_step:06d}"
            out.mkdir(parents=True, exist_ok=True)
            name = batch["scene"][0]
            if not mesh.is_empty:
                write_ply(mesh, out / f"{name}.ply")
            save_preview(
                [
                    (f"{name} step {self.global_step}: F {metrics['fscore']:.3f}", mesh),
                    ("ground truth", gt),
                ],
                out / f"{name}.png",
            )

    def configure_optimizers(self):
        opt = torch.optim.Adam(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total = max(int(self.trainer.max_steps), 1) if self.trainer.max_steps > 0 else 10**9
        warmup = self.hparams.warmup_steps
        floor = self.hparams.min_lr_ratio

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            t = min((step - warmup) / max(total - warmup, 1), 1.0)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
