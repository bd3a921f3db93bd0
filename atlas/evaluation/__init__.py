"""Evaluation (docs/evaluation.md).

mesh_metrics: accuracy, completeness, precision, recall, F-score from KD-tree distances;
protocols: the published protocols (atlas, trimmed, culled); views: cameras, depth
rendering, depth fusion; visibility: observed-space masks; depth_metrics: per-view depth
errors; tsdf_metrics: TSDF L1; report / plots: outputs; render: preview pictures;
config / runner: what ``evaluate.py`` runs.
"""
