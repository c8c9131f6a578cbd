"""Embedded default models, loaded as package data (no download, works offline from any directory).

Each entry records the file's sha256; a file that does not match is refused. Every file has a model card beside
it: MODEL_CARD.md for the default prior, ``<file stem>.md`` for the others.
"""

from __future__ import annotations

from pathlib import Path

from flowprior.errors import UsageError

#: where the embedded files live (package data)
WEIGHTS_DIR = Path(__file__).resolve().parent

#: name -> (file inside this package, sha256). Priors are named as ``--model`` takes them ("default"); learned
#: warm starts as ``warmstart-<method>`` (what ``--init <method>`` loads when no checkpoint is given).
EMBEDDED = {
    "default": ("default-prior.pt", "a202bdb729938f05ad33fbf0861948e773c27c9ca2aaf7b4dc0a26ed8c35707e"),
    "warmstart-irflow": ("warmstart-irflow.pt", "bb68e42d6b7ae88261223e85b493e946bb6664fa07dbdd738dfeb72ff2c6fa65"),
    "warmstart-resflow": ("warmstart-resflow.pt", "9cc0e3060f883c23807864ca67facae07b58506dd995025f514f98a7852aef90"),
    "warmstart-flowie": ("warmstart-flowie.pt", "a634a791b198751873af8045da2d486dfbc6196abe73c21f69f6b3cf64032a0c"),
    "defects": ("defects.pt", "ba325ac3cc49dc61299c729f386231ae9a42e881ef50b01374ab3d0185fcfb9e"),
    "warmstart-irflow-noise": ("warmstart-irflow-noise.pt", "eb525c9581748ad4ab6a77bc9f7d01f6b1c05918f79ad1944ab20484270d5865"),
    "warmstart-irflow-jpeg": ("warmstart-irflow-jpeg.pt", "39024292e323dcb027a200edfd0269eb33ac0302981188905659e17dce022c44"),
}

#: how to make each kind of embedded file yourself (quoted when one is missing)
_TRAIN_HINTS = {
    "default": "flowprior train prior --recipe recipes/train/cpu-default.yaml` and pass --model",
}


def warmstart_name(method: str) -> str:
    return f"warmstart-{method}"


def embedded_path(name: str = "default") -> tuple[Path, str | None]:
    """Path and recorded sha256 of an embedded model."""
    if name not in EMBEDDED:
        raise UsageError(f"unknown embedded model {name!r} (available: {', '.join(sorted(EMBEDDED))})")
    filename, sha256 = EMBEDDED[name]
    path = WEIGHTS_DIR / filename
    if not path.is_file():
        hint = _TRAIN_HINTS.get(name, "flowprior train warmstart --method "
                                      f"{name.removeprefix('warmstart-')}` and pass --set init_checkpoint=PATH")
        raise UsageError(f"the embedded model {name!r} is not installed ({path} is missing); train one with `{hint}")
    return path, sha256
