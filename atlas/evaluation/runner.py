"""An evaluation run: scenes planned from the config, each scored by the protocol (plus
depth metrics, TSDF L1, the fused-depth baseline, plots), then the reports written.

A scene that cannot be evaluated (a missing or unreadable prediction, no ground truth,
an unreadable scene, non-finite vertices) is reported as failed and the others still
run; with ``missing_pred=zero`` a missing or unreadable prediction scores F = 0 with a
warning instead, and a readable empty prediction always does. ``run`` returns the
summary that ``evaluate.py`` prints as its last line.

Only what a run uses is imported: Matplotlib and Open3D (plots) and torch (fusion, for
``trimmed`` and the baseline) load on first use, so a mesh pair without plots starts
quickly (timings: docs/benchmarks.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from atlas.evaluation.config import EvaluateConfig, MissingPred, check_settings
from atlas.evaluation.depth_metrics import mesh_depth_metrics
from atlas.evaluation.mesh_metrics import threshold_curves
from atlas.evaluation.protocols import CulledProtocol, MeshProtocol, Reference
from atlas.evaluation.report import markdown_table, mean_rows, write_reports
from atlas.evaluation.tsdf_metrics import tsdf_l1
from atlas.evaluation.views import Views, fuse_depth_maps
from atlas.evaluation.visibility import VisibilityMask
from atlas.geometry.mesh import Mesh, read_ply, read_ply_header
from atlas.geometry.voxel_grid import VoxelGrid

log = logging.getLogger(__name__)

BASELINE = "baseline"


@dataclass
class SceneJob:
    """One scene to evaluate: its name and resolved paths (None: not given)."""

    name: str
    pred_mesh: Path
    gt_mesh: Path | None
    scene_dir: Path | None
    pred_tsdf: Path | None
    gt_tsdf: Path | None
    visibility_mask: Path | None


class Recording(Protocol):
    """What evaluation reads of a recorded scene (a ``SceneReader`` has it): name;
    poses (N, 4, 4) camera-to-world metres and valid (N,) bool; K_depth (3, 3) and
    depth_size (width, height), None without depth; K_color and color_size; and
    ``iter_frames(indices)`` yielding frames whose ``depth`` is (H, W) float32 metres."""

    name: str
    K_color: np.ndarray
    K_depth: np.ndarray | None
    color_size: tuple[int, int]
    depth_size: tuple[int, int] | None

    @property
    def poses(self) -> np.ndarray: ...

    @property
    def valid(self) -> np.ndarray: ...

    def iter_frames(self, indices: Iterable[int], depth: bool = True) -> Iterator: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class Recordings:
    """Where evaluation finds the recordings behind a ``scene=`` folder or a
    ``data_root``: given by the caller (``evaluate.py`` passes the ScanNet reader), since
    evaluation sits below the readers and needs only geometry.

    open_scene: a scene folder -> its reader (cameras, poses, depth frames);
    split_names: (data_root, split name) -> the scene names of that split."""

    open_scene: Callable[[Path], Recording]
    split_names: Callable[[str, str], list[str]]


@dataclass
class Scan:
    """A scene's recording as evaluation uses it: the reader, the frame indices used
    (valid poses, every ``frame_stride``-th) and their cameras (depth intrinsics and size
    when the scene has depth)."""

    reader: Recording
    indices: np.ndarray
    views: Views

    @property
    def has_depth(self) -> bool:
        return self.reader.K_depth is not None

    def depths(self) -> Iterator[np.ndarray]:
        """The measured depth of each used frame: (H, W) float32 metres, 0 = none."""
        for frame in self.reader.iter_frames(self.indices):
            yield frame.depth


def _fill(template: str | None, scene: str) -> Path | None:
    return None if template is None else Path(template.replace("{scene}", scene))


def plan_jobs(cfg: EvaluateConfig, recordings: Recordings) -> list[SceneJob]:
    """The scenes a config asks for (a split's names from ``recordings``); ``ValueError``
    with a one-line reason otherwise."""
    if cfg.frame_stride < 1:
        raise ValueError(f"frame_stride must be at least 1, got {cfg.frame_stride}")
    if cfg.visibility_mask is not None and not isinstance(cfg.protocol, CulledProtocol):
        raise ValueError("visibility_mask is only used by protocol=culled")
    if cfg.pred_dir is not None:
        if cfg.pred_mesh is not None or cfg.scene is not None:
            raise ValueError("pred_dir (several scenes) excludes pred_mesh and scene (one)")
        if cfg.scenes:
            names = list(cfg.scenes)
        elif cfg.split is not None and cfg.data_root is not None:
            names = recordings.split_names(cfg.data_root, cfg.split)
        else:
            raise ValueError("pred_dir needs its scenes: data_root=... split=..., or scenes=[...]")
        if not names:
            raise ValueError(f"no scenes to evaluate in split '{cfg.split}' of {cfg.data_root}")
        if cfg.data_root is None and cfg.gt_mesh is None:
            raise ValueError("pred_dir needs data_root=... or a gt_mesh=... path with {scene}")
        root = None if cfg.data_root is None else Path(cfg.data_root)
        if root is not None and (root / "scans").is_dir():
            root = root / "scans"
        scenes = [(n, Path(cfg.pred_dir) / n / cfg.pred_name, root and root / n) for n in names]
    elif cfg.pred_mesh is not None:
        if cfg.gt_mesh is None and cfg.scene is None:
            raise ValueError("no ground truth: set gt_mesh=... or scene=...")
        scene_dir = None if cfg.scene is None else Path(cfg.scene)
        name = cfg.name or (scene_dir.name if scene_dir else Path(cfg.pred_mesh).stem)
        scenes = [(name, Path(cfg.pred_mesh), scene_dir)]
    else:
        raise ValueError(
            "nothing to evaluate: set pred_mesh=... (one scene) or pred_dir=... (several)"
        )
    return [
        SceneJob(
            name,
            pred,
            _fill(cfg.gt_mesh, name),
            scene_dir,
            _fill(cfg.pred_tsdf, name),
            _fill(cfg.gt_tsdf, name),
            _fill(cfg.visibility_mask, name),
        )
        for name, pred, scene_dir in scenes
    ]


def open_scan(reader: Recording, frame_stride: int = 1) -> Scan:
    """A recording's cameras; frames without a valid pose are skipped (logged)."""
    valid = np.flatnonzero(reader.valid)
    if len(valid) < len(reader):
        log.info("%s: %d of %d frames have no valid pose, skipped", reader.name,
                 len(reader) - len(valid), len(reader))  # fmt: skip
    indices = valid[::frame_stride]
    if reader.K_depth is not None:
        K, size = reader.K_depth, reader.depth_size
    else:
        K, size = reader.K_color, reader.color_size
    return Scan(reader, indices, Views(K, reader.poses[indices], *size))


def _empty_mesh() -> Mesh:
    return Mesh(np.zeros((0, 3)), np.zeros((0, 3)))


def check_finite(mesh: Mesh, path: Path) -> Mesh:
    """``mesh`` when all its vertices are finite; else ``ValueError`` naming the file and
    how many vertices are NaN or infinite (no distance to them means anything)."""
    bad = int(np.count_nonzero(~np.isfinite(mesh.vertices).all(axis=1)))
    if bad:
        raise ValueError(
            f"{path}: {bad} of {len(mesh.vertices)} vertices are not finite (NaN or "
            "infinite coordinates); fix the mesh or drop them before evaluating"
        )
    return mesh


def _declares_no_vertices(path: Path) -> bool:
    """Whether ``path`` is a well-formed PLY header promising no vertices (an empty mesh,
    as a reconstruction that found no surface writes it)."""
    try:
        return read_ply_header(path).elements.get("vertex") == 0
    except (OSError, ValueError):
        return False


def read_prediction(path: Path, missing_pred: MissingPred = MissingPred.error) -> tuple[Mesh, str]:
    """The predicted mesh and a warning ('' if none).

    A readable mesh without vertices is empty (it scores F = 0) with a warning; one
    without faces keeps its vertices, with a warning. A missing or unreadable file
    raises ``FileNotFoundError`` / ``ValueError`` naming it, or with
    ``missing_pred=MissingPred.zero`` gives an empty mesh and a warning saying why.
    Non-finite vertices always raise (:func:`check_finite`).
    """
    path = Path(path)
    lenient = missing_pred == MissingPred.zero
    if not path.is_file():
        if lenient:
            return _empty_mesh(), f"prediction missing: {path}"
        raise FileNotFoundError(
            f"{path}: prediction not found (missing_pred=zero scores a missing prediction 0)"
        )
    try:
        mesh = read_ply(path)
    except ValueError as err:  # empty, truncated or not a mesh: err names the file
        if _declares_no_vertices(path):
            return _empty_mesh(), f"prediction is an empty mesh (no vertices): {path}"
        if lenient:
            return _empty_mesh(), f"prediction unreadable or empty: {err}"
        raise
    check_finite(mesh, path)
    if mesh.is_empty:
        return mesh, f"prediction has no faces, only its vertices count: {path}"
    return mesh, ""


def load_prediction(path: Path) -> tuple[Mesh, str]:
    """:func:`read_prediction` with ``missing_pred=zero``: a missing, unreadable or
    empty file gives an empty mesh (which scores F = 0) and a warning saying so."""
    return read_prediction(path, MissingPred.zero)


def _reference(job: SceneJob, protocol: MeshProtocol, scan: Scan | None) -> Reference:
    gt_path = job.gt_mesh or (scan.reader.gt_mesh_path if scan else None)
    if gt_path is None:
        raise FileNotFoundError(
            f"{job.scene_dir}: no ground-truth mesh {job.name}_vh_clean_2.ply (set gt_mesh=...)"
        )
    gt = check_finite(read_ply(gt_path), gt_path)
    views = scan.views if scan else None
    if job.visibility_mask is not None:
        assert isinstance(protocol, CulledProtocol)  # plan_jobs checked it
        return protocol.reference(gt, views, mask=VisibilityMask.load(job.visibility_mask))
    return protocol.reference(gt, views)


def _score(
    cfg: EvaluateConfig,
    job: SceneJob,
    method: str,
    mesh: Mesh,
    ref: Reference,
    scan: Scan | None,
    out: Path,
) -> dict:
    """One row: the protocol's metrics (+ depth metrics), curve and plots of a mesh."""
    protocol = cfg.protocol
    t0 = time.perf_counter()
    ev = protocol.evaluate(mesh, ref, scan.views if scan else None)
    row = {"scene": job.name, "method": method, "status": "ok", **ev.metrics}
    if cfg.depth.enabled and scan is not None and scan.has_depth:
        row.update(mesh_depth_metrics(mesh, scan.views, scan.depths(), cfg.depth.max_depth))
    row["seconds"] = round(time.perf_counter() - t0, 3)
    row["curve"] = threshold_curves(ev.d_pred, ev.d_gt, cfg.plots.thresholds, ev.inclusive)
    if cfg.plots.enabled:
        # Imported here: Matplotlib and Open3D (ray casting) take over a second to load.
        from atlas.evaluation.plots import plot_threshold_curves, save_distance_mesh

        title = f"{job.name}: {method}, {protocol.name} protocol"
        plot_threshold_curves(row["curve"], out / f"{method}_curve.png", protocol.threshold, title)
        save_distance_mesh(
            ev.mesh,
            ev.vertex_distance,
            cfg.plots.color_max,
            out / f"{method}_distance.ply",
            out / f"{method}_distance.png",
            title,
        )
    return row


def _failed(scene: str, method: str, err: BaseException) -> dict:
    """A failed row, logged (with the traceback when debugging)."""
    text = str(err) if isinstance(err, OSError | ValueError) else f"{type(err).__name__}: {err}"
    log.error("%s (%s) failed: %s", scene, method, text, exc_info=log.isEnabledFor(logging.DEBUG))
    return {"scene": scene, "method": method, "status": "failed", "error": text}


def _guarded(scene: str, method: str, make_row: Callable[[], dict]) -> dict:
    """``make_row()``, or a failed row when it raises."""
    try:
        return make_row()
    except Exception as err:  # one failure is reported; the rest of the run goes on
        return _failed(scene, method, err)


def evaluate_scene(
    cfg: EvaluateConfig, job: SceneJob, out_dir: Path, recordings: Recordings
) -> list[dict]:
    """Rows of one scene: the prediction, then the baseline when enabled."""
    out = Path(out_dir) / job.name
    pred, warning = read_prediction(job.pred_mesh, cfg.missing_pred)  # first: fails fast
    scan = None
    if job.scene_dir:
        scan = open_scan(recordings.open_scene(job.scene_dir), cfg.frame_stride)
    ref = _reference(job, cfg.protocol, scan)
    if ref.mask is not None and job.visibility_mask is None:
        ref.mask.save(out / "visibility.npz")
    if warning:
        log.warning("%s: %s", job.name, warning)
    row = _score(cfg, job, "prediction", pred, ref, scan, out)
    row["warning"] = warning
    if job.pred_tsdf is not None and job.gt_tsdf is not None:
        row["tsdf_l1"] = tsdf_l1(VoxelGrid.load(job.pred_tsdf), VoxelGrid.load(job.gt_tsdf))
    rows = [row]
    if cfg.baseline.enabled:

        def baseline_row() -> dict:
            if scan is None or not scan.has_depth:
                raise ValueError("the baseline needs a scene with depth (scene=... or data_root)")
            b = cfg.baseline
            mesh = fuse_depth_maps(
                scan.depths(), scan.views, b.voxel_size, b.trunc_voxels, b.max_depth
            )
            return _score(cfg, job, BASELINE, mesh, ref, scan, out)

        rows.append(_guarded(job.name, BASELINE, baseline_row))
    return rows


def run(cfg: EvaluateConfig, out_dir: str | Path, recordings: Recordings) -> tuple[dict, str]:
    """Evaluate every planned scene (recordings opened by ``recordings``), write the
    reports into ``out_dir``; return the summary line (protocol, counts, mean metrics,
    report path) and the Markdown table."""
    out_dir = Path(out_dir)
    check_settings(cfg)
    jobs = plan_jobs(cfg, recordings)
    protocol = cfg.protocol
    methods = ["prediction"] + ([BASELINE] if cfg.baseline.enabled else [])
    rows: list[dict] = []
    for i, job in enumerate(jobs):
        log.info("[%d/%d] %s: %s protocol", i + 1, len(jobs), job.name, protocol.name)
        try:
            rows += evaluate_scene(cfg, job, out_dir, recordings)
        except Exception as err:  # a failed scene is reported; the others still finish
            rows += [_failed(job.name, m, err) for m in methods]
    means = mean_rows(rows)
    summary = {
        "protocol": protocol.name,
        "protocol_config": dataclasses.asdict(protocol),
        "baseline": dataclasses.asdict(cfg.baseline) if cfg.baseline.enabled else None,
        "scenes": rows,
        "mean": means,
    }
    paths = write_reports(summary, rows, means, out_dir)
    by_method = {m["method"]: m for m in means}
    skip = ("scene", "method", "status", "n_scenes", "n_failed")
    line = {
        "protocol": protocol.name,
        "threshold": protocol.threshold,
        "n_scenes": len(jobs),
        "n_failed": by_method["prediction"]["n_failed"],
        "metrics": {k: v for k, v in by_method["prediction"].items() if k not in skip},
    }
    if BASELINE in by_method:
        line["baseline"] = {k: v for k, v in by_method[BASELINE].items() if k not in skip}
    line["report"] = str(paths["json"])
    return line, markdown_table(rows + means)
