"""Embedded default models, loaded as package data (no download, works offline from any directory).

Each entry records the file's sha256; a file that does not match is refused. See MODEL_CARD.md beside this file.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flowprior.errors import UsageError

#: name -> (file inside this package, sha256)
EMBEDDED = {
    "default": ("default-prior.pt", None),
}


def embedded_path(name: str = "default") -> tuple[Path, str | None]:
    """Path and recorded sha256 of an embedded model."""
    if name not in EMBEDDED:
        raise UsageError(f"unknown embedded model {name!r} (available: {', '.join(sorted(EMBEDDED))})")
    filename, sha256 = EMBEDDED[name]
    path = Path(str(resources.files(__package__) / filename))
    if not path.is_file():
        raise UsageError(f"the embedded model {name!r} is not installed ({path} is missing); train one with "
                         "`flowprior train prior --recipe recipes/train/cpu-default.yaml` and pass --model")
    return path, sha256
