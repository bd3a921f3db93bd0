"""The ATLAS network: 2D features back-projected and averaged into a volume, with the
stereo prior beside them, and a 3D network regressing the TSDF coarse to fine.

Input channels of the 3D network, in order: the averaged features (C), a 0/1 channel
"seen by at least one view", then with ``prior="stereo"`` the prior's TSDF (1 where
unobserved) and its observed mask, then with ``color_variance`` the views' colour
standard deviation (:mod:`atlas.model.photo_consistency`).
"""

from __future__ import annotations

import torch
from torch import nn

from atlas.model.backbone import ResNetFPN
from atlas.model.backproject import FeatureVolume
from atlas.model.photo_consistency import ColorVariance
from atlas.model.volume_net import ScaleOutput, VolumeNet

PRIORS = ("stereo", "none")
FEATURE_STRIDE = 4


def feature_projection(
    projection: torch.Tensor, image_size: tuple[int, int], feature_size: tuple[int, int]
) -> torch.Tensor:
    """(..., 3, 4) projections onto a feature map of ``feature_size`` (w, h) from ones
    onto images of ``image_size`` (W, H), pixel-exact: u' = (u + 0.5) * w / W - 0.5;
    float32 whatever the input (and under autocast)."""
    sx = feature_size[0] / image_size[0]
    sy = feature_size[1] / image_size[1]
    S = projection.new_tensor(
        [[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]], dtype=torch.float32
    )
    with torch.autocast(projection.device.type, enabled=False):  # float32, see FeatureVolume.add
        return S @ projection.float()


class ATLASNet(nn.Module):
    """backbone: a :class:`ResNetFPN`; net: the :class:`VolumeNet` settings besides its
    input channels; prior: ``stereo`` or ``none``; feature_mode: ``bilinear`` or
    ``nearest`` back-projection; view_chunk: views through the backbone at a time;
    color_variance: also take the views' colour standard deviation per voxel."""

    def __init__(
        self,
        backbone: ResNetFPN,
        channels: tuple[int, int, int] = (16, 32, 64),
        blocks: int = 1,
        prior: str = "stereo",
        feature_mode: str = "bilinear",
        semantic_classes: int = 0,
        view_chunk: int = 8,
        fine_blocks: int | None = None,
        color_variance: bool = False,
    ) -> None:
        super().__init__()
        if prior not in PRIORS:
            raise ValueError(f"model.prior must be one of {PRIORS}, got {prior!r}")
        self.backbone = backbone
        self.prior = prior
        self.feature_mode = feature_mode
        self.view_chunk = view_chunk
        self.color_variance = color_variance
        in_channels = (
            backbone.out_channels + 1 + (2 if prior == "stereo" else 0) + int(color_variance)
        )
        self.net = VolumeNet(
            in_channels,
            tuple(channels),
            blocks,
            semantic_classes=semantic_classes,
            fine_blocks=fine_blocks,
        )

    def image_features(
        self, images: torch.Tensor, projection: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features of views and their projections: images (B, V, 3, H, W) RGB
        in [0, 1], projection (B, V, 3, 4) world -> image pixels; returns features
        (B, V, C, H/4, W/4) and (B, V, 3, 4) world -> feature-map pixels."""
        b, v, _, h, w = images.shape
        feats = self.backbone(images.reshape(b * v, *images.shape[2:]))
        fh, fw = feats.shape[-2:]
        return feats.view(b, v, *feats.shape[1:]), feature_projection(projection, (w, h), (fw, fh))

    def feature_volume(
        self, images: torch.Tensor, projection: torch.Tensor, volume: FeatureVolume
    ) -> None:
        """Add views to ``volume`` (arguments as :meth:`image_features`), ``view_chunk``
        views through the backbone at a time. Without gradients memory does not grow
        with V; in training autograd keeps every chunk's activations."""
        for start in range(0, images.shape[1], self.view_chunk):
            chunk = slice(start, start + self.view_chunk)
            volume.add(*self.image_features(images[:, chunk], projection[:, chunk]))

    def volume_input(
        self,
        volume: FeatureVolume,
        prior_tsdf: torch.Tensor | None = None,
        prior_observed: torch.Tensor | None = None,
        colors: ColorVariance | None = None,
    ) -> torch.Tensor:
        """(B, in_channels, X, Y, Z): averaged features, seen mask, the prior
        (prior_tsdf, prior_observed: (B, X, Y, Z)) when the model takes one, and the
        colour standard deviation from ``colours`` when it takes that."""
        parts = [volume.mean(), (volume.count > 0).float()]
        if self.prior == "stereo":
            if prior_tsdf is None or prior_observed is None:
                raise ValueError(
                    "this model takes a stereo prior (model.prior=stereo), but none was given"
                )
            parts += [prior_tsdf[:, None].float(), prior_observed[:, None].float()]
        if self.color_variance:
            if colors is None:
                raise ValueError("this model takes the views' colour variance, but none was given")
            parts.append(colors.std())
        return torch.cat(parts, 1)

    def forward(self, batch: dict) -> tuple[list[ScaleOutput], torch.Tensor]:
        """Predict the TSDF of a batch of items (see ``atlas.training.data``):
        returns the per-scale outputs (finest first) and the (B, 1, X, Y, Z) view count
        at the finest scale."""
        shape = tuple(batch["shape"][0].tolist())
        volume = FeatureVolume(
            batch["origin"],
            batch["voxel_size"],
            shape,
            self.backbone.out_channels,
            self.feature_mode,
        )
        self.feature_volume(batch["images"], batch["projection"], volume)
        colors = None
        if self.color_variance:
            colors = ColorVariance(batch["origin"], batch["voxel_size"], shape, self.feature_mode)
            colors.add(batch["images"], batch["projection"])
        x = self.volume_input(volume, batch.get("prior_tsdf"), batch.get("prior_observed"), colors)
        return self.net(x), volume.count
