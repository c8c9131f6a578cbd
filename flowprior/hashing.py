"""sha256 of files and byte strings (model checkpoints, restore inputs and outputs, masks, ICC profiles)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bytes_sha256(data: bytes | None) -> str | None:
    """sha256 of ``data``; None when there is none (None or empty)."""
    return None if not data else hashlib.sha256(data).hexdigest()
