"""Reconstruct scenes from posed RGB images (Hydra entry point).

    python infer.py scene=../shared/data/7scenes-dev               # the bundled model
    python infer.py scene=PATH checkpoint=outputs/train/x/checkpoints/best.ckpt
    python infer.py scene=PATH method=stereo                       # no model
    python infer.py scene=PATH method=fusion                       # sensor depth (RGB-D)
    python infer.py data_root=data/synthetic split=test out_dir=outputs/test

Each scene goes through the one per-scene pipeline (atlas/pipeline/scene.py). Per scene,
``<out_dir>/<scene>/`` gets mesh.ply (metres, in the input poses' world frame unless
``frame=aligned``, vertex colours),
tsdf.npz, preview.png and summary.json (and semantics.npz for a model with a semantic
head), written all at once (with ``snapshot_every=K``
also the meshes of the first K, 2K, ... frames under snapshots/, and snapshots.png).
A scene that fails is reported (one ``error:`` line on stderr naming the file) and the
others still run; the exit code is 1 if any failed. Bad settings (every key, checked at
once: ``align=upp``, ``format=scanet``, ``model.frame_stride=0``, ``device=gpu``,
``device=cuda`` without a CUDA GPU...), a model file that does not load or whose input
contract differs from the ``model.stereo`` / ``model.image_size`` asked, an output folder
that cannot be written (or a file where a scene's output folder goes), or two scenes
that would write to the same output folder stop the run before any scene (exit code 2).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from atlas.cli import fail, one_line, run_cli
from atlas.config import InferConfig, check_infer_config, register_configs

register_configs()


def scene_paths(cfg: InferConfig) -> list[Path]:
    if cfg.scene:
        return [Path(cfg.scene)]
    if cfg.scenes:
        return [Path(s) for s in cfg.scenes]
    if cfg.data_root and cfg.split:
        from atlas.readers.scannet import read_split

        return [Path(cfg.data_root) / "scans" / n for n in read_split(cfg.data_root, cfg.split)]
    raise ValueError("name the input: scene=PATH, scenes=[...], or data_root=... split=...")


def scene_name(path: Path) -> str:
    """The output folder name of a scene path: a ``.sens`` file's stem, a
    ``transforms.json``'s folder, else the folder's name."""
    if path.suffix == ".sens":
        return path.stem
    if path.suffix == ".json":
        return path.resolve().parent.name
    return path.name


def output_folders(paths: list[Path], out_dir: str | Path) -> dict[Path, Path]:
    """Each scene path's output folder (``out_dir/<scene_name>``), the same path listed
    twice counted once. Checked before any work: two different scenes that would write
    to one folder (``/a/scene0005_00`` and ``/b/scene0005_00``) are a ``ValueError``, and
    a file where an output folder goes a ``NotADirectoryError``, each naming both."""
    folders: dict[Path, Path] = {}
    owner: dict[Path, Path] = {}
    seen: set[Path] = set()
    for path in paths:
        if path.absolute() in seen:
            continue
        seen.add(path.absolute())
        out = Path(out_dir) / scene_name(path)
        if out in owner:
            raise ValueError(
                f"{owner[out]} and {path} would both be written to {out} (scenes are named "
                "after their folder): reconstruct them in separate runs with different "
                "out_dir values, or rename one folder"
            )
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(
                f"{out}: a file is where the output folder of {path} goes; move it away or "
                "choose another out_dir"
            )
        owner[out] = path
        folders[path] = out
    return folders


@hydra.main(version_base="1.3", config_path="configs", config_name="infer")
def main(dict_cfg: DictConfig) -> None:
    from atlas.io_utils import check_writable_dir
    from atlas.pipeline.methods import MethodSettings, check_model_settings
    from atlas.pipeline.outputs import save_reconstruction
    from atlas.pipeline.scene import reconstruct_scene
    from atlas.readers.detect import open_scene

    cfg: InferConfig = OmegaConf.to_object(dict_cfg)
    try:  # everything that would fail every scene, checked once before the first
        device = check_infer_config(cfg)
        outputs = output_folders(scene_paths(cfg), cfg.out_dir)
        check_writable_dir(cfg.out_dir)
        if cfg.method == "model":  # a bad model file fails every scene: say so once
            check_model_settings(cfg.checkpoint, cfg.model)
    except (OSError, ValueError) as err:
        fail(err)
    settings = MethodSettings(cfg.checkpoint, cfg.model, cfg.stereo, cfg.fusion)
    failed: dict[str, str] = {}
    for path, out in outputs.items():
        if (out / "summary.json").is_file() and not cfg.overwrite:
            print(f"{path.name}: done already ({out})")
            continue
        try:
            rec = reconstruct_scene(
                open_scene(path, cfg.format),
                cfg.method,
                settings,
                align=cfg.align,
                frame=cfg.frame,
                device=device,
                snapshot_every=cfg.snapshot_every,
            )
            save_reconstruction(rec, out)
        except (OSError, ValueError) as err:
            print(f"error: {one_line(err)}", file=sys.stderr)
            failed[str(path)] = str(err)
            continue
        s = rec.summary
        for warning in s.get("warnings", []):
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{path.name}: {s['method']}, {s['mesh_vertices']} vertices -> {out}")
        if "warning" in s:
            print(f"  warning: {s['warning']}")
    print(json.dumps({"scenes": len(outputs), "failed": failed}))
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    run_cli(main, {"model.stereo": "stereo@model.stereo"})
