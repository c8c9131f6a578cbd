"""Stage *read*: the input's samples (decoded lazily, float rows made per band), its sha256, the mask file, and
the colour mode (a toned or monochrome print keeps its chroma, :mod:`flowprior.tone`)."""

from __future__ import annotations

from pathlib import Path

import torch

from flowprior.errors import UsageError
from flowprior.hashing import file_sha256
from flowprior.io import read_image
from flowprior.pipeline.plan import plan
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.tone import TONED_THRESHOLD, toning_fit


def read_mask(path: str | Path, invert: bool = False) -> torch.Tensor:
    """A mask file -> (1, 1, H, W) float with 1 = observed. **Nonzero (white) = observed, 0 (black) = missing.**"""
    image = read_image(path)
    observed = (image.pixels.mean(1, keepdim=True) > 0).float()
    return 1 - observed if invert else observed


def read_input(request: RestoreRequest, state: RestoreState) -> None:
    """The image (lazily), its sha256 and mask; the memory plan's ``max_tiles`` into the recipe (planned here from
    the decoded image when the header could not be read); the colour mode."""
    source = request.source
    state.image = image = read_image(source, lazy=True, accept_truncated=request.accept_truncated)
    state.input_sha256 = file_sha256(source)
    height, width = image.size
    if request.memory_planner is not None and state.memory is None:  # no readable header: plan from the image
        shape = (height, width, image.channels, image.has_alpha, image.bit_depth)
        state.memory = plan(request.memory_planner, shape, request.target, state.recipe, state.prior,
                            request.compare, state.mask, bool(state.replay) or request.keep_tiling, state.samples,
                            request.save_samples)
    if state.memory is not None:
        state.recipe.tiling.max_tiles = state.memory["max_tiles"]
    state.mask_tensor = read_mask(state.mask, state.invert_mask) if state.mask is not None else None
    if state.mask_tensor is not None and tuple(state.mask_tensor.shape[-2:]) != (height, width):
        raise UsageError(f"the mask {state.mask} is {state.mask_tensor.shape[-1]}x{state.mask_tensor.shape[-2]} "
                         f"pixels but the image {source} is {width}x{height}")
    replayed = state.replay and state.replay["input_sha256"]
    if replayed and replayed != state.input_sha256:
        state.notes.append(f"replay: {source} (sha256 {state.input_sha256[:16]}…) is not the input the sidecar "
                           f"{request.params_from} recorded (sha256 {replayed[:16]}…)")
    choose_colour(state)


def choose_colour(state: RestoreState) -> None:
    """``colour``: the requested chroma mode and the one used (``auto`` judges the print's toning residual)."""
    image, size = state.image, state.image.size
    state.colour = colour = {"requested": state.chroma}
    if image.channels == 1:
        colour["mode"] = "gray"
    elif state.chroma == "auto":
        state.toning = toning_fit(image.rows, state.mask_tensor, size)
        colour["chroma_residual"] = round(state.toning.residual(), 6)
        colour["threshold"] = TONED_THRESHOLD
        colour["mode"] = "keep" if colour["chroma_residual"] < TONED_THRESHOLD else "restore"
    else:
        colour["mode"] = state.chroma
    if state.keep_chroma and state.mask_tensor is not None and state.toning is None:
        state.toning = toning_fit(image.rows, state.mask_tensor, size)  # holes take chroma from the whole image's curve
