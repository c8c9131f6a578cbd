"""Where a restore may write: never onto an input, never over an existing file unless asked.

Every path a restore writes (the image, its ``OUT.json`` sidecar, the ``--compare`` image, the batch manifest) is
resolved (symlinks followed, as the write would) and compared with the inputs of the run: the image, its mask and
a ``--params-from`` sidecar, and for a folder the whole input tree. An input is never written, ``--overwrite`` or
not. An existing file is replaced only with ``--overwrite`` (single files) or when the batch plan says it is this
tool's own unfinished output. Temporary files are created next to their final path with exclusive-create names, so
they can only land in a folder that has been checked this way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from flowprior.errors import UsageError


def resolved(path: str | os.PathLike) -> Path | None:
    """``path`` with every symlink followed; None when that is impossible (a symlink loop, an unreadable folder)."""
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError for a symlink loop
        return None


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` is ``root`` or below it (both resolved)."""
    return path == root or root in path.parents


def input_conflict(target: str | os.PathLike, inputs: Iterable[str | os.PathLike],
                   input_tree: str | os.PathLike | None = None) -> str | None:
    """Why writing ``target`` would touch an input, or None: it resolves onto one of ``inputs`` or into
    ``input_tree``, or cannot be resolved at all."""
    real = resolved(target)
    if real is None:
        return f"cannot resolve {target} (a symlink loop?)"
    for source in inputs:
        if source is not None and resolved(source) == real:
            return f"{target} is the input {source}"
    tree = None if input_tree is None else resolved(input_tree)
    if tree is not None and inside(real, tree):
        return f"{target} would be inside the input tree {input_tree}"
    return None


def check_writable(targets: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike | None],
                   overwrite: bool = False) -> None:
    """Refuse (UsageError, before anything is written) a target that is an input, or that exists without
    ``overwrite``."""
    inputs = [i for i in inputs if i is not None]
    for target in targets:
        conflict = input_conflict(target, inputs)
        if conflict:
            raise UsageError(f"refusing to write over the input: {conflict}; choose another -o")
        if not overwrite and os.path.lexists(target):
            raise UsageError(f"refusing to replace the existing {target}; pass --overwrite to replace it")
