"""Photometric refinement of the camera poses stereo matches with.

A sub-degree pose error shifts a neighbour's pixels by about a pixel, as much as the
disparity step that separates a right depth from a wrong one, and finer matching cannot
remove it (real SLAM poses, such as ScanNet's, carry such errors; its colour and depth
streams are not captured at the same instant either). Given each keyframe's depth from a
first sweep, every frame's pose is corrected by a small rigid motion (camera frame) that
makes the keyframes' textured pixels look alike in the neighbours they were matched
against: a bundle adjustment of photometric residuals (each keyframe's sampled depths
free too), robust (Huber) and held near the given poses by a prior, so the world frame
does not drift. Vectorised as (keyframe, neighbour, sample) blocks, each keyframe's
points moved into its neighbours by batched matrix products; the loop is over optimiser
steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SAMPLES_PER_KEYFRAME = 400  # textured pixels with depth, per keyframe
BLURS = (2.0, 1.0)  # Gaussian blur (pixels) of each stage, coarse to fine: a wide basin first
STEPS = 160  # Adam steps, shared equally by the stages
LEARNING_RATE = 0.08  # in the units below
ROTATION_UNIT = np.radians(0.3)  # radians per unit of a rotation parameter
TRANSLATION_UNIT = 0.01  # metres per unit of a translation parameter
LOG_DEPTH_UNIT = 0.01  # log-depth change per unit of a depth parameter
PRIOR_WEIGHT = 1e-4  # per squared unit (pose), averaged over frames
DEPTH_PRIOR_WEIGHT = 1e-5  # per squared unit (depth), averaged over samples
HUBER = 1.0  # residual (normalised intensity) above which the loss grows linearly
SPREAD_FLOOR = 0.02  # grey levels (0-255) added to a window's spread: guards the division only


@dataclass
class PoseRefinement:
    """poses: (F, 4, 4) float64 camera-to-world, corrected (frames no keyframe was
    matched with are unchanged); rotation_deg, translation_m: (F,) size of each frame's
    correction; residual_before, residual_after: the mean robust photometric loss."""

    poses: np.ndarray
    rotation_deg: np.ndarray
    translation_m: np.ndarray
    residual_before: float
    residual_after: float


def _filter_1d(x: torch.Tensor, taps: torch.Tensor, dim: int) -> torch.Tensor:
    """``x`` filtered along ``dim`` by ``taps`` (odd length >= 3, centred), edges
    repeated: a sum of shifted slices (cheaper on a CPU than a one-channel
    convolution)."""
    r, n = len(taps) // 2, x.shape[dim]
    edge = x.narrow(dim, 0, r)  # the shape of a border strip
    first = x.narrow(dim, 0, 1).expand_as(edge)
    last = x.narrow(dim, n - 1, 1).expand_as(edge)
    padded = torch.cat([first, x, last], dim)
    out = taps[0] * padded.narrow(dim, 0, n)
    for k in range(1, len(taps)):
        out += taps[k] * padded.narrow(dim, k, n)
    return out


def _normalised_images(grey: torch.Tensor, blur: float = 1.0, window: int = 7) -> torch.Tensor:
    """(F, H, W) float32 of ``grey`` (F, H, W) grey levels 0-255, blurred (a Gaussian
    of ``blur`` pixels) and normalised to zero mean and unit spread in each ``window``
    (odd), so exposure changes between frames do not count as a difference (faint
    texture counts as much as strong: the spread floor only guards the division)."""
    x = grey.float()
    r = max(1, int(np.ceil(3 * blur)))
    taps = torch.exp(-(torch.arange(-r, r + 1, dtype=torch.float32) ** 2) / (2 * blur**2))
    taps = taps / taps.sum()
    x = _filter_1d(_filter_1d(x, taps, 1), taps, 2)
    box = torch.full((window,), 1.0 / window)
    mean = _filter_1d(_filter_1d(x, box, 1), box, 2)
    var = _filter_1d(_filter_1d(x * x, box, 1), box, 2) - mean * mean
    return (x - mean) / (var.clamp_min(0).sqrt() + SPREAD_FLOOR)


def _sample_pixels(
    images: torch.Tensor, depths: torch.Tensor, n: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Up to ``n`` pixels per keyframe with depth, away from the border, favouring
    strong gradients of ``images`` (N, H, W). Returns v, u: (N, S) int64 and valid:
    (N, S) bool (S = min(n, H W); a keyframe with fewer such pixels has invalid ones)."""
    N, H, W = depths.shape
    gy, gx = torch.gradient(images, dim=(1, 2))
    gen = torch.Generator().manual_seed(seed)
    jitter = torch.rand(depths.shape, generator=gen).to(depths.device).sqrt()
    score = (gx * gx + gy * gy).sqrt() * jitter
    inside = torch.zeros(H, W, dtype=torch.bool, device=depths.device)
    inside[4:-4, 4:-4] = True
    score = torch.where((depths > 0) & inside, score, -1.0).reshape(N, -1)
    top, idx = score.topk(min(n, H * W), dim=1)
    return idx // W, idx % W, top > 0


def _rigid_corrections(params: torch.Tensor) -> torch.Tensor:
    """(F, 4, 4) rigid motions from (F, 6) parameters (rotation vector, translation)
    in the module's units."""
    w = params[:, :3] * ROTATION_UNIT
    skew = torch.zeros(len(params), 3, 3, dtype=params.dtype, device=params.device)
    skew[:, 0, 1], skew[:, 0, 2], skew[:, 1, 2] = -w[:, 2], w[:, 1], -w[:, 0]
    skew = skew - skew.transpose(1, 2)
    out = torch.eye(4, dtype=params.dtype, device=params.device).repeat(len(params), 1, 1)
    out[:, :3, :3] = torch.linalg.matrix_exp(skew)
    out[:, :3, 3] = params[:, 3:] * TRANSLATION_UNIT
    return out


def _bilinear(
    images: torch.Tensor, frame: torch.Tensor, u: torch.Tensor, v: torch.Tensor
) -> torch.Tensor:
    """Values of ``images`` (F, H, W) at sub-pixel (u, v) of frames ``frame`` (any
    shape broadcasting with u and v), differentiable in u and v; u, v within the
    image."""
    _, H, W = images.shape
    flat = images.reshape(-1)
    u0 = u.detach().floor().clamp(0, W - 2)
    v0 = v.detach().floor().clamp(0, H - 2)
    a, b = u - u0, v - v0
    base = frame * (H * W) + v0.long() * W + u0.long()
    return (
        (1 - a) * (1 - b) * flat[base]
        + a * (1 - b) * flat[base + 1]
        + (1 - a) * b * flat[base + W]
        + a * b * flat[base + W + 1]
    )


def refine_poses(
    grey: torch.Tensor,
    K: torch.Tensor,
    poses: torch.Tensor,
    keyframes: np.ndarray,
    depths: torch.Tensor,
    neighbours: list[np.ndarray],
    samples_per_keyframe: int = SAMPLES_PER_KEYFRAME,
    steps: int = STEPS,
    seed: int = 0,
) -> PoseRefinement:
    """Poses corrected so the keyframes' depths agree photometrically with their
    neighbours.

    grey: (F, H, W) grey levels 0-255 (uint8 or float) of every frame; K: (3, 3) for
    that size; poses: (F, 4, 4) camera-to-world (metres); keyframes: (N,) frame indices;
    depths: (N, H, W) metres (0 = none) of those keyframes at the images' size;
    neighbours: for each keyframe, the frame indices it was matched against;
    samples_per_keyframe, steps: the problem's size and the optimiser's steps (more
    for a better fit, in proportion to the time).
    """
    n_frames, H, W = grey.shape
    device = grey.device
    kf = torch.as_tensor(np.asarray(keyframes), dtype=torch.long, device=device)
    # the neighbour table: (N, M) frame indices, padded with the keyframe itself
    width = max((len(n) for n in neighbours), default=0)
    nbr = kf[:, None].repeat(1, max(width, 1))
    for i, nbrs in enumerate(neighbours):
        nbr[i, : len(nbrs)] = torch.as_tensor(np.asarray(nbrs, dtype=np.int64), device=device)
    has_pair = nbr != kf[:, None]  # (N, M)
    # only the frames some pair looks at are normalised: slot[f] is frame f's image
    involved = torch.unique(torch.cat([kf, nbr.reshape(-1)]))
    slot_of = torch.full((n_frames,), -1, dtype=torch.long, device=device)
    slot_of[involved] = torch.arange(len(involved), device=device)
    stages = [_normalised_images(grey[involved], blur) for blur in BLURS]
    images = stages[-1]
    v, u, valid = _sample_pixels(images[slot_of[kf]], depths, samples_per_keyframe, seed)
    n_kf, n_samples = v.shape
    rows = torch.arange(n_kf, device=device)[:, None]
    ref_values = [x[slot_of[kf][:, None], v, u][:, None] for x in stages]  # (N, 1, S)
    K = K.to(torch.float32).to(device)
    rays = torch.stack(
        [
            (u.to(torch.float32) - K[0, 2]) / K[0, 0],
            (v.to(torch.float32) - K[1, 2]) / K[1, 1],
            torch.ones_like(u, dtype=torch.float32),
        ],
        -1,
    )  # (N, S, 3)
    depth = torch.where(valid, depths[rows, v, u], 1.0).to(torch.float32)  # (N, S)
    used = valid[:, None, :] & has_pair[:, :, None]  # (N, M, S)
    frame = slot_of[nbr][:, :, None]  # (N, M, 1): the image each neighbour is looked up in
    base = poses.to(torch.float32).to(device)
    params = torch.zeros(n_frames, 6, dtype=torch.float32, device=device, requires_grad=True)
    log_depth = torch.zeros(n_kf, n_samples, dtype=torch.float32, device=device, requires_grad=True)

    def robust_loss(images: torch.Tensor, ref_value: torch.Tensor) -> torch.Tensor:
        T = base @ _rigid_corrections(params)
        T_ref, T_nbr = T[kf][:, None], T[nbr]  # (N, 1, 4, 4), (N, M, 4, 4)
        R_t = T_nbr[..., :3, :3].transpose(-1, -2)  # world to neighbour camera
        R = R_t @ T_ref[..., :3, :3]  # (N, M, 3, 3): reference camera to neighbour camera
        t = (R_t @ (T_ref[..., :3, 3:] - T_nbr[..., :3, 3:]))[..., 0]  # (N, M, 3)
        points = rays * (depth * torch.exp(log_depth * LOG_DEPTH_UNIT))[..., None]  # (N, S, 3)
        cam = points[:, None] @ R.transpose(-1, -2) + t[:, :, None]  # (N, M, S, 3)
        z = cam[..., 2].clamp_min(0.05)
        pu = K[0, 0] * cam[..., 0] / z + K[0, 2]
        pv = K[1, 1] * cam[..., 1] / z + K[1, 2]
        seen = used & (cam[..., 2] > 0.1) & (pu > 1) & (pu < W - 2) & (pv > 1) & (pv < H - 2)
        value = _bilinear(images, frame, pu.clamp(0, W - 1.001), pv.clamp(0, H - 1.001))
        r = (value - ref_value).abs()
        huber = torch.where(r < HUBER, 0.5 * r * r, HUBER * (r - 0.5 * HUBER))
        return (huber * seen).sum() / seen.sum().clamp_min(1)

    def total(data: torch.Tensor) -> torch.Tensor:
        prior = PRIOR_WEIGHT * (params**2).sum() / n_frames
        return data + prior + DEPTH_PRIOR_WEIGHT * (log_depth[valid] ** 2).mean()

    with torch.no_grad():
        before = float(robust_loss(images, ref_values[-1]))
    if bool(used.any()):
        for stage, ref_value in zip(stages, ref_values, strict=True):
            opt = torch.optim.Adam([params, log_depth], lr=LEARNING_RATE)
            for _ in range(steps // len(stages)):
                opt.zero_grad()
                total(robust_loss(stage, ref_value)).backward()
                opt.step()
    with torch.no_grad():
        after = float(robust_loss(images, ref_values[-1]))
        correction = _rigid_corrections(params.double()).cpu().numpy()
        corrected = poses.cpu().double().numpy() @ correction
    rot = (params.detach()[:, :3] * ROTATION_UNIT).norm(dim=1).rad2deg().cpu().numpy()
    trans = (params.detach()[:, 3:] * TRANSLATION_UNIT).norm(dim=1).cpu().numpy()
    return PoseRefinement(corrected, rot, trans, before, after)
