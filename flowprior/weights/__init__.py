"""Embedded default models, loaded as package data (no download, works offline from any directory).

Each entry records the file's sha256; a file that does not match is refused. See MODEL_CARD.md beside this file.
"""

from __future__ import annotations

from pathlib import Path

from flowprior.errors import UsageError

#: where the embedded files live (package data)
WEIGHTS_DIR = Path(__file__).resolve().parent

#: name -> (file inside this package, sha256)
EMBEDDED = {
    "default": ("default-prior.pt", "a202bdb729938f05ad33fbf0861948e773c27c9ca2aaf7b4dc0a26ed8c35707e"),
}


def embedded_path(name: str = "default") -> tuple[Path, str | None]:
    """Path and recorded sha256 of an embedded model."""
    if name not in EMBEDDED:
        raise UsageError(f"unknown embedded model {name!r} (available: {', '.join(sorted(EMBEDDED))})")
    filename, sha256 = EMBEDDED[name]
    path = WEIGHTS_DIR / filename
    if not path.is_file():
        raise UsageError(f"the embedded model {name!r} is not installed ({path} is missing); train one with "
                         "`flowprior train prior --recipe recipes/train/cpu-default.yaml` and pass --model")
    return path, sha256
