"""Back-projection: image features averaged into a voxel volume along camera rays.

Every voxel centre is projected into every view; a view that sees it (in front of the
camera, inside the feature map) contributes the feature sampled there. The volume
keeps a running feature sum and a count per voxel, so frames can be streamed in any
number of chunks (memory independent of the sequence length) and the result is the
same; the averaged volume is sum / count, zero where no view saw the voxel.

Only the (voxel, view) pairs that see each other are gathered and scattered
(indexed adds), never the whole volume per view, which is what makes this fast for
large volumes where each frustum covers a small part. Differentiable in the features.
"""

from __future__ import annotations

import torch

from atlas.compile import compiled


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


def _sample(
    image: torch.Tensor, u: torch.Tensor, v: torch.Tensor, w: int, h: int, mode: str
) -> torch.Tensor:
    """(M, C) features of ``image`` (h*w, C) at pixel positions u, v (M,) inside it:
    nearest (u, v already rounded) or bilinear (border pixels repeat)."""
    if mode == "nearest":
        return image.index_select(0, (v.long() * w + u.long()))
    u, v = u.clamp(0, w - 1), v.clamp(0, h - 1)
    u0, v0 = u.floor().clamp(max=max(w - 2, 0)), v.floor().clamp(max=max(h - 2, 0))
    fu, fv = (u - u0)[:, None], (v - v0)[:, None]
    u1, v1 = (u0 + 1).clamp(max=w - 1), (v0 + 1).clamp(max=h - 1)
    top = (
        image.index_select(0, (v0 * w + u0).long()) * (1 - fu)
        + image.index_select(0, (v0 * w + u1).long()) * fu
    )
    bottom = (
        image.index_select(0, (v1 * w + u0).long()) * (1 - fu)
        + image.index_select(0, (v1 * w + u1).long()) * fu
    )
    return top * (1 - fv) + bottom * fv


def _seen_pixels(
    cam: torch.Tensor, w: int, h: int, nearest: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Which voxels a view sees, and where: cam (3, N) camera-frame homogeneous pixel
    coordinates of the voxel centres; returns seen (N,) bool and u, v (N,) pixel
    positions, rounded to the nearest pixel (the original's rounding) when ``nearest``.
    Elementwise only, so ``torch.compile`` makes it one pass over the voxels."""
    z = cam[2]
    safe = torch.where(z.abs() > 1e-8, z, torch.full_like(z, 1e-8))
    u, v = cam[0] / safe, cam[1] / safe
    if nearest:
        u, v = u.round(), v.round()
        seen = (u >= 0) & (v >= 0) & (u < w) & (v < h) & (z > 0)
    else:
        seen = (u >= -0.5) & (v >= -0.5) & (u <= w - 0.5) & (v <= h - 0.5) & (z > 0)
    return seen, u, v


def _accumulate(
    total: torch.Tensor,
    count: torch.Tensor,
    target: torch.Tensor,
    image: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    w: int,
    h: int,
    mode: str,
) -> None:
    """In place: ``total[target] += image sampled at (u, v)`` and ``count[target] += 1``;
    total (N, C), count (N,), target (M,) unique voxel indices (a view adds to a voxel at
    most once), image (h*w, C), u, v (M,) pixels. Compiled, the gather and the scatter
    are one pass with no (M, C) temporary (timings: docs/benchmarks.md)."""
    count.index_put_((target,), torch.ones_like(u), accumulate=True)
    total.index_put_((target,), _sample(image, u, v, w, h, mode).to(total.dtype), accumulate=True)


def _mean_channels_first(total: torch.Tensor, count: torch.Tensor, b: int) -> torch.Tensor:
    """(B, C, N) contiguous: total (B*N, C) over count (B*N,) clamped at 1."""
    avg = total / count.clamp(min=1)[:, None]
    return avg.view(b, -1, avg.shape[1]).transpose(1, 2).contiguous()


class FeatureVolume:
    """Running sum and count of back-projected features over a batch of volumes.

    origin: (B, 3) metres; voxel_size: metres (float or (B,)); shape: (X, Y, Z);
    channels: C; mode: ``"bilinear"`` or ``"nearest"`` (rounds the projected position to
    the nearest pixel as the original ATLAS does). ``add`` takes views in any chunks;
    ``mean()`` is (B, C, X, Y, Z) (contiguous) and ``count`` (B, 1, X, Y, Z).
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
        centres = voxel_centres(origin, voxel_size, self.shape)
        # (B, 4, N) homogeneous centres, made once for every view.
        self.points = torch.cat([centres, torch.ones_like(centres[..., :1])], -1).transpose(1, 2)
        b, n = centres.shape[:2]
        self.sum = torch.zeros(b * n, channels, device=origin.device)
        self._count = torch.zeros(b * n, device=origin.device)

    def add(self, features: torch.Tensor, projection: torch.Tensor) -> None:
        """features: (B, V, C, h, w); projection: (B, V, 3, 4) world -> feature-map
        pixels (pixel (0, 0)'s centre at (0, 0)). Views are taken one at a time, so the
        temporaries are those of one view. The geometry runs in float32 even under
        autocast: a bfloat16 projection is off by pixels and its flat pixel indices
        (v * w + u, exact in float32) round past the feature map."""
        with torch.autocast(features.device.type, enabled=False):
            self._add(features, projection)

    def _add(self, features: torch.Tensor, projection: torch.Tensor) -> None:
        b, v, c, h, w = features.shape
        n = self.points.shape[2]
        track = torch.is_grad_enabled() and features.requires_grad
        nearest = self.mode == "nearest"
        project = compiled("backproject_view", _seen_pixels)
        accumulate = compiled("backproject_accumulate", _accumulate)
        targets, values = [], []
        for bi in range(b):
            for vi in range(v):
                # The original's projection: a float32 homogeneous matrix product.
                cam = projection[bi, vi].float() @ self.points[bi]  # (3, N)
                seen, u, vv = project(cam, w, h, nearest)
                idx = seen.nonzero().squeeze(1)
                # (h*w, C) rows contiguous: gathering rows of the (C, h, w) map's view
                # strides over the whole map for every row, twice as slow.
                image = features[bi, vi].permute(1, 2, 0).reshape(h * w, c).contiguous()
                target, u_seen, v_seen = idx + bi * n, u[idx], vv[idx]
                if track:
                    self._count.index_put_((target,), torch.ones_like(u_seen), accumulate=True)
                    targets.append(target)
                    sampled = _sample(image, u_seen, v_seen, w, h, self.mode)
                    values.append(sampled.to(self.sum.dtype))  # bf16 under autocast
                else:
                    args = (target, image, u_seen, v_seen, w, h, self.mode)
                    accumulate(self.sum, self._count, *args)
        if track:
            self.sum = self.sum.index_add(0, torch.cat(targets), torch.cat(values))

    @property
    def count(self) -> torch.Tensor:
        return self._count.view(-1, 1, *self.shape)

    def mean(self) -> torch.Tensor:
        """(B, C, X, Y, Z) contiguous average, zero where no view saw the voxel."""
        b = self.points.shape[0]
        # Compiled, the division and the channels-first transpose are one tiled pass;
        # with gradients it stays eager.
        fn = _mean_channels_first
        if not self.sum.requires_grad:
            fn = compiled("backproject_mean", _mean_channels_first)
        return fn(self.sum, self._count, b).view(b, -1, *self.shape)
