"""Evaluation plots (PNG, Matplotlib's non-interactive Agg canvas, no pyplot state):
precision / recall / F-score against the threshold, and the predicted mesh coloured by
its distance to the ground truth (also written as a vertex-coloured ``.ply``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from atlas.geometry.mesh import Mesh, write_ply
from atlas.geometry.render import preview_camera, render_mesh
from atlas.io_utils import atomic_path

COLORMAP = "turbo"
IGNORED_GREY = 160  # vertices the protocol ignores (outside observed space)


def _save(fig: Figure, path: str | Path) -> Path:
    FigureCanvasAgg(fig)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return Path(path)


def plot_threshold_curves(
    curves: dict[str, list[float]], path: str | Path, threshold: float, title: str
) -> Path:
    """Precision, recall and F-score (``curves`` from ``threshold_curves``) against the
    threshold in centimetres, the protocol's threshold marked."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    t_cm = 100 * np.asarray(curves["threshold"])
    for key, label in (("prec", "precision"), ("recal", "recall"), ("fscore", "F-score")):
        ax.plot(t_cm, curves[key], marker="o", markersize=3, label=label)
    ax.axvline(100 * threshold, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="threshold (cm)", ylabel="share", ylim=(0, 1.02), title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, path)


def distance_colors(distance: np.ndarray, max_distance: float) -> np.ndarray:
    """(V, 3) uint8 colours of distances (V,) metres on the colour map, 0 to
    ``max_distance`` (clipped); NaN (ignored) grey."""
    distance = np.asarray(distance, np.float64)
    known = np.isfinite(distance)
    rgba = colormaps[COLORMAP](np.clip(np.where(known, distance, 0) / max_distance, 0, 1))
    colors = np.rint(rgba[:, :3] * 255).astype(np.uint8)
    colors[~known] = IGNORED_GREY
    return colors


def save_distance_mesh(
    mesh: Mesh,
    vertex_distance: np.ndarray,
    max_distance: float,
    ply_path: str | Path,
    png_path: str | Path,
    title: str,
) -> tuple[Path, Path]:
    """The mesh with vertices coloured by ``vertex_distance`` (V,) metres: a ``.ply`` and
    a rendered preview with a colour bar (centimetres)."""
    colored = Mesh(mesh.vertices, mesh.faces, distance_colors(vertex_distance, max_distance))
    write_ply(colored, ply_path)
    width, height = 640, 480
    if len(mesh.vertices):
        K, pose = preview_camera(mesh.vertices.min(0), mesh.vertices.max(0), width, height)
        image = render_mesh(colored, K, pose, width, height)
    else:
        image = np.full((height, width, 3), 255, np.uint8)
    fig = Figure(figsize=(7.5, 4.8))
    ax = fig.add_subplot()
    ax.imshow(image)
    ax.set_axis_off()
    ax.set_title(title)
    mappable = ScalarMappable(Normalize(0, 100 * max_distance), colormaps[COLORMAP])
    fig.colorbar(mappable, ax=ax, label="distance to ground truth (cm); grey: ignored")
    fig.tight_layout()
    return Path(ply_path), _save(fig, png_path)
