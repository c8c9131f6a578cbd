"""The stages before any pixel is read: *resolve* the options (a recipe with ``--set``, or a sidecar's replay),
*choose the degradation* (``--degradation auto`` estimates it), *claim the outputs* (never over an input or,
without ``--overwrite``, an existing file) and *load the prior* (with the file's own JPEG tables)."""

from __future__ import annotations

import time
from datetime import datetime, timezone

from flowprior.auto_degradation import AUTO, bind_estimate, write_mask
from flowprior.errors import UsageError
from flowprior.io import output_format, read_image
from flowprior.jpeg_file import with_file_jpeg
from flowprior.output_guard import check_writable
from flowprior.pipeline.paths import compare_path, detected_mask_path, posterior_paths, sidecar_path
from flowprior.pipeline.recipe import load_model, with_total_steps
from flowprior.pipeline.replay import SOLVE_OPTIONS, resolve_recipe
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.tone import CHROMA_MODES


def now() -> str:
    """The UTC time, to the second, as the sidecar records it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def resolve_settings(request: RestoreRequest) -> RestoreState:
    """Check the options and resolve the recipe (or the replayed sidecar's settings) into a fresh state."""
    started_at, clock = now(), time.perf_counter()
    if not request.source.is_file():
        raise UsageError(f"input not found: {request.source}")
    fmt = output_format(request.target)
    if request.threads is not None and request.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {request.threads}")
    if request.quality is not None and not fmt.lossy:
        raise UsageError(f"--quality applies to lossy outputs (.jpg, .webp), not {request.target.suffix}")
    options = {name: getattr(request, "memory_planner" if name == "max_memory" else name) for name in SOLVE_OPTIONS}
    recipe, replay = resolve_recipe(request.params_from, **options)
    state = RestoreState(started_at, clock, fmt, recipe, replay, mask=request.mask, invert_mask=request.invert_mask,
                         quality=request.quality, threads=request.threads, samples=request.samples)
    chroma, strength = request.chroma, request.strength
    if replay:
        state.mask, state.invert_mask = replay["mask"], replay["invert_mask"]
        chroma, strength = replay["chroma"], replay["strength"]
        state.quality = request.quality if request.quality is not None else replay["quality"]
        state.threads = replay["threads"] or request.threads
        state.samples = replay["samples"]
    if request.save_samples and not state.samples:
        raise UsageError("--save-samples writes the posterior samples of --samples N; add --samples")
    state.chroma, state.strength = chroma or "auto", 1.0 if strength is None else float(strength)
    if state.chroma not in CHROMA_MODES:
        raise UsageError(f"--chroma must be one of {', '.join(CHROMA_MODES)}, not {state.chroma!r}")
    if not 0.0 <= state.strength <= 1.0:
        raise UsageError(f"--strength must be in [0, 1], got {state.strength}")
    return state


def choose_degradation(request: RestoreRequest, state: RestoreState) -> None:
    """``--degradation auto``: the estimators' spec, params and mask become the recipe's (a user's ``--set`` value
    or ``--mask`` wins); the estimate is decoded from the whole file."""
    if state.recipe.degradation != AUTO:
        return
    pixels = read_image(request.source, accept_truncated=request.accept_truncated).pixels
    state.found = bind_estimate(state.recipe, pixels, request.source, mask_given=request.mask is not None)


def claim_outputs(request: RestoreRequest, state: RestoreState) -> None:
    """Refuse to write over an input, or over an existing output without ``overwrite``; write a detected mask
    (``STEM.mask.png``, what the sidecar's replay reads)."""
    target, replay = request.target, state.replay
    detected = None if state.found is None or state.found.mask is None else detected_mask_path(target)
    written = [target, sidecar_path(target)] + ([compare_path(target)] if request.compare else [])
    written += posterior_paths(target, state.samples, request.save_samples)  # STEM.std.png, STEM.sample-NN.png
    check_writable(written + [detected] * bool(detected),
                   [request.source, request.mask, request.params_from, replay and replay["mask"]], request.overwrite)
    if detected:
        state.mask = write_mask(state.found.mask, detected)


def load_prior(request: RestoreRequest, state: RestoreState) -> None:
    """The prior (the request's own, or the recipe's model; a replay's must have the recorded sha256), the schedule
    rescaled to ``steps``, and a JPEG input's own quality and subsampling in the recipe."""
    state.prior = request.prior if request.prior is not None else load_model(state.recipe.model)
    replay, sha256 = state.replay, getattr(state.prior, "sha256", None)
    if replay and replay["model_sha256"] and sha256 != replay["model_sha256"]:
        raise UsageError(f"{request.params_from} was made with model sha256 {replay['model_sha256'][:16]}…, "
                         f"but {state.recipe.model} has {str(sha256)[:16]}…")
    if request.steps is not None:
        state.recipe = with_total_steps(state.recipe, request.steps, state.prior.num_levels)
    state.recipe, state.jpeg_note = with_file_jpeg(state.recipe, request.source)
