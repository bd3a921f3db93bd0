"""Back-projection: image features averaged into a voxel volume along camera rays.

Every voxel centre is projected into every view; a view that sees it (in front of the
camera, inside the feature map) contributes the feature sampled there. The volume
keeps a running feature sum and a count per voxel, so frames can be streamed in any
number of chunks (memory independent of the sequence length) and the result is the
same; the averaged volume is sum / count, zero where no view saw the voxel.

Only the (voxel, view) pairs that see each other are gathered and scattered
(``index_add``), never the whole volume per view, which is what makes this fast for
large volumes where each frustum covers a small part. Differentiable in the features.
"""

from __future__ import annotations

import torch


def voxel_centres(
    origin: torch.Tensor, voxel_size: torch.Tensor | float, shape: tuple[int, int, int]
) -> torch.Tensor:
    """(B, X*Y*Z, 3) world centres, x slowest; origin (B, 3) metres of voxel (0,0,0)'s
    centre; voxel_size: metres, a float or (B,)."""
    device = origin.device
    axes = [torch.arange(n, device=device, dtype=torch.float32) for n in shape]
    ijk = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    vs = torch.as_tensor(voxel_size, dtype=torch.float32, device=device).reshape(-1, 1, 1)
    return origin.float()[:, None, :] + vs * ijk[None]


def project(points: torch.Tensor, projection: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Pixel coordinates of world ``points`` (B, N, 3) in views ``projection``
    (B, V, 3, 4): returns u, v, z each (B, V, N) (z: depth along the optical axis)."""
    homog = torch.cat([points, torch.ones_like(points[..., :1])], -1)  # (B, N, 4)
    cam = torch.matmul(projection.float(), homog.transpose(1, 2)[:, None])  # (B, V, 3, N)
    z = cam[:, :, 2]
    safe = torch.where(z.abs() > 1e-8, z, torch.full_like(z, 1e-8))
    return cam[:, :, 0] / safe, cam[:, :, 1] / safe, z


class FeatureVolume:
    """Running sum and count of back-projected features over a batch of volumes.

    origin: (B, 3) metres; voxel_size: metres (float or (B,)); shape: (X, Y, Z);
    channels: C; mode: ``"bilinear"`` or ``"nearest"`` (rounds the projected position to
    the nearest pixel as the original ATLAS does). ``add`` takes views in any chunks;
    ``mean()`` is (B, C, X, Y, Z) and ``count`` (B, 1, X, Y, Z).
    """

    def __init__(
        self,
        origin: torch.Tensor,
        voxel_size: torch.Tensor | float,
        shape: tuple[int, int, int],
        channels: int,
        mode: str = "bilinear",
    ) -> None:
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"back-projection mode must be bilinear or nearest, got {mode!r}")
        self.shape = tuple(int(s) for s in shape)
        self.mode = mode
        self.points = voxel_centres(origin, voxel_size, self.shape)
        b, n = self.points.shape[:2]
        self.sum = torch.zeros(b * n, channels, device=origin.device)
        self._count = torch.zeros(b * n, device=origin.device)

    def add(self, features: torch.Tensor, projection: torch.Tensor) -> None:
        """features: (B, V, C, h, w); projection: (B, V, 3, 4) world -> feature-map
        pixels (pixel (0, 0)'s centre at (0, 0))."""
        b, v, c, h, w = features.shape
        n = self.points.shape[1]
        u, vv, z = project(self.points, projection)
        if self.mode == "nearest":
            ui, vi = u.round(), vv.round()
            seen = (ui >= 0) & (vi >= 0) & (ui < w) & (vi < h) & (z > 0)
            corners = [(ui, vi, None)]
        else:
            seen = (u >= -0.5) & (vv >= -0.5) & (u <= w - 0.5) & (vv <= h - 0.5) & (z > 0)
            u, vv = u.clamp(0, w - 1), vv.clamp(0, h - 1)
            u0, v0 = u.floor().clamp(max=max(w - 2, 0)), vv.floor().clamp(max=max(h - 2, 0))
            fu, fv = u - u0, vv - v0
            u1, v1 = (u0 + 1).clamp(max=w - 1), (v0 + 1).clamp(max=h - 1)
            corners = [
                (u0, v0, (1 - fu) * (1 - fv)),
                (u1, v0, fu * (1 - fv)),
                (u0, v1, (1 - fu) * fv),
                (u1, v1, fu * fv),
            ]
        bi, vi_, ni = seen.nonzero(as_tuple=True)
        flat = features.permute(0, 1, 3, 4, 2).reshape(b * v * h * w, c)
        view_base = (bi * v + vi_) * (h * w)
        sampled = 0
        for cu, cv, weight in corners:
            pix = view_base + cv[bi, vi_, ni].long() * w + cu[bi, vi_, ni].long()
            values = flat.index_select(0, pix)
            sampled = sampled + (values if weight is None else values * weight[bi, vi_, ni, None])
        target = bi * n + ni
        if torch.is_grad_enabled() and features.requires_grad:
            self.sum = self.sum.index_add(0, target, sampled)
        else:
            self.sum.index_add_(0, target, sampled)
        self._count.index_add_(0, target, torch.ones_like(target, dtype=self._count.dtype))

    @property
    def count(self) -> torch.Tensor:
        b = self.points.shape[0]
        return self._count.view(b, 1, *self.shape)

    def mean(self) -> torch.Tensor:
        b = self.points.shape[0]
        avg = self.sum / self._count.clamp(min=1)[:, None]
        return avg.view(b, *self.shape, -1).permute(0, 4, 1, 2, 3)
