"""The ``flowprior degrade`` job: read an image, corrupt it with a seeded degradation chain, write the results.

Outputs for ``-o OUT`` (e.g. ``out/photo.png``):

* ``OUT``: the degraded image, at the input's bit depth when the format stores it (PNG/TIFF), else 8-bit; the
  input's ICC profile and EXIF (orientation already applied and reset to 1) are carried over, and its alpha too
  when the format has alpha and the size is unchanged.
* ``OUT``'s stem + ``.mask.png`` (``out/photo.mask.png``), only when the chain removes pixels: 8-bit grayscale,
  **255 = observed, 0 = missing**.
* ``OUT`` + ``.json`` (``out/photo.png.json``): the spec, seed, sampled params and file names, so the run can be
  replayed and the solver knows the exact corruption. Params that are image-sized maps (such as the mask) are
  described by shape only; the mask itself is in the mask file.

The same input, spec, params and seed give byte-identical outputs. The image is written last, so its presence
means the job finished.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from flowprior import __version__
from flowprior.errors import UsageError
from flowprior.io import atomic_write_bytes, output_format, read_image, write_image


@dataclass
class DegradeResult:
    """Where the job wrote its files, and notes for the user (e.g. a dropped alpha channel)."""

    image: Path
    sidecar: Path
    mask: Path | None = None
    notes: list[str] = field(default_factory=list)


def mask_path(output: str | os.PathLike) -> Path:
    """``out/photo.png`` → ``out/photo.mask.png``."""
    output = Path(output)
    return output.with_name(output.stem + ".mask.png")


def sidecar_path(output: str | os.PathLike) -> Path:
    """``out/photo.png`` → ``out/photo.png.json``."""
    output = Path(output)
    return output.with_name(output.name + ".json")


def degrade_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    degradation: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> DegradeResult:
    """Degrade one image file.

    Args:
        input_path: the clean image.
        output_path: the degraded image to write (.png, .tif/.tiff, .jpg/.jpeg or .webp; use PNG or TIFF to keep the
            degraded pixels exactly, a lossy format would compress them once more).
        degradation: a spec such as ``"jpeg+noise+mask"`` (see :func:`degradations.parse`).
        params: dotted operator arguments, e.g. ``{"jpeg.quality": 30}``.
        seed: seeds the ``torch.Generator`` that samples the params.

    Returns:
        A :class:`DegradeResult`.

    Raises:
        UsageError: an output would overwrite the input.
        ValueError: bad spec or params, unsupported output suffix (also ImageReadError for the input).
    """
    from degradations import parse

    source, output = Path(input_path), Path(output_path)
    mask_file, sidecar = mask_path(output), sidecar_path(output)
    for target in (output, mask_file, sidecar):
        if _same_file(source, target):
            raise UsageError(f"refusing to overwrite the input {source} with {target}")
    fmt = output_format(output)  # fail on a bad suffix before any work
    operator = parse(degradation, dict(params or {}))
    image = read_image(source)

    generator = torch.Generator().manual_seed(seed)
    x = image.pixels
    sampled = operator.sample_params(tuple(x.shape), generator)
    y = operator.apply(x, sampled)
    observed = operator.observed_mask(sampled)

    result = DegradeResult(image=output, sidecar=sidecar)
    bit_depth = image.bit_depth if image.bit_depth in fmt.bit_depths else 8
    if bit_depth != image.bit_depth:
        result.notes.append(
            f"{fmt.name} stores 8-bit samples only; the {image.bit_depth}-bit input was reduced"
        )
    alpha = image.alpha
    if alpha is not None and not fmt.alpha:
        result.notes.append(f"{fmt.name} has no alpha channel; the input's alpha was dropped")
        alpha = None
    elif alpha is not None and alpha.shape[-2:] != y.shape[-2:]:
        result.notes.append("the degradation changed the image size; the input's alpha was dropped")
        alpha = None

    if observed is not None:
        result.mask = write_image(mask_file, observed[:, :1].to(torch.float32))
    record = {
        "flowprior_version": __version__,
        "command": "degrade",
        "input": str(source),
        "output": output.name,
        "mask": result.mask.name if result.mask else None,
        "degradation": operator.spec(),
        "seed": seed,
        "params": _params_to_json(sampled, x.shape[-2:]),
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "bit_depth": bit_depth,
    }
    atomic_write_bytes(sidecar, (json.dumps(record, indent=2) + "\n").encode())
    write_image(output, y, bit_depth=bit_depth, alpha=alpha, icc_profile=image.icc_profile, exif=image.exif)
    return result


def _params_to_json(params: dict[str, Tensor], image_size: torch.Size) -> dict[str, Any]:
    """Tensors → nested lists; image-sized maps (trailing dims = H, W) → a description only."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if value.dim() >= 3 and tuple(value.shape[-2:]) == tuple(image_size):
            out[key] = {
                "shape": list(value.shape),
                "dtype": str(value.dtype).removeprefix("torch."),
                "inline": False,
            }
        else:
            out[key] = value.detach().cpu().tolist()
    return out


def _same_file(a: Path, b: Path) -> bool:
    try:
        return b.exists() and os.path.samefile(a, b)
    except OSError:
        return False
