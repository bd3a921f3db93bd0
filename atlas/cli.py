"""Command-line entry points: bad input or configuration ends the program with one line
on stderr (``error: ...`` naming the file or key) and a non-zero exit code, not a
traceback. ``HYDRA_FULL_ERROR=1`` in the environment brings the tracebacks back."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import NoReturn

from hydra.errors import HydraException, InstantiationException, OverrideParseException
from omegaconf.errors import OmegaConfBaseException

DEBUG_ENV = "HYDRA_FULL_ERROR"
_DEBUG = os.environ.get(DEBUG_ENV) == "1"  # the user's own setting, read before run_cli's


def one_line(err: BaseException) -> str:
    """``err``'s message on one line. An error re-raised from a DataLoader worker carries
    the worker's traceback in its message: only its last line (the error) is kept."""
    text = str(err)
    if "Original Traceback" in text:
        text = [line for line in text.splitlines() if line.strip()][-1]
    return " ".join(text.split())


def _hydra_text(err: HydraException) -> str:
    """A Hydra error's message without its advice to append keys (a misspelt key is not
    one to add) and its config search path."""
    lines = []
    for line in str(err).splitlines():
        if line.startswith("Config search path"):
            break
        if not line.startswith("To append to your config"):
            lines.append(line)
    return " ".join(" ".join(lines).split())


def _quoted(override: str) -> str | None:
    """``override`` (``key=value``) with its value quoted for Hydra (each element of a
    ``[...]`` list), written for a POSIX shell; None when there is nothing to quote."""
    key, sep, value = override.partition("=")
    value = value.strip()
    if not sep or not value or value.startswith("[") != value.endswith("]"):
        return None
    if value.startswith("["):
        items = [v.strip().strip("'") for v in value[1:-1].split(",")]
        quoted = "[" + ",".join(f"'{v}'" for v in items) + "]"
    else:
        quoted = f"'{value.strip(chr(39))}'"
    return f'"{key}={quoted}"'


def _parse_message(err: OverrideParseException) -> str:
    """An override Hydra's lexer refused, and what to type instead: Hydra takes unquoted
    values of ASCII letters, digits and a few symbols only, so a path with other
    characters (``café``, ``日本``, parentheses) must be quoted."""
    override = err.override
    quoted = _quoted(override)
    odd = sorted({c for c in override.partition("=")[2] if ord(c) > 127})
    if odd and quoted:
        return (
            f"cannot parse the override {override}: Hydra reads unquoted values as ASCII "
            f"only and this one has {' '.join(odd)}; quote the value: {quoted}"
        )
    lines = [line for line in str(err).splitlines() if line.strip()]
    text = f"cannot parse the override {override} ({lines[0].strip() if lines else 'syntax'})"
    return text + (f"; a path with such characters must be quoted: {quoted}" if quoted else "")


def _message(err: BaseException) -> str:
    """One line for ``err``: an instantiation error says what its target raised; a config
    error adds the first line of its cause (which names the key); an override Hydra
    cannot parse gets the quoted form to type instead."""
    cause = err.__cause__
    if isinstance(err, InstantiationException) and cause is not None:
        return one_line(cause)
    if isinstance(err, OverrideParseException) and getattr(err, "override", None):
        return _parse_message(err)
    text = _hydra_text(err) if isinstance(err, HydraException) else one_line(err)
    if isinstance(cause, OmegaConfBaseException) and str(cause).strip():
        text += f" ({str(cause).strip().splitlines()[0]})"
    return text


def fail(err: BaseException, code: int = 2) -> NoReturn:
    """Print ``error: <one line>`` on stderr and exit with ``code`` (re-raise instead
    when debugging with ``HYDRA_FULL_ERROR=1``)."""
    if _DEBUG:
        raise err
    print(f"error: {_message(err)}", file=sys.stderr, flush=True)
    sys.exit(code)


def check_selected(argv: list[str], unset_nodes: dict[str, str]) -> None:
    """``ValueError`` for an override of a key under a config node that is null until a
    config group option fills it (``unset_nodes``: node -> its group, as in
    ``{"model.stereo": "stereo@model.stereo"}``) when no override selects that option:
    Hydra itself fails there with an assertion that names nothing."""
    for node, group in unset_nodes.items():
        if any(a.lstrip("+~").startswith(f"{group}=") for a in argv):
            continue
        for arg in argv:
            if arg.lstrip("+~").startswith(f"{node}."):
                raise ValueError(
                    f"{arg}: {node} is unset (null) unless an option is chosen first, "
                    f"as in {group}=<option> {arg}"
                )


def run_cli(main: Callable[[], None], unset_nodes: dict[str, str] | None = None) -> None:
    """Run a ``@hydra.main`` function. Config errors (an unknown key, a bad value, a
    missing config option, a key under a null node: :func:`check_selected`) and failures
    to create the run folder end in one line (exit 2) instead of Hydra's multi-line
    report; errors inside ``main`` are its own to report (with :func:`fail`)."""
    try:
        check_selected(sys.argv[1:], unset_nodes or {})
    except ValueError as err:
        fail(err, 2)
    if _DEBUG:
        main()
        return
    os.environ[DEBUG_ENV] = "1"  # Hydra then raises its errors here instead of printing them
    try:
        main()
    except (HydraException, OmegaConfBaseException, OSError) as err:
        fail(err, 2)
    finally:
        os.environ.pop(DEBUG_ENV, None)
