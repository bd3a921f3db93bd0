"""Semi-global aggregation of a plane-sweep cost volume (Hirschmüller's SGM, over the
planes of a sweep instead of disparities).

Along each scanline direction r the path cost is

    L_r(p, d) = C(p, d) + min(L_r(p-r, d), L_r(p-r, d±1) + P1, min_k L_r(p-r, k) + P2)
                - min_k L_r(p-r, k)

and the aggregated cost is the mean of L_r over the directions. P1 charges a one-plane
step between neighbouring pixels (slanted surfaces), P2 any larger jump (depth edges);
P2 relaxes where the image has an edge, ``P2 / (1 + |I(p) - I(p-r)| / edge)``, never
below P1, so depth may jump where intensity does. The recursion is a loop along one
scanline direction, vectorised over the other image axis and the planes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _paths_along_first_axis(cost: torch.Tensor, jump: torch.Tensor, p1: float) -> torch.Tensor:
    """Path costs along the first axis, from index 0 up.

    cost: (B, P, D, A) matching cost of P independent path sets (contiguous, so each
    step reads and writes one block); jump: (B, P, 1, A) the large-jump penalty at each
    pixel for a step from the previous pixel along the path. Returns (B, P, D, A).
    """
    out = torch.empty_like(cost)
    prev = cost[0]
    out[0] = prev
    step = torch.empty_like(prev)  # (P, D, A), reused at every pixel of the path
    for x in range(1, cost.shape[0]):  # the recursion runs along the scanline
        best = prev.amin(1, keepdim=True)
        # the cheaper of the planes one above and one below (one of them at the ends)
        torch.minimum(prev[:, 2:], prev[:, :-2], out=step[:, 1:-1])
        step[:, :1] = prev[:, 1:2]
        step[:, -1:] = prev[:, -2:-1]
        step.add_(p1)
        torch.minimum(step, prev, out=step)
        torch.minimum(step, best + jump[x], out=step)
        prev = torch.add(cost[x], step, out=out[x]).sub_(best)
    return out


def semi_global(
    cost: torch.Tensor, image: torch.Tensor, p1: float, p2: float, edge: float
) -> torch.Tensor:
    """The mean of four directions' path costs (left/right, up/down).

    cost: (D, H, W) matching cost over D planes (any finite scale); image: (H, W) grey
    in [0, 1] guiding where P2 relaxes; p1, p2: penalties in cost units (p2 >= p1 >= 0);
    edge: intensity step at which P2 halves. Returns (D, H, W).

    The four directions run as one batch: each volume is flipped and transposed so that
    its paths run along the last axis from index 0, padded at the far end to a common
    (S, S) (padding comes after every real pixel of a path, so it changes nothing).
    """
    if not 0 <= p1 <= p2:
        raise ValueError(f"SGM penalties need 0 <= p1 <= p2, got p1={p1}, p2={p2}")
    if edge <= 0:
        raise ValueError(f"SGM edge scale must be positive, got {edge}")
    h, w = cost.shape[1:]
    size = max(h, w)
    views = [  # (cost (D, A, B), image (A, B)) with paths along B from 0, and the undo
        (cost, image, lambda x: x),
        (cost.flip(-1), image.flip(-1), lambda x: x.flip(-1)),
        (cost.transpose(1, 2), image.T, lambda x: x.transpose(1, 2)),
        (cost.transpose(1, 2).flip(-1), image.T.flip(-1), lambda x: x.flip(-1).transpose(1, 2)),
    ]

    def pad(x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, size - x.shape[-1], 0, size - x.shape[-2]))

    costs = torch.stack([pad(c) for c, _, _ in views])
    images = torch.stack([pad(i) for _, i, _ in views])
    diff = torch.zeros_like(images)
    diff[..., 1:] = images[..., 1:] - images[..., :-1]
    jump = (p2 / (1 + diff.abs() / edge)).clamp_min(p1)
    # scanline axis first: (S, 4, D, S) and (S, 4, 1, S)
    paths = _paths_along_first_axis(
        costs.permute(3, 0, 1, 2).contiguous(), jump.permute(2, 0, 1)[:, :, None].contiguous(), p1
    ).permute(1, 2, 3, 0)
    total = torch.zeros_like(cost)
    for k, (c, _, undo) in enumerate(views):
        a, b = c.shape[-2:]
        total += undo(paths[k, :, :a, :b])
    return total / 4
