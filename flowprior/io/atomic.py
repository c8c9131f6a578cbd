"""Atomic file writes: a temporary file in the same directory, fsync, then ``os.replace``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``
    (:func:`atomic_write`)."""
    return atomic_write(path, lambda handle: handle.write(data))


def temporary_path(path: str | os.PathLike) -> Path:
    """``.NAME.xxxxxxxx.tmp`` beside ``path``: the name every temporary file of an output has (a batch deletes the
    ones a killed run left)."""
    path = Path(path)
    return path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(handle)`` on a temporary file in the same directory, fsync it, then ``os.replace`` it to ``path``.

    Readers never see a half-written file; the file gets the usual permissions (0o666 minus the umask). The handle
    is seekable (the encoders fill in lengths after the data).

    Raises:
        FileNotFoundError: the directory does not exist.
        IsADirectoryError: ``path`` is a directory.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: the directory {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    tmp = temporary_path(path)
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "w+b") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
