"""A JPEG input tells its own compression: its quality (from its tables) and its chroma subsampling.

``flowprior restore photo.jpg --degradation jpeg`` needs no ``--set jpeg.quality``: the tables in the file are read
(:func:`flowprior.estimate.jpeg.inspect_jpeg_file`), matched to the nearest IJG quality (exact for files libjpeg
made) and put into the recipe with the file's subsampling, so the conditioned warm start, the quantization
constraint and the MAP's JPEG data term all see the compression the file really went through. A quality the
user (or a replayed sidecar) declared is kept; a disagreement is reported.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from degradations import parse
from flowprior.conditioning import members
from flowprior.estimate.jpeg import inspect_jpeg_file


def last_jpeg_key(spec: str) -> str | None:
    """The params prefix of the last JPEG member of ``spec`` (the compression whose file this is), or None."""
    try:
        found = list(members(parse(spec)))
    except ValueError:
        return None
    prefix, last = found[-1]
    return (prefix.rstrip(".") or last.name) if last.name == "jpeg" else None


def with_file_jpeg(recipe, source: str | Path):
    """``(recipe, note)``: the recipe with the file's JPEG quality and subsampling filled in when the input is a
    JPEG and the degradation ends in one; otherwise the recipe unchanged and None."""
    key = last_jpeg_key(recipe.degradation)
    if key is None:
        return recipe, None
    try:
        info = inspect_jpeg_file(source)
    except OSError:
        return recipe, None
    if info is None:
        return recipe, None
    found = f"quality {info.match.quality}" + ("" if info.match.exact else f" (nearest IJG, distance "
                                                                          f"{info.match.distance:.3f})")
    declared = recipe.params.get(f"{key}.quality", "in the spec" if "quality=" in recipe.degradation else None)
    if declared is not None:
        if str(declared) != str(info.match.quality):
            return recipe, f"the JPEG file's tables say {found}; the declared {key}.quality={declared} was used"
        return recipe, None
    params = {**recipe.params, f"{key}.quality": info.match.quality}
    if info.subsampling in ("420", "444") and f"{key}.subsampling" not in recipe.params:
        params[f"{key}.subsampling"] = info.subsampling
    return dataclasses.replace(recipe, params=params), f"JPEG read from the file: {found}, {info.subsampling}"
