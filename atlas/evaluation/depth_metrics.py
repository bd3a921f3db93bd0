"""Depth metrics: the predicted mesh rendered at each camera against measured depth.

Per view, over pixels whose ground truth is valid (``0 < d < max_depth``) and that got a
predicted depth (the mesh was hit):

- AbsRel = mean(|p - g| / g), AbsDiff = mean(|p - g|) metres, SqRel = mean((p - g)^2 / g),
  RMSE = sqrt(mean((p - g)^2)) metres, LogRMSE = sqrt(mean((log p - log g)^2));
- r1, r2, r3 = share of pixels with max(p / g, g / p) below 1.25, 1.25^2, 1.25^3;
- complete = share of the valid ground-truth pixels that got a predicted depth.

A scene's value is the mean over its views (ATLAS's averaging); views without a valid
predicted pixel add only to ``complete``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

from atlas.evaluation.views import Views, render_depths
from atlas.geometry.mesh import Mesh

DEPTH_KEYS = ("AbsRel", "AbsDiff", "SqRel", "RMSE", "LogRMSE", "r1", "r2", "r3", "complete")


def depth_metrics(pred: np.ndarray, gt: np.ndarray, max_depth: float = 10.0) -> dict[str, float]:
    """Metrics of one view (module docstring). pred, gt: (H, W) metres; pred 0 or
    non-finite = no prediction. Values without any pixel to average are NaN."""
    pred = np.asarray(pred, np.float64)
    gt = np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"depth shapes differ: predicted {pred.shape}, ground truth {gt.shape}")
    valid = np.isfinite(gt) & (gt > 0) & (gt < max_depth)
    has = valid & np.isfinite(pred) & (pred > 0)
    out = dict.fromkeys(DEPTH_KEYS, float("nan"))
    if valid.any():
        out["complete"] = float(has.sum() / valid.sum())
    if has.any():
        p, g = pred[has], gt[has]
        diff = np.abs(p - g)
        ratio = np.maximum(p / g, g / p)
        out.update(
            AbsRel=float(np.mean(diff / g)),
            AbsDiff=float(np.mean(diff)),
            SqRel=float(np.mean(diff**2 / g)),
            RMSE=float(np.sqrt(np.mean(diff**2))),
            LogRMSE=float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
            r1=float(np.mean(ratio < 1.25)),
            r2=float(np.mean(ratio < 1.25**2)),
            r3=float(np.mean(ratio < 1.25**3)),
        )
    return out


def mean_depth_metrics(per_view: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over the views where it is defined (NaN if none)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        means = {k: float(np.nanmean([m[k] for m in per_view])) for k in DEPTH_KEYS}
    return means | {"n_views": len(per_view)}


def mesh_depth_metrics(
    mesh: Mesh, views: Views, gt_depths: Iterable[np.ndarray], max_depth: float = 10.0
) -> dict[str, float]:
    """The mesh rendered at each view (Open3D ray casting) against ``gt_depths`` (one
    (H, W) metres map per view, in order), averaged over views; adds ``n_views``."""
    per_view = [
        depth_metrics(pred, gt, max_depth)
        for pred, gt in zip(render_depths(mesh, views), gt_depths, strict=True)
    ]
    return mean_depth_metrics(per_view)
