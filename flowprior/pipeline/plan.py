"""Stage *plan*: how many tiles to solve at once and where the output samples live, from the file's header before
anything is decoded (a decompression bomb is refused here, at once, with its estimate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowprior.io import read_header
from flowprior.pipeline.operator import clean_size
from flowprior.pipeline.request import RestoreRequest, RestoreState
from flowprior.pipeline.streaming import streams


def plan_memory(request: RestoreRequest, state: RestoreState) -> None:
    """The memory plan of the request's planner (None without one, or without a readable header: the read stage
    plans from the decoded image then); a replay or a batch-planned tiling keeps its ``max_tiles``."""
    fixed = bool(state.replay) or request.keep_tiling
    state.memory = plan_from_header(request.source, request.target, state.recipe, state.prior, request.memory_planner,
                                    request.compare, state.mask, fixed, state.samples, request.save_samples)


def plan_from_header(source: Path, target: Path, recipe, prior, planner, compare: bool = False, mask=None,
                     replay: bool = False, samples: int | None = None, save_samples: bool = False
                     ) -> dict[str, Any] | None:
    """The memory plan from the file's header, before anything is decoded; None without a planner or a readable
    header. ``replay``: keep the recipe's ``max_tiles`` and only check it. ``samples``: posterior samples are drawn
    too (the recipe's ``posterior`` section), ``save_samples``: each is kept as an image."""
    if planner is None:
        return None
    header = read_header(source)
    if header is None:
        return None
    shape = (header.height, header.width, header.channels, header.alpha, header.bit_depth)
    return plan(planner, shape, target, recipe, prior, compare, mask, replay, samples, save_samples)


def plan(planner, shape: tuple, target: Path, recipe, prior, compare: bool, mask, replay: bool,
         samples: int | None = None, save_samples: bool = False) -> dict[str, Any]:
    """``planner``'s plan for an image of ``shape`` = (height, width, channels, alpha, bit depth)."""
    from flowprior.batch.memory import image_buffers

    height, width, channels, alpha, bit_depth = shape
    streamed = streams(recipe, mask is not None, height, width)
    # the tiles, float images and output samples lie on the clean grid: a super-resolution's is factor² larger
    height, width = clean_size(recipe, height, width)
    buffers = image_buffers(channels, alpha, bit_depth, target.suffix, compare, streamed, samples or 0,
                            save_samples, recipe.posterior.copies if samples else 0)
    if replay:  # keep the recorded max_tiles (the same bytes); only check that it fits
        return planner(height, width, recipe, prior, buffers, fixed=True)
    return planner(height, width, recipe, prior, buffers)
