"""The per-scene pipeline: every rule about a scene lives here, in this order.

1. frames: those without a finite pose are skipped (counted in the summary, warned);
2. gravity alignment: the reader is moved to a Z-up frame, floor at 0 (``align``:
   ``dataset`` takes the reader's own ``up``: none for ScanNet and prepared scenes,
   estimated for every other layout);
3. metric scale: a trajectory that does not look like metres is warned about;
4. reconstruction by the chosen method (:data:`atlas.pipeline.methods.METHODS`), with
   vertex colours, in the aligned frame (and snapshots when asked);
5. outputs in the input's world frame (``frame="input"``, the default: what a user
   overlaying the mesh on their own poses expects) or the aligned one
   (``frame="aligned"``); the alignment is recorded in the summary either way.

``infer.py``, the Python API, the demo, the model card and the benchmarks all call
:func:`reconstruct_scene`, so they agree::

    from atlas.readers.detect import open_scene
    from atlas.pipeline.scene import reconstruct_scene
    from atlas.pipeline.outputs import save_reconstruction
    rec = reconstruct_scene(open_scene("path/to/scene"))            # the bundled model
    rec = reconstruct_scene(open_scene("path/to/scene"), "stereo")  # no model needed
    save_reconstruction(rec, "outputs/my_scene")
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from atlas.pipeline.methods import MethodSettings, method_named
from atlas.pipeline.outputs import to_input_frame
from atlas.pipeline.result import Reconstruction
from atlas.readers.alignment import AlignedReader, check_up, estimate_alignment
from atlas.readers.checks import check_metric_scale
from atlas.readers.frames import SceneReader, SubsetReader

FRAMES = ("input", "aligned")


def check_frame(frame: str) -> None:
    """``ValueError`` naming the ``frame`` setting unless it is ``input`` or ``aligned``."""
    if frame not in FRAMES:
        raise ValueError(f"frame must be input or aligned, got {frame!r}")


def reconstruct_scene(
    reader: SceneReader,
    method: str = "model",
    settings: MethodSettings | None = None,
    *,
    align: str = "dataset",
    frame: str = "input",
    device: str = "cpu",
    snapshot_every: int = 0,
) -> Reconstruction:
    """Reconstruct one scene with ``method`` (``model``, ``stereo`` or ``fusion``; its
    settings from ``settings``), following the steps of the module docstring. Warnings
    (skipped frames, metric scale) are one line each in ``summary["warnings"]``, for
    the caller to show (``infer.py`` prints them on stderr)."""
    run = method_named(method)
    check_up(align, extra=("dataset",))
    check_frame(frame)
    settings = settings or MethodSettings()
    warnings = []
    skipped = int((~reader.valid).sum())
    if 0 < skipped < len(reader):
        warnings.append(
            f"{reader.name}: {skipped} of {len(reader)} frames skipped (non-finite pose)"
        )
    scale_warning = check_metric_scale(reader)
    if scale_warning:
        warnings.append(scale_warning)
    alignment = estimate_alignment(reader, reader.up if align == "dataset" else align)
    aligned = AlignedReader(reader, alignment)

    def reconstruct(r: SceneReader) -> Reconstruction:
        return run(r, settings, device)

    rec = reconstruct(aligned)
    if snapshot_every:
        add_snapshots(rec, aligned, reconstruct, snapshot_every)
    if warnings:
        rec.summary["warnings"] = warnings
    if scale_warning:
        rec.summary["scale_warning"] = scale_warning
    rec.summary["alignment"] = {
        "method": alignment.method,
        "transform": alignment.transform.tolist(),
        "frame": frame,
    }
    if frame == "input" and not np.array_equal(alignment.transform, np.eye(4)):
        to_input_frame(rec, alignment.transform)  # (nothing to move when not aligned)
    return rec


def add_snapshots(
    rec: Reconstruction,
    reader: SceneReader,
    reconstruct: Callable[[SceneReader], Reconstruction],
    every: int,
) -> None:
    """Incremental reconstruction: ``rec.snapshots`` gets the mesh of the first k frames
    of ``reader`` for k = every, 2 every, ... below its length (``rec``, from all frames,
    is the last one), made by ``reconstruct``. Each snapshot reconstructs its frames from
    scratch, so the cost grows as frames^2 / every. A prefix that cannot be
    reconstructed (e.g. stereo with under two valid frames) is listed in the summary and
    skipped."""
    if isinstance(every, bool) or not isinstance(every, int | np.integer) or every < 1:
        raise ValueError(f"snapshot_every must be a positive number of frames, got {every}")
    facts = []
    for k in tqdm(range(every, len(reader), every), desc=f"snapshots {rec.name}", leave=False):
        try:
            mesh = reconstruct(SubsetReader(reader, range(k))).mesh
        except ValueError as err:
            facts.append({"frames": k, "skipped": str(err)})
            continue
        rec.snapshots.append((k, mesh))
        facts.append({"frames": k, "mesh_vertices": len(mesh.vertices)})
    rec.summary["snapshots"] = facts
