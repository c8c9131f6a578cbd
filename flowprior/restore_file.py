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
* **Large scans** stream: the file is kept as its 8/16-bit samples, the solver reads float rows a band of tile rows
  at a time (:func:`~flowprior.restoration.restore_rows`), and the restored rows go through colour, strength and
  quantization straight into the output array (in a file when the memory plan says so), from which the PNG/TIFF
  and the review image are encoded a block of rows at a time. The bytes are those of a whole-image restore.

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
from flowprior.auto_degradation import AUTO, find_degradation, with_user_values, write_mask
from flowprior.errors import UsageError
from flowprior.hashing import bytes_sha256, file_sha256
from flowprior.io import (
    PROCESSING_SOFTWARE_TAG,
    RowStore,
    atomic_write_bytes,
    output_format,
    read_header,
    read_image,
    set_exif_text,
    temporary_path,
    to_hwc,
    write_array,
)
from flowprior.jpeg_file import with_file_jpeg
from flowprior.output_guard import check_writable
from flowprior.recipe import from_dict
from flowprior.restoration import (
    ImageRows,
    RestoreRecipe,
    build_recipe,
    load_model,
    restore_rows,
    streams,
    with_total_steps,
)
from flowprior.review import blend_toward_input, side_by_side
from flowprior.tone import CHROMA_MODES, TONED_THRESHOLD, recombine_chroma, rgb_to_ycbcr, toning_fit

_EXIF_MAX = 65000  # a JPEG APP1 segment holds at most 65533 bytes


def sidecar_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.png.json``."""
    target = Path(target)
    return target.with_name(target.name + ".json")


def compare_path(target: str | Path) -> Path:
    """``out/a.png`` -> ``out/a.compare.png`` (the side-by-side review image)."""
    target = Path(target)
    return target.with_name(target.stem + ".compare.png")


def detected_mask_path(target: str | Path) -> Path:
    """Where ``--degradation auto`` writes the mask it detected (and the sidecar's replay reads it): STEM.mask.png."""
    target = Path(target)
    return target.with_name(f"{target.stem}.mask.png")


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
    overwrite: bool = False,
    accept_truncated: bool = False,
    threads: int | None = None,
    keep_tiling: bool = False,
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
        memory_planner: ``planner(height, width, recipe, prior, buffers) -> dict`` with ``max_tiles`` (the number of
            tiles solved at once) and ``output`` (``"disk"``: keep the output samples in a file), recorded as the
            sidecar's ``memory``; ``buffers`` is the file's :class:`flowprior.batch.memory.ImageBuffers`.
            :func:`flowprior.batch.memory_planner` makes one from a ``--max-memory`` budget. It may raise UsageError
            when the budget cannot be met. A default planner (``planner.default``, no ``--max-memory``) may be
            combined with ``params_from``: it then only checks the recorded ``max_tiles`` (``fixed=True``).
            The plan is made from the file's header, before it is decoded.
        params_from: a sidecar of an earlier run to replay bit for bit (excludes the solve options above).
        overwrite: replace an existing image, sidecar or review image (inputs are never written,
            :mod:`flowprior.output_guard`).
        accept_truncated: restore a file whose data ends early (missing rows come back black; a warning says so).
        threads: torch threads for this file (default: torch's current count; a replay: the recorded one). Float
            reductions depend on it, so it is recorded in the sidecar (``runtime.threads``).
        keep_tiling: ``recipe.tiling.max_tiles`` was already planned (by a batch driver, for its Ray workers): the
            planner only checks that it fits, as for a replay.

    Returns:
        The sidecar dict (also written to ``sidecar_path(target)``).

    Raises:
        UsageError: bad options, writing over an input or (without ``overwrite``) an existing file, a memory bound
            that cannot be met, a mask of another size.
        ImageReadError: an unreadable input or mask.
    """
    started_at, clock = _now(), time.perf_counter()
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise UsageError(f"input not found: {source}")
    fmt = output_format(target)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    if quality is not None and not fmt.lossy:
        raise UsageError(f"--quality applies to lossy outputs (.jpg, .webp), not {target.suffix}")
    resolved, replay = resolve_recipe(
        params_from, degradation=degradation, mask=mask, recipe=recipe, settings=settings,
        operator_params=operator_params, steps=steps, seed=seed, init=init, model=model, chroma=chroma,
        strength=strength, max_memory=memory_planner, threads=threads,
    )
    found = None
    if resolved.degradation == AUTO:  # estimate what happened (a user's --set value or --mask wins)
        found = with_user_values(find_degradation(read_image(source, accept_truncated=accept_truncated).pixels,
                                                  source), resolved.params, mask_given=mask is not None)
        resolved.degradation, resolved.params = found.spec, found.params
    detected_mask = None if found is None or found.mask is None else detected_mask_path(target)
    written = [target, sidecar_path(target)] + ([compare_path(target)] if compare else [])
    check_writable(written + [detected_mask] * bool(detected_mask),
                   [source, mask, params_from, replay and replay["mask"]], overwrite)
    if detected_mask:
        mask = write_mask(found.mask, detected_mask)
    if replay:
        mask, invert_mask = replay["mask"], replay["invert_mask"]
        chroma, strength = replay["chroma"], replay["strength"]
        quality = quality if quality is not None else replay["quality"]
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
    resolved, jpeg_note = with_file_jpeg(resolved, source)  # a JPEG input's own quality and subsampling
    stores: list[RowStore] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fixed = bool(replay) or keep_tiling
            memory = plan_from_header(source, target, resolved, prior, memory_planner, compare, mask, fixed)
            image = read_image(source, lazy=True, accept_truncated=accept_truncated)  # samples; rows made per band
            input_sha256 = file_sha256(source)
            height, width = image.size
            if memory_planner is not None and memory is None:  # no readable header: plan from the decoded image
                memory = _plan(memory_planner, (height, width, image.channels, image.has_alpha, image.bit_depth),
                               target, resolved, prior, compare, mask, fixed)
            if memory is not None:
                resolved.tiling.max_tiles = memory["max_tiles"]
            mask_tensor = read_mask(mask, invert_mask) if mask is not None else None
            if mask_tensor is not None and tuple(mask_tensor.shape[-2:]) != (height, width):
                raise UsageError(f"the mask {mask} is {mask_tensor.shape[-1]}x{mask_tensor.shape[-2]} pixels but "
                                 f"the image {source} is {width}x{height}")
            if replay and replay["input_sha256"] and replay["input_sha256"] != input_sha256:
                notes.append(f"replay: {source} (sha256 {input_sha256[:16]}…) is not the input the sidecar "
                             f"{params_from} recorded (sha256 {replay['input_sha256'][:16]}…)")
            bit_depth = image.bit_depth if image.bit_depth in fmt.bit_depths else 8
            keep_alpha = image.has_alpha and fmt.alpha
            colour, fit = {"requested": chroma}, None
            if image.channels == 1:
                colour["mode"] = "gray"
            elif chroma == "auto":
                fit = toning_fit(image.rows, mask_tensor, (height, width))
                colour["chroma_residual"] = round(fit.residual(), 6)
                colour["threshold"] = TONED_THRESHOLD
                colour["mode"] = "keep" if colour["chroma_residual"] < TONED_THRESHOLD else "restore"
            else:
                colour["mode"] = chroma
            keep = colour["mode"] == "keep"
            if keep and mask_tensor is not None and fit is None:  # holes take chroma from the whole image's curve
                fit = toning_fit(image.rows, mask_tensor, (height, width))

            def solve_rows(b: int, y0: int, y1: int) -> torch.Tensor:
                rows = image.rows(y0, y1)
                return rgb_to_ycbcr(rows)[:, :1].float() if keep else rows

            # The output samples, filled band by band (in a file when the memory plan says so), and for --compare of
            # a 16-bit output its 8-bit restoration.
            on_disk = memory is not None and memory["output"] == "disk"
            store = RowStore((height, width, image.channels + keep_alpha), np.uint16 if bit_depth == 16 else np.uint8,
                             temporary_path(target) if on_disk else None)
            stores.append(store)
            review_rows = store if compare and bit_depth == 8 else None
            if compare and bit_depth != 8:
                review_rows = RowStore((height, width, image.channels), np.uint8,
                                       temporary_path(compare_path(target)) if on_disk else None)
                stores.append(review_rows)

            def emit(b: int, y0: int, y1: int, rows: torch.Tensor) -> None:
                observed = image.rows(y0, y1)
                part = None if mask_tensor is None else mask_tensor[..., y0:y1, :]
                if keep:
                    rows = recombine_chroma(rows, observed, part, fit)
                rows = blend_toward_input(rows, observed, strength, part)
                store[y0:y1] = to_hwc(rows, image.alpha_rows(y0, y1) if keep_alpha else None, bit_depth)
                if review_rows is not None and review_rows is not store:
                    review_rows[y0:y1] = to_hwc(rows, None, 8)

            if replay and replay["threads"]:
                threads = replay["threads"]
            threads = torch.get_num_threads() if threads is None else threads
            previous_threads = torch.get_num_threads()
            torch.set_num_threads(threads)  # float reductions depend on the thread count; replays use the recorded one
            try:
                info = restore_rows(ImageRows(1, 1 if keep else image.channels, height, width, solve_rows), resolved,
                                    mask=mask_tensor, prior=prior, progress=progress, emit=emit)
            finally:
                torch.set_num_threads(previous_threads)

            write_started = time.perf_counter()
            if bit_depth != image.bit_depth:
                notes.append(f"{fmt.name} stores 8 bits: the {image.bit_depth}-bit input was written at 8 bits")
            if image.has_alpha and not keep_alpha:
                notes.append(f"{fmt.name} has no alpha channel: the input's alpha was dropped")
            exif = image.exif
            if exif:
                exif = set_exif_text(exif, PROCESSING_SOFTWARE_TAG, f"flowprior {flowprior.__version__}")
                if fmt.name == "JPEG" and len(exif) > _EXIF_MAX:
                    exif = image.exif
                    notes.append("EXIF too large to add ProcessingSoftware inside a JPEG segment; carried unchanged")
            if image.truncated:
                notes.append(f"{source} is truncated: its missing rows were restored from black "
                             "(--accept-truncated)")
            mark_pending(target)
            write_array(target, store, icc_profile=image.icc_profile, exif=exif, quality=quality, dpi=image.dpi)
            review = None
            if compare:
                review = compare_path(target)
                write_array(review, side_by_side(image.rows, review_rows))
            write_seconds = time.perf_counter() - write_started
    finally:
        for opened in stores:
            opened.close()
    notes += [f"{w.category.__name__}: {w.message}" for w in caught]

    timings = dict(info.pop("timings_s"))
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
            "size": [height, width],
            "alpha": image.has_alpha,
            "icc_sha256": bytes_sha256(image.icc_profile),
            "exif": image.exif is not None,
        },
        "output": {
            "path": str(target),
            "sha256": file_sha256(target),
            "format": fmt.name,
            "bit_depth": bit_depth,
            "alpha": keep_alpha,
            "quality": quality,
            "compare": None if review is None else {"path": str(review), "sha256": file_sha256(review)},
        },
        "mask": None if mask is None else {"path": str(mask), "sha256": file_sha256(mask), "inverted": invert_mask},
        "colour": colour,
        "strength": strength,
        **info,  # recipe (seed, tiling), degradation spec, sampled params, tiles, energies, model
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
        "jpeg_from_file": jpeg_note,  # what the input's own JPEG tables said, when it is a JPEG
        "estimated": None if found is None else found.report,  # --degradation auto: every estimate + confidence
    }
    atomic_write_bytes(sidecar_path(target), json.dumps(sidecar, indent=2).encode())
    pending_path(target).unlink(missing_ok=True)  # the image and its sidecar are complete
    return sidecar


def pending_path(target: str | Path) -> Path:
    """``out/.a.png.flowprior-pending``: exists from just before ``out/a.png`` is written until its sidecar is. An
    image without a sidecar is this tool's unfinished output (a batch redoes it) only when this marker is there."""
    target = Path(target)
    return target.with_name(f".{target.name}.flowprior-pending")


def mark_pending(target: Path) -> None:
    with open(pending_path(target), "wb") as handle:
        handle.write(b"flowprior: writing this image; its sidecar is written last\n")


def plan_from_header(source: Path, target: Path, recipe, prior, planner, compare: bool = False, mask=None,
                     replay: bool = False) -> dict[str, Any] | None:
    """The memory plan from the file's header, before anything is decoded (a decompression bomb is refused here, at
    once, with its estimate); None without a planner or a readable header. ``replay``: keep the recipe's
    ``max_tiles`` and only check it."""
    if planner is None:
        return None
    header = read_header(source)
    if header is None:
        return None
    shape = (header.height, header.width, header.channels, header.alpha, header.bit_depth)
    return _plan(planner, shape, target, recipe, prior, compare, mask, replay)


def _plan(planner, shape: tuple, target: Path, recipe, prior, compare: bool, mask, replay: bool) -> dict[str, Any]:
    from flowprior.batch.memory import image_buffers

    height, width, channels, alpha, bit_depth = shape
    buffers = image_buffers(channels, alpha, bit_depth, target.suffix, compare, streams(recipe, mask is not None))
    if replay:  # keep the recorded max_tiles (the same bytes); only check that it fits
        return planner(height, width, recipe, prior, buffers, fixed=True)
    return planner(height, width, recipe, prior, buffers)


#: The ``restore_file`` options that choose what is solved; a replay (``--params-from``) takes them from the sidecar.
SOLVE_OPTIONS = ("degradation", "mask", "recipe", "settings", "operator_params", "steps", "seed", "init", "model",
                 "chroma", "strength", "max_memory", "threads")


def resolve_recipe(
    params_from: str | Path | None = None, **options: Any
) -> tuple[RestoreRecipe, dict[str, Any] | None]:
    """The resolved recipe of a run, and the sidecar's settings (:func:`replay_options`) when it replays one.

    Without ``params_from``: ``recipe`` (an object, a YAML path or the defaults) with ``settings`` and the
    ``degradation``, ``seed``, ``init`` and ``model`` options on top (each when not None), and ``operator_params``.
    With it: the sidecar's recipe, and any of :data:`SOLVE_OPTIONS` that is given is a UsageError. An option is
    given unless it is None or empty, so ``--seed 0`` and ``--strength 0`` count. ``steps`` is left to the caller
    (it needs the loaded prior's number of levels).
    """
    unknown = set(options) - set(SOLVE_OPTIONS)
    if unknown:
        raise TypeError(f"unknown solve options: {', '.join(sorted(unknown))}")
    if params_from is not None:
        given = [name for name in SOLVE_OPTIONS if _given(options.get(name))]
        if given:
            raise UsageError(f"--params-from replays a recorded run; it cannot be combined with {', '.join(given)}")
        replay = replay_options(params_from)
        return replay["recipe"], replay
    overrides = dict(options.get("settings") or {})
    overrides.update({key: options[key] for key in ("degradation", "seed", "init", "model")
                      if options.get(key) is not None})
    return build_recipe(options.get("recipe"), overrides, options.get("operator_params") or {}), None


def _given(value: Any) -> bool:
    if getattr(value, "default", False):  # the default memory planner: not a choice of the user's
        return False
    return value is not None and not (isinstance(value, (str, dict, list, tuple)) and len(value) == 0)


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
        "input_sha256": (data.get("input") or {}).get("sha256"),
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
