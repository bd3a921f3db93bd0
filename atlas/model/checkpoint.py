"""Model files for inference: the weights and the architecture, nothing else.

A model file is a ``torch.save`` of ``{"format": FORMAT, "config": ModelConfig as plain
dicts, "state_dict": the ATLASNet weights, "card": free-form facts}``: plain tensors and
builtins, so it loads with ``torch.load(weights_only=True)``. Training checkpoints
(Lightning ``.ckpt``) are exported to it with ``python -m atlas.model.export`` and also
load directly.

Files are only ever read with ``weights_only=True`` (never with a fallback): a file that
holds other Python objects (a pickle that could run code when loaded) is refused with
an error naming the file and the object.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from atlas.io_utils import atomic_path
from atlas.model.atlas_net import ATLASNet
from atlas.model.config import ModelConfig, build_model

FORMAT = "atlas-model-1"
BUNDLED = Path(__file__).resolve().parent / "weights" / "atlas_cpu.pt"


def save_model(net: ATLASNet, cfg: ModelConfig, path: str | Path, card: dict | None = None) -> Path:
    """Write a model file atomically (weights as float32)."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    with atomic_path(Path(path)) as tmp:
        torch.save(
            {"format": FORMAT, "config": cfg.to_dict(), "state_dict": state, "card": card or {}},
            tmp,
        )
    return Path(path)


def _lightning_to_model(ckpt: dict, path: Path) -> dict:
    try:
        hparams = ckpt["hyper_parameters"]["model"]
    except KeyError:
        raise ValueError(f"{path}: a Lightning checkpoint without model hyper-parameters") from None
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    return {
        "format": FORMAT,
        "config": hparams,
        "state_dict": state,
        "card": {"global_step": ckpt.get("global_step"), "source": str(path)},
    }


def read_model_file(path: str | Path) -> dict:
    """The model record of a model file or a Lightning checkpoint (see the module
    docstring); errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        if found is None:  # damaged, not dangerous
            raise ValueError(
                f"{path}: not a readable model file ({type(err).__name__}: {err})"
            ) from None
        raise ValueError(
            f"{path}: refused: the file holds a Python object ({found.group(1)}) besides "
            "tensors and plain values, and loading it could run code; model files load "
            "with weights_only=True only (make one from a checkpoint you trust with "
            "python -m atlas.model.export)"
        ) from None
    except Exception as err:  # torch raises many kinds for a bad file
        raise ValueError(
            f"{path}: not a readable model file ({type(err).__name__}: {err})"
        ) from None
    if isinstance(raw, dict) and raw.get("format") == FORMAT:
        return raw
    if isinstance(raw, dict) and "state_dict" in raw and "hyper_parameters" in raw:
        return _lightning_to_model(raw, path)
    raise ValueError(f"{path}: not an ATLAS model file or training checkpoint")


def load_model(
    path: str | Path | None = None, device: str | torch.device = "cpu"
) -> tuple[ATLASNet, ModelConfig, dict]:
    """(network in eval mode, its config, its card) from a model file or checkpoint
    (default: the bundled model). A state dict that does not fit the stored config is
    an error naming the file and the first mismatching keys."""
    path = Path(path) if path is not None else BUNDLED
    record = read_model_file(path)
    try:
        cfg = ModelConfig.from_dict(record["config"])
    except TypeError as err:
        raise ValueError(f"{path}: model config not understood: {err}") from None
    net = build_model(cfg, load_backbone_weights=False)
    load_weights(net, record["state_dict"], path)
    return net.to(device).eval(), cfg, record.get("card", {})


def load_weights(net: torch.nn.Module, state: dict, path: str | Path) -> None:
    """Load ``state`` into ``net``; weights that do not fit it are an error naming the
    file (``path``) and the first mismatching keys."""
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: weights do not fit the model config: missing "
            f"{missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]}"
        )
    net.load_state_dict(state)
