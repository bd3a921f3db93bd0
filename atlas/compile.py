"""``torch.compile`` for the package's elementwise kernels, with an eager fallback.

Compiling costs seconds once per process, and a compiled call saves milliseconds over
an eager one, so a kernel called only a few hundred times in a process (fusing one
room) is faster eager. A kernel may therefore run eagerly for its first
``eager_calls`` calls and be compiled from then on (the ski-rental rule: never more
than twice the cost of the better choice in hindsight); the switch depends on the call
count only, so a run is reproducible. ``ATLAS_COMPILE``: ``0`` runs every kernel
eagerly, ``always`` compiles each at its first call, ``1`` (the default) follows the
rule. The measured costs are in docs/benchmarks.md (TSDF fusion).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

_COMPILED: dict[str, Callable] = {}

# Calls of a fusion kernel run eagerly before it is compiled: the compile time over the
# time an eager call loses (docs/benchmarks.md, TSDF fusion).
FUSION_EAGER_CALLS = 1000


class _CompiledOrEager:
    """``fn`` for its first ``eager_calls`` calls, then ``torch.compile(fn,
    dynamic=True)``, which compiles on its first call: if that call fails (no C++
    compiler, no Triton), a warning is logged and ``fn`` runs eagerly from then on. An
    error of ``fn`` itself is raised again by the eager call, and the compiled kernel
    is kept for the next call."""

    def __init__(self, name: str, fn: Callable, eager_calls: int = 0) -> None:
        self.name, self.fn = name, fn
        self.kernel: Callable = torch.compile(fn, dynamic=True)
        self.eager_calls = eager_calls
        self.calls = 0
        self.tried = False

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls <= self.eager_calls:
            return self.fn(*args, **kwargs)
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


def compiled(name: str, fn: Callable, eager_calls: int = 0) -> Callable:
    """``fn``, compiled with ``torch.compile(dynamic=True)`` after its first
    ``eager_calls`` calls in this process (cached by name; at once with
    ``ATLAS_COMPILE=always``), or ``fn`` itself with ``ATLAS_COMPILE=0`` or when
    compiling fails (see :class:`_CompiledOrEager`)."""
    if name not in _COMPILED:
        mode = os.environ.get("ATLAS_COMPILE", "1")
        if mode not in ("0", "1", "always"):
            raise ValueError(f"ATLAS_COMPILE must be 0, 1 or always, got {mode!r}")
        if mode == "0":
            _COMPILED[name] = fn
        else:
            _COMPILED[name] = _CompiledOrEager(name, fn, 0 if mode == "always" else eager_calls)
    return _COMPILED[name]


def reset() -> None:
    """Forget every kernel made so far: the next :func:`compiled` call of each reads
    ``ATLAS_COMPILE`` again and starts counting its calls from zero."""
    _COMPILED.clear()
