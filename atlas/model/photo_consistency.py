"""Photo-consistency of a voxel: how much the colours of the views that see it differ.

A voxel on a surface projects to the same point of that surface in every view, so its
colours agree (up to lighting); a voxel in free space projects to whatever lies behind
it along each ray, which differs from view to view. The per-voxel variance of the views'
colours is therefore low on surfaces: a parameter-free, multi-view cue beside the
averaged image features and the stereo prior. How well it separates surface voxels
from free ones, and what a model trained with it scored, is in docs/model_card.md.
"""

from __future__ import annotations

import torch

from atlas.model.backproject import FeatureVolume

UNMEASURED = 0.5  # the std of voxels fewer than two views see: the largest possible


class ColorVariance:
    """Running colour statistics of views over a batch of volumes.

    origin: (B, 3) metres; voxel_size: metres (float or (B,)); shape: (X, Y, Z); mode:
    back-projection sampling (``bilinear`` or ``nearest``). ``add`` takes views in any
    chunks; ``std()`` is (B, 1, X, Y, Z): the standard deviation of the colours (R, G, B
    in [0, 1], variance averaged over the three) of the views that see each voxel, and
    where fewer than two do, 0.5, the most colours in [0, 1] can spread: one view gives
    no evidence of agreement, so it must not read as a perfect match.
    """

    def __init__(
        self,
        origin: torch.Tensor,
        voxel_size: torch.Tensor | float,
        shape: tuple[int, int, int],
        mode: str = "bilinear",
    ) -> None:
        # channels: R, G, B and their squares
        self.moments = FeatureVolume(origin, voxel_size, shape, 6, mode)

    def add(self, images: torch.Tensor, projection: torch.Tensor) -> None:
        """images: (B, V, 3, H, W) RGB in [0, 1]; projection: (B, V, 3, 4) world -> image
        pixels (pixel (0, 0)'s centre at (0, 0))."""
        images = images.float()
        self.moments.add(torch.cat([images, images * images], 2), projection)

    def std(self) -> torch.Tensor:
        moments = self.moments.mean()
        variance = (moments[:, 3:] - moments[:, :3] ** 2).clamp_min(0).mean(1, keepdim=True)
        return torch.where(
            self.moments.count >= 2, variance.sqrt(), torch.full_like(variance, UNMEASURED)
        )
