"""Restore one file: read -> restore -> write the image and a provenance sidecar. What ``flowprior restore`` runs.

Fidelity to the master (what an archive expects of a derivative):

* **Bit depth**: 16-bit in gives 16-bit out when the output format holds it (PNG, TIFF); else 8-bit.
* **Grayscale** stays one channel; **alpha** passes through unchanged (dropped, with a warning, for JPEG output).
* **ICC profile and EXIF** are carried over. EXIF ``ProcessingSoftware`` (0x000B) is set to ``flowprior <version>``;
  ``Software`` (0x0131) is kept because EXIF defines it as the capture device's software (the scanner's).
* **Colour** (``chroma``, :mod:`flowprior.tone`): ``"keep"`` restores the luminance only and keeps the input's
  chroma; ``"restore"`` restores R, G and B; ``"auto"`` (default) keeps chroma when the image is a toned or
  monochrome print (sepia, selenium, cyanotype, a gray scan saved as RGB) and restores colour photos fully - see
  :func:`~flowprior.tone.chroma_residual`.
  Luminance restoration: convert to YCbCr (BT.601 full range, the JPEG/JFIF transform, in the file's own encoded
  RGB), restore Y as a one-channel image, then rebuild RGB from the restored Y and the input's Cb, Cr. Restoring
  Y *as an image* (rather than restoring RGB and re-imposing chroma afterwards) keeps the JPEG data term exact,
  because JPEG quantizes luma on its own, and it cannot shift the tone. Missing (masked) pixels take their chroma
  from the image's toning curve (mean Cb, Cr per luminance bin) at the restored Y. A noise level given for RGB is
  used as is for Y (an overestimate of 1/0.67 for independent RGB noise; scanner grain is mostly luminance).
* **Strength** ``s`` in [0, 1] blends ``s * restored + (1 - s) * input`` on observed pixels (the archival "do less"
  control); missing pixels always take the restoration.

The sidecar (``OUT.json``, written last, so its presence means the file is complete) records the provenance listed
in docs/batch.md; :func:`replay_options` turns one back into the arguments that replay the run bit for bit.
"""

from __future__ import annotations

import json
import platform
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

import flowprior
from flowprior.errors import UsageError
from flowprior.hashing import bytes_sha256, file_sha256
from flowprior.io import (
    PROCESSING_SOFTWARE_TAG,
    atomic_write_bytes,
    output_format,
    read_image,
    set_exif_text,
    write_image,
)
from flowprior.recipe import from_dict
from flowprior.restoration import RestoreRecipe, build_recipe, load_model, restore_tensor, with_total_steps
from flowprior.review import blend_toward_input, side_by_side
from flowprior.tone import CHROMA_MODES, TONED_THRESHOLD, chroma_residual, recombine_chroma, rgb_to_ycbcr

_EXIF_MAX = 65000  # a JPEG APP1 segment holds at most 65533 bytes


def sidecar_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.png.json``."""
    target = Path(target)
    return target.with_name(target.name + ".json")


def compare_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.compare.png`` (the side-by-side review image)."""
    target = Path(target)
    return target.with_name(target.stem + ".compare.png")


def read_mask(path: str | Path, invert: bool = False) -> torch.Tensor:
    """A mask file -> (1, 1, H, W) float with 1 = observed. **Nonzero (white) = observed, 0 (black) = missing.**"""
    image = read_image(path)
    observed = (image.pixels.mean(1, keepdim=True) > 0).float()
    return 1 - observed if invert else observed


# ----------------------------------------------------------------------------------------------- restore


def restore_file(
    source: str | Path,
    target: str | Path,
    *,
    degradation: str | None = None,
    mask: str | Path | None = None,
    invert_mask: bool = False,
    recipe: RestoreRecipe | str | Path | None = None,
    settings: dict[str, Any] | None = None,
    operator_params: dict[str, Any] | None = None,
    steps: int | None = None,
    seed: int | None = None,
    init: str | None = None,
    model: str | None = None,
    progress: bool = True,
    prior=None,
    chroma: str | None = None,
    strength: float | None = None,
    quality: int | None = None,
    compare: bool = False,
    memory_planner: Callable | None = None,
    params_from: str | Path | None = None,
) -> dict[str, Any]:
    """Restore ``source`` into ``target`` (+ ``target.json``, + the review image when ``compare``).

    Args:
        source, target: image paths; the target's suffix picks the format (lossy only when it says so).
        degradation, recipe, settings, operator_params, steps, seed, init, model: what to solve
            (see ``flowprior restore --help``); ``recipe`` may be a resolved :class:`RestoreRecipe`.
        mask, invert_mask: mask file of missing pixels (nonzero = observed).
        progress: tqdm bar over the tile-steps.
        prior: an already loaded prior (batches load it once); it must be ``recipe.model``.
        chroma: ``"auto"`` (default), ``"keep"`` or ``"restore"`` (module docstring).
        strength: blend toward the input, 0..1 (default 1: the restoration as is).
        quality: JPEG/WebP quality (lossy output only).
        compare: also write ``compare_path(target)``: input | restored, 8-bit PNG.
        memory_planner: ``planner(height, width, recipe, prior) -> dict`` with ``max_tiles`` (the number of tiles
            solved at once), recorded as the sidecar's ``memory``; :func:`flowprior.batch.memory_planner` makes one
            from a ``--max-memory`` budget. It may raise UsageError when the budget cannot be met.
        params_from: a sidecar of an earlier run to replay bit for bit (excludes the solve options above).

    Returns:
        The sidecar dict (also written to ``sidecar_path(target)``).

    Raises:
        UsageError: bad options, writing over the input, a memory bound that cannot be met.
        ImageReadError: an unreadable input or mask.
    """
    started_at, clock = _now(), time.perf_counter()
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise UsageError(f"input not found: {source}")
    if target.exists() and target.resolve() == source.resolve():
        raise UsageError(f"refusing to write over the input {source}; choose another -o")
    fmt = output_format(target)
    if quality is not None and not fmt.lossy:
        raise UsageError(f"--quality applies to lossy outputs (.jpg, .webp), not {target.suffix}")
    replay = None
    if params_from is not None:
        given = [
            name
            for name, value in (
                ("degradation", degradation),
                ("mask", mask),
                ("recipe", recipe),
                ("settings", settings),
                ("operator_params", operator_params),
                ("steps", steps),
                ("seed", seed),
                ("init", init),
                ("model", model),
                ("chroma", chroma),
                ("strength", strength),
                ("max_memory", memory_planner),
            )
            if value
        ]
        if given:
            raise UsageError(f"--params-from replays a recorded run; it cannot be combined with {', '.join(given)}")
        replay = replay_options(params_from)
        resolved, mask, invert_mask = replay["recipe"], replay["mask"], replay["invert_mask"]
        chroma, strength, quality = replay["chroma"], replay["strength"], quality or replay["quality"]
    else:
        overrides = dict(settings or {})
        for key, value in (("degradation", degradation), ("seed", seed), ("init", init), ("model", model)):
            if value is not None:
                overrides[key] = value
        resolved = build_recipe(recipe, overrides, operator_params or {})
    chroma, strength = chroma or "auto", 1.0 if strength is None else float(strength)
    if chroma not in CHROMA_MODES:
        raise UsageError(f"--chroma must be one of {', '.join(CHROMA_MODES)}, not {chroma!r}")
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be in [0, 1], got {strength}")
    prior = prior if prior is not None else load_model(resolved.model)
    if replay and replay["model_sha256"] and getattr(prior, "sha256", None) != replay["model_sha256"]:
        raise UsageError(
            f"{params_from} was made with model sha256 {replay['model_sha256'][:16]}…, "
            f"but {resolved.model} has {str(getattr(prior, 'sha256', None))[:16]}…"
        )
    if steps is not None:
        resolved = with_total_steps(resolved, steps, prior.num_levels)

    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(source)
        input_sha256 = file_sha256(source)
        mask_tensor = read_mask(mask, invert_mask) if mask is not None else None
        memory = None
        if memory_planner is not None:
            memory = memory_planner(*image.pixels.shape[-2:], resolved, prior)
            resolved.tiling.max_tiles = memory["max_tiles"]
        colour = {"requested": chroma}
        pixels = image.pixels
        if pixels.shape[1] == 1:
            colour["mode"] = "gray"
        elif chroma == "auto":
            colour["chroma_residual"] = round(chroma_residual(pixels, mask_tensor), 6)
            colour["threshold"] = TONED_THRESHOLD
            colour["mode"] = "keep" if colour["chroma_residual"] < TONED_THRESHOLD else "restore"
        else:
            colour["mode"] = chroma
        solve_input = rgb_to_ycbcr(pixels)[:, :1].float() if colour["mode"] == "keep" else pixels
        threads = replay["threads"] if replay and replay["threads"] else torch.get_num_threads()
        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)  # float reductions depend on the thread count; replays use the recorded one
        try:
            result = restore_tensor(solve_input, resolved, mask=mask_tensor, prior=prior, progress=progress)
        finally:
            torch.set_num_threads(previous_threads)
        restored = result.image
        if colour["mode"] == "keep":
            restored = recombine_chroma(restored, pixels, mask_tensor)
        restored = blend_toward_input(restored, pixels, strength, mask_tensor)

        write_started = time.perf_counter()
        bit_depth = image.bit_depth if image.bit_depth in fmt.bit_depths else 8
        if bit_depth != image.bit_depth:
            notes.append(f"{fmt.name} stores 8 bits: the {image.bit_depth}-bit input was written at 8 bits")
        alpha = image.alpha if fmt.alpha else None
        if image.alpha is not None and alpha is None:
            notes.append(f"{fmt.name} has no alpha channel: the input's alpha was dropped")
        exif = image.exif
        if exif:
            exif = set_exif_text(exif, PROCESSING_SOFTWARE_TAG, f"flowprior {flowprior.__version__}")
            if fmt.name == "JPEG" and len(exif) > _EXIF_MAX:
                exif = image.exif
                notes.append("EXIF too large to add ProcessingSoftware inside a JPEG segment; carried unchanged")
        write_image(
            target,
            restored,
            bit_depth=bit_depth,
            alpha=alpha,
            icc_profile=image.icc_profile,
            exif=exif,
            quality=quality,
        )
        review = None
        if compare:
            review = compare_path(target)
            write_image(review, side_by_side(pixels, restored))
        write_seconds = time.perf_counter() - write_started
    notes += [f"{w.category.__name__}: {w.message}" for w in caught]

    timings = dict(result.info.pop("timings_s"))
    timings.update(write=round(write_seconds, 3), wall=round(time.perf_counter() - clock, 3))
    sidecar = {
        "flowprior_version": flowprior.__version__,
        "event": {
            "type": "restoration",
            "started": started_at,
            "finished": _now(),
            "outcome": "success",
            "replay_of": None if params_from is None else str(params_from),
        },
        "input": {
            "path": str(source),
            "sha256": input_sha256,
            "format": image.format,
            "mode": image.mode,
            "bit_depth": image.bit_depth,
            "size": list(pixels.shape[-2:]),
            "alpha": image.alpha is not None,
            "icc_sha256": bytes_sha256(image.icc_profile),
            "exif": image.exif is not None,
        },
        "output": {
            "path": str(target),
            "sha256": file_sha256(target),
            "format": fmt.name,
            "bit_depth": bit_depth,
            "alpha": alpha is not None,
            "quality": quality,
            "compare": None if review is None else {"path": str(review), "sha256": file_sha256(review)},
        },
        "mask": None if mask is None else {"path": str(mask), "sha256": file_sha256(mask), "inverted": invert_mask},
        "colour": colour,
        "strength": strength,
        **result.info,  # recipe (seed, tiling), degradation spec, sampled params, tiles, energies, model
        "memory": memory,
        "timings_s": timings,
        "runtime": {
            "threads": threads,
            "device": "cpu",
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "libraries": _library_versions(),
        "warnings": notes,
    }
    atomic_write_bytes(sidecar_path(target), json.dumps(sidecar, indent=2).encode())
    return sidecar


def replay_options(sidecar: str | Path) -> dict[str, Any]:
    """Read a sidecar into the settings that replay its run: the resolved recipe (seed, schedule, tiling with
    ``max_tiles``), the mask, the colour mode actually used, strength, quality, thread count and model sha256.

    Raises:
        UsageError: not a readable flowprior sidecar, or its mask file changed since.
    """
    path = Path(sidecar)
    try:
        data = json.loads(path.read_text())
        recipe = from_dict(RestoreRecipe, data["recipe"])
        colour, output = data["colour"], data["output"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise UsageError(f"cannot replay {path}: not a readable flowprior sidecar ({error})") from None
    mask = data.get("mask")
    if mask and Path(mask["path"]).is_file() and file_sha256(mask["path"]) != mask["sha256"]:
        raise UsageError(f"cannot replay {path}: the mask {mask['path']} changed since the run")
    mode = colour.get("mode")
    return {
        "recipe": recipe,
        "mask": mask["path"] if mask else None,
        "invert_mask": bool(mask and mask.get("inverted")),
        "chroma": mode if mode in ("keep", "restore") else "auto",
        "strength": float(data.get("strength", 1.0)),
        "quality": output.get("quality"),
        "compare": bool(output.get("compare")),
        "threads": data.get("runtime", {}).get("threads"),
        "model_sha256": (data.get("model") or {}).get("sha256"),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _library_versions() -> dict[str, str]:
    import PIL

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
    }
    try:
        import cv2  # lazily: only for the version string

        versions["opencv"] = cv2.__version__
    except ImportError:
        pass
    return versions
