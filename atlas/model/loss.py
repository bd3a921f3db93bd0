"""Training loss: L1 between log-transformed TSDFs over observed voxels, per scale."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from atlas.model.volume_net import ScaleOutput

IGNORE_LABEL = -1


def log_transform(tsdf: torch.Tensor) -> torch.Tensor:
    """sign(x) * log(|x| + 1): stretches values near the surface, as ATLAS."""
    return torch.sign(tsdf) * torch.log1p(tsdf.abs())


def scale_loss(output: ScaleOutput, target: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """Mean log-L1 over voxels the ground truth observed and this scale predicted.
    output.tsdf: (B, 1, X, Y, Z); target, observed: (B, X, Y, Z). Zero when no voxel
    counts (so a crop of unobserved space adds nothing)."""
    mask = observed & output.active[:, 0]
    diff = (log_transform(output.tsdf[:, 0]) - log_transform(target)).abs()
    return (diff * mask).sum() / mask.sum().clamp(min=1)


def observed_loss(logits: torch.Tensor, observed: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the observed head against the ground truth's observed
    mask, over voxels some input view saw. logits, seen: (B, 1, X, Y, Z); observed:
    (B, X, Y, Z) bool."""
    mask = seen[:, 0]
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], observed.float(), reduction="none")
    return (bce * mask).sum() / mask.sum().clamp(min=1)


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over labelled voxels: logits (B, K, X, Y, Z), labels (B, X, Y, Z)
    int64 with -1 for unlabelled."""
    if not (labels != IGNORE_LABEL).any():
        return logits.sum() * 0
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_LABEL)
