"""Model files for inference: the weights and the architecture, nothing else.

A model file is a ``torch.save`` of ``{"format": FORMAT, "config": ModelConfig as plain
dicts, "state_dict": the ATLASNet weights, "contract": its input contract
(:mod:`atlas.model.contract`), "card": free-form facts}``: plain tensors and builtins,
so it loads with ``torch.load(weights_only=True)``. Files from before the contract
existed have none and load with the settings they were made with (and a note). Training checkpoints
(Lightning ``.ckpt``) are exported to it with ``python -m atlas.model.export`` and also
load directly.

Files are only ever read with ``weights_only=True`` (never with a fallback): a file that
holds other Python objects (a pickle that could run code when loaded) is refused with
an error naming the file and the object.
"""

from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import NamedTuple

import torch

from atlas.io_utils import atomic_path
from atlas.model.atlas_net import ATLASNet
from atlas.model.config import ModelConfig, build_model
from atlas.model.contract import InputContract, assumed_contract

log = logging.getLogger(__name__)

FORMAT = "atlas-model-1"
BUNDLED = Path(__file__).resolve().parent / "weights" / "atlas_cpu.pt"


def save_model(
    net: ATLASNet,
    cfg: ModelConfig,
    path: str | Path,
    contract: InputContract,
    card: dict | None = None,
) -> Path:
    """Write a model file atomically (weights as float32) with its input contract."""
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    record = {
        "format": FORMAT,
        "config": cfg.to_dict(),
        "state_dict": state,
        "contract": contract.to_dict(),
        "card": card or {},
    }
    with atomic_path(Path(path)) as tmp:
        torch.save(record, tmp)
    return Path(path)


def _lightning_to_model(ckpt: dict, path: Path) -> dict:
    try:
        hparams = ckpt["hyper_parameters"]["model"]
    except KeyError:
        raise ValueError(f"{path}: a Lightning checkpoint without model hyper-parameters") from None
    prefix = "model."
    state = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    record = {
        "format": FORMAT,
        "config": hparams,
        "state_dict": state,
        "card": {"global_step": ckpt.get("global_step"), "source": str(path)},
    }
    if ckpt["hyper_parameters"].get("contract") is not None:
        record["contract"] = ckpt["hyper_parameters"]["contract"]
    return record


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


class LoadedModel(NamedTuple):
    """net: the network in eval mode; config: its architecture; card: free-form facts;
    contract: the input it was trained on (assumed for files without one)."""

    net: ATLASNet
    config: ModelConfig
    card: dict
    contract: InputContract


def load_model(path: str | Path | None = None, device: str | torch.device = "cpu") -> LoadedModel:
    """A model file or checkpoint (default: the bundled model). A state dict that does
    not fit the stored config, or a malformed contract, is an error naming the file; a
    file without a contract gets :func:`atlas.model.contract.assumed_contract` and a
    logged note."""
    path = Path(path) if path is not None else BUNDLED
    record = read_model_file(path)
    try:
        cfg = ModelConfig.from_dict(record["config"])
    except TypeError as err:
        raise ValueError(f"{path}: model config not understood: {err}") from None
    net = build_model(cfg, load_backbone_weights=False)
    load_weights(net, record["state_dict"], path)
    card = record.get("card", {})
    if "contract" in record:
        contract = InputContract.from_dict(record["contract"], path)
        contract.check_fits(cfg, path)
    else:
        contract = assumed_contract(cfg, card)
        log.warning(
            "%s: no input contract stored (a model file from before 2026-12-07); assuming "
            "a prior made with the model_prior preset of then (planes from 0.3 m) and %dx%d "
            "images",
            path,
            *contract.image_size,
        )
    return LoadedModel(net.to(device).eval(), cfg, card, contract)


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
