"""3D network: an encoder-decoder CNN over three scales with a TSDF head per scale.

Scales are indexed finest first: scale 0 is the input grid, scale s has voxels 2**s
times larger. Decoding runs coarse to fine: the coarsest head predicts a TSDF, the next
scale sees it (upsampled) beside its skip features, and voxels the coarser prediction
puts far from any surface (``|tsdf| >= far``) keep the coarser value at the finer
scales instead of a new prediction (and are left out of the finer losses), as ATLAS
does with its sparse volumes. BatchNorm (running statistics at inference) keeps every
voxel's output a function of its neighbourhood only, so chunked inference matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class ResBlock3d(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(channels)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


def conv_bn(in_ch: int, out_ch: int, stride: int = 1, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(in_ch, out_ch, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm3d(out_ch),
        nn.ReLU(inplace=True),
    )


@dataclass
class ScaleOutput:
    """tsdf: (B, 1, X, Y, Z) in [-1, 1] at one scale; active: (B, 1, X, Y, Z) bool,
    voxels predicted at this scale (not inherited from a coarser one); observed:
    (B, 1, X, Y, Z) logits that the ground truth would observe the voxel (finest scale
    only; a mesh is made where it is > 0, so space no scan could see, such as behind
    walls, gets no surface); semantic: (B, classes, X, Y, Z) logits or None."""

    tsdf: torch.Tensor
    active: torch.Tensor
    observed: torch.Tensor | None = None
    semantic: torch.Tensor | None = None


class VolumeNet(nn.Module):
    """in_channels: input volume channels; channels: per scale, finest first (three);
    blocks: residual blocks per scale (``fine_blocks`` at the finest, where they cost the
    most; default ``blocks``); far: coarse |TSDF| above which finer scales
    inherit; semantic_classes: > 0 adds a semantic head at the finest scale.

    forward: x (B, in_channels, X, Y, Z), each of X, Y, Z a multiple of 4 ->
    [ScaleOutput finest, middle, coarsest].
    """

    def __init__(
        self,
        in_channels: int,
        channels: tuple[int, int, int] = (16, 32, 64),
        blocks: int = 1,
        far: float = 0.999,
        semantic_classes: int = 0,
        fine_blocks: int | None = None,
    ) -> None:
        super().__init__()
        c0, c1, c2 = channels
        self.far = far
        fine_blocks = blocks if fine_blocks is None else fine_blocks
        self.stem = nn.Sequential(
            conv_bn(in_channels, c0), *[ResBlock3d(c0) for _ in range(fine_blocks)]
        )
        self.down1 = nn.Sequential(conv_bn(c0, c1, 2), *[ResBlock3d(c1) for _ in range(blocks)])
        self.down2 = nn.Sequential(conv_bn(c1, c2, 2), *[ResBlock3d(c2) for _ in range(blocks)])
        self.head2 = nn.Conv3d(c2, 1, 1)
        self.up1 = nn.ConvTranspose3d(c2, c1, 2, 2)
        self.dec1 = nn.Sequential(conv_bn(2 * c1 + 1, c1), *[ResBlock3d(c1) for _ in range(blocks)])
        self.head1 = nn.Conv3d(c1, 1, 1)
        self.up0 = nn.ConvTranspose3d(c1, c0, 2, 2)
        self.dec0 = nn.Sequential(
            conv_bn(2 * c0 + 1 + in_channels, c0), *[ResBlock3d(c0) for _ in range(fine_blocks)]
        )
        self.head0 = nn.Conv3d(c0, 1, 1)
        self.observed_head = nn.Conv3d(c0, 1, 1)
        self.semantic = nn.Conv3d(c0, semantic_classes, 1) if semantic_classes > 0 else None

    def widen_inputs(self, state: dict, prefix: str = "") -> dict:
        """``state`` (keys under ``prefix``) of this network with fewer input channels,
        widened to this one's: the trailing new input channels get zero weights in the
        two layers that read the input (the stem and, beside the skip, the finest
        decoder), so the result computes what the narrower network did. A state that is
        not narrower is returned as it is."""
        stem_key, dec_key = f"{prefix}stem.0.0.weight", f"{prefix}dec0.0.0.weight"
        stem, dec = self.stem[0][0].weight, self.dec0[0][0].weight
        if stem_key not in state or state[stem_key].shape[1] >= stem.shape[1]:
            return state
        old_in, c0 = state[stem_key].shape[1], stem.shape[0]
        kept = 2 * c0 + old_in  # decoder input: [upsampled, e0, x, coarse TSDF]
        wide_stem = state[stem_key].new_zeros(stem.shape)
        wide_stem[:, :old_in] = state[stem_key]
        wide_dec = state[dec_key].new_zeros(dec.shape)
        wide_dec[:, :kept] = state[dec_key][:, :kept]
        wide_dec[:, -1] = state[dec_key][:, -1]
        return {**state, stem_key: wide_stem, dec_key: wide_dec}

    def forward(self, x: torch.Tensor) -> list[ScaleOutput]:
        if any(n % 4 for n in x.shape[-3:]):
            raise ValueError(f"volume {tuple(x.shape[-3:])} must be a multiple of 4 voxels")
        e0 = self.stem(x)
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        t2 = torch.tanh(self.head2(e2))
        out2 = ScaleOutput(t2, torch.ones_like(t2, dtype=torch.bool))
        out1, d1 = self._refine(self.up1(e2), e1, t2, out2.active, self.dec1, self.head1)
        out0, d0 = self._refine(
            self.up0(d1), torch.cat([e0, x], 1), out1.tsdf, out1.active, self.dec0, self.head0
        )
        out0.observed = self.observed_head(d0)
        if self.semantic is not None:
            out0.semantic = self.semantic(d0)
        return [out0, out1, out2]

    def _refine(
        self,
        up: torch.Tensor,
        skip: torch.Tensor,
        coarse: torch.Tensor,
        coarse_active: torch.Tensor,
        decoder: nn.Module,
        head: nn.Module,
    ) -> tuple[ScaleOutput, torch.Tensor]:
        coarse_up = F.interpolate(coarse, scale_factor=2, mode="nearest")
        near = F.interpolate((coarse.abs() < self.far).float(), scale_factor=2, mode="nearest") > 0
        active = near & (F.interpolate(coarse_active.float(), scale_factor=2) > 0)
        d = decoder(torch.cat([up, skip, coarse_up], 1))
        tsdf = torch.where(active, torch.tanh(head(d)), coarse_up)
        return ScaleOutput(tsdf, active), d
