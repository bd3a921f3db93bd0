"""``torch.compile`` for the package's elementwise kernels, with an eager fallback."""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

_COMPILED: dict[str, Callable] = {}


def compiled(name: str, fn: Callable) -> Callable:
    """``fn`` compiled with ``torch.compile(dynamic=True)`` (cached by name), or ``fn``
    itself when ``ATLAS_COMPILE=0`` or compiling is unavailable."""
    if name not in _COMPILED:
        kernel = fn
        if os.environ.get("ATLAS_COMPILE", "1") != "0":
            try:
                kernel = torch.compile(fn, dynamic=True)
            except Exception:  # no compiler toolchain: stay eager
                kernel = fn
        _COMPILED[name] = kernel
    return _COMPILED[name]
