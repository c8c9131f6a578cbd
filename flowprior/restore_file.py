"""Restore one file: read -> restore -> write the image and a JSON sidecar. What ``flowprior restore`` runs."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

import flowprior
from flowprior.errors import UsageError
from flowprior.io import atomic_write_bytes, output_format, read_image, write_image
from flowprior.restoration import build_recipe, load_model, restore_tensor, with_total_steps


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_mask(path: str | Path, invert: bool = False) -> torch.Tensor:
    """A mask file -> (1, 1, H, W) float with 1 = observed. **Nonzero (white) = observed, 0 (black) = missing.**"""
    image = read_image(path)
    observed = (image.pixels.mean(1, keepdim=True) > 0).float()
    return 1 - observed if invert else observed


def restore_file(source: str | Path, target: str | Path, *, degradation: str | None = None, mask: str | Path | None = None,
                 invert_mask: bool = False, recipe: str | Path | None = None, settings: dict[str, Any] | None = None,
                 operator_params: dict[str, Any] | None = None, steps: int | None = None, seed: int | None = None,
                 init: str | None = None, model: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Restore ``source`` into ``target`` (+ ``target.json``); returns the sidecar dict.

    Refuses to write over its input. Bit depth, alpha, ICC profile and EXIF of the input are carried to the output
    where the output format can hold them.
    """
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise UsageError(f"input not found: {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise UsageError(f"refusing to write over the input {source}; choose another -o")
    fmt = output_format(target)
    overrides = dict(settings or {})
    for key, value in (("degradation", degradation), ("seed", seed), ("init", init), ("model", model)):
        if value is not None:
            overrides[key] = value
    resolved = build_recipe(recipe, overrides, operator_params or {})
    prior = load_model(resolved.model)
    if steps is not None:
        resolved = with_total_steps(resolved, steps, prior.num_levels)
    image = read_image(source)
    mask_tensor = read_mask(mask, invert_mask) if mask is not None else None
    result = restore_tensor(image.pixels, resolved, mask=mask_tensor, prior=prior, progress=progress)
    bit_depth = image.bit_depth if image.bit_depth in fmt.bit_depths else 8
    write_image(target, result.image, bit_depth=bit_depth, alpha=image.alpha if fmt.alpha else None,
                icc_profile=image.icc_profile, exif=image.exif)
    sidecar = {
        "flowprior_version": flowprior.__version__,
        "input": {"path": str(source), "sha256": _sha256(source), "bit_depth": image.bit_depth,
                  "size": list(image.pixels.shape[-2:])},
        "output": {"path": str(target), "sha256": _sha256(target), "bit_depth": bit_depth},
        "mask": None if mask is None else {"path": str(mask), "inverted": invert_mask},
        **result.info,
        "libraries": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
    }
    atomic_write_bytes(target.with_name(target.name + ".json"), json.dumps(sidecar, indent=2).encode())
    return sidecar
