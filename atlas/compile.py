"""``torch.compile`` for the package's elementwise kernels, with an eager fallback."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

_COMPILED: dict[str, Callable] = {}


class _CompiledOrEager:
    """``torch.compile(fn, dynamic=True)``, which compiles on its first call: if that call
    fails (no C++ compiler, no Triton), a warning is logged and ``fn`` runs eagerly from
    then on. An error of ``fn`` itself is raised again by the eager call, and the compiled
    kernel is kept for the next call."""

    def __init__(self, name: str, fn: Callable) -> None:
        self.name, self.fn = name, fn
        self.kernel: Callable = torch.compile(fn, dynamic=True)
        self.tried = False

    def __call__(self, *args, **kwargs):
        if self.tried:
            return self.kernel(*args, **kwargs)
        try:
            out = self.kernel(*args, **kwargs)
        except Exception as err:  # compiling failed before anything ran
            out = self.fn(*args, **kwargs)  # an error of fn itself: raised, kernel kept
            log.warning("torch.compile of %s failed (%s); running it eagerly", self.name, err)
            self.kernel = self.fn
        self.tried = True
        return out


def compiled(name: str, fn: Callable) -> Callable:
    """``fn`` compiled with ``torch.compile(dynamic=True)`` (cached by name), or ``fn``
    itself when ``ATLAS_COMPILE=0`` or compiling fails (see :class:`_CompiledOrEager`)."""
    if name not in _COMPILED:
        eager = os.environ.get("ATLAS_COMPILE", "1") == "0"
        _COMPILED[name] = fn if eager else _CompiledOrEager(name, fn)
    return _COMPILED[name]
