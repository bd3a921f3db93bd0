"""Atomic writing: files and folders appear whole or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary name keeps the suffix (writers such as Open3D pick the format from it).
    On an exception the temporary file is removed and ``path`` is left untouched. The
    file gets the usual permissions (0666 less the umask), not the temporary's 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty hidden folder beside ``path`` (``.<name>.tmp``); when the block
    succeeds it replaces ``path``, otherwise it is deleted and ``path`` is untouched. A
    leftover from a killed run is cleared first."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        tmp.rename(path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable_dir(path: str | os.PathLike) -> Path:
    """``path`` as given when it is a folder this process may write in, or one it could
    create (its nearest existing ancestor is such a folder); otherwise an ``OSError``
    naming it. Creates nothing, so a run that fails later leaves no empty folder."""
    path = Path(path)
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(f"{path}: output folder cannot be made ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"{path}: output folder is not writable ({existing} is read-only)")
    return path


def save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write arrays to a compressed ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_npz(
    path: str | os.PathLike, what: str, required: tuple[str, ...]
) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (no pickles). A missing file, an unreadable one or
    one without the ``required`` keys raises an error naming the file and ``what`` it
    should have been."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {what} file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a {what} (unreadable: {err})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not a {what}, missing keys {missing}")
    return arrays
