"""The restore of images read by rows, stage after stage: bind operator -> warm start -> solve -> blend
(:func:`restore_rows`); what the file pipeline (:mod:`flowprior.pipeline.run`) runs between read and write."""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from torch import Tensor
from tqdm import tqdm

from flowprior import tiling
from flowprior.errors import UsageError
from flowprior.pipeline.blend import RowSink, blend
from flowprior.pipeline.image_rows import ImageRows
from flowprior.pipeline.operator import BoundOperator, bind_operator
from flowprior.pipeline.recipe import RestoreRecipe, load_model
from flowprior.pipeline.solve import solve_tiles
from flowprior.pipeline.warm_start import WarmStart, warm_start
from flowprior.recipe import to_dict


def restore_rows(source: ImageRows, recipe: RestoreRecipe | None = None, mask: Tensor | None = None, prior=None,
                 progress: bool = False, emit: RowSink | None = None) -> dict[str, Any]:
    """Restore images read by rows, handing out the restored rows as they are final.

    Tiles are solved ``recipe.tiling.max_tiles`` at a time, in tile order (row-major, image after image). When the
    restore streams (:func:`flowprior.pipeline.streaming.stream_mode`), each chunk's observation and warm start are
    cut from the band of rows its tiles cover, read from ``source`` just then, and
    :class:`~flowprior.tiling.Blender` hands out each image row once no later tile touches it: only one band of
    float rows exists at a time. Otherwise (holes to fill, a realization to estimate) the whole image is read and
    the warm start computed on it first. The values do not depend on streaming: the chunks are the same, every
    tile is solved on its own, and tile rows are blended in one order.

    Args:
        source: the images; C = 1 or 3 (gray is solved as RGB and averaged back).
        recipe, mask, prior, progress: as for :func:`flowprior.restoration.restore_tensor`.
        emit: ``emit(b, y0, y1, rows)`` receives rows (1, C, y1 - y0, W) float32 in [0, 1] of image ``b``, each
            image row once, top to bottom.

    Returns:
        The info dict of :class:`~flowprior.pipeline.recipe.RestoreResult`.
    """
    recipe = recipe or RestoreRecipe()
    if source.channels not in (1, 3):
        raise UsageError(f"expected images with 1 or 3 channels, got {source.channels}")
    started = time.perf_counter()
    prior = prior if prior is not None else load_model(recipe.model)
    bound = bind_operator(source, recipe, mask, prior)
    grid, observed = tile_grids(source, bound, prior.patch_size, recipe)
    warm = warm_start(source, recipe, bound)
    timings = {"init": time.perf_counter() - started}

    stages = recipe.stages(prior.num_levels)
    total = sum(s.steps for s in stages) * source.batch * grid.num_tiles
    # no MAP step (the default recipe): nothing for a bar to count
    bar = tqdm(total=total, disable=not progress or total == 0, desc="restore", unit="tile-step", dynamic_ncols=True)
    chunks = solve_tiles(prior, recipe, bound, warm, grid, source.batch, stages, bar.update, observed)
    energies, rollbacks = blend(chunks, grid, bound.gray, emit)
    bar.close()
    timings["solve"] = time.perf_counter() - started - timings["init"]
    timings["total"] = time.perf_counter() - started
    return describe_restore(recipe, prior, bound, warm, grid, energies, rollbacks, timings)


def tile_grids(source: ImageRows, bound: BoundOperator, tile: int, recipe: RestoreRecipe
               ) -> tuple[tiling.TileGrid, tiling.TileGrid]:
    """(the tiles of the restoration, on the clean grid; the matching tiles of the observation). They are the same
    grid unless the degradation downsamples: then the clean tiles start on whole low-resolution pixels and each
    observes its low-resolution region (:func:`flowprior.tiling.observed_grid`). Settled before any work, so what
    cannot be tiled is refused at once."""
    factor = bound.height // source.height
    if (bound.height, bound.width) != (source.height * factor, source.width * factor):
        raise UsageError(f"{bound.op.spec()!r}: the clean grid {bound.height}x{bound.width} is not a whole "
                         f"multiple of the {source.height}x{source.width} image")
    if factor > 1 and recipe.solver.data_term == "identity":
        raise UsageError("solver.data_term=identity compares the restoration with the input pixel by pixel, which "
                         "a downsampling's smaller input cannot be; use solver.data_term=operator")
    try:
        grid = tiling.make_grid(bound.height, bound.width, tile=tile, overlap=recipe.tiling.overlap,
                                align=math.lcm(bound.op.block_size(), factor))
    except ValueError as error:  # e.g. a JPEG after a x4 downsampling: 64-px blocks leave no stride in a tile
        raise UsageError(f"{bound.op.spec()!r} cannot be cut into {tile}-px tiles: {error}") from None
    return grid, tiling.observed_grid(grid, factor, source.height, source.width)


def describe_restore(recipe: RestoreRecipe, prior, bound: BoundOperator, warm: WarmStart, grid: tiling.TileGrid,
                     energies: list[list[dict[str, float]]], rollbacks: int, timings: dict[str, float]
                     ) -> dict[str, Any]:
    """The restore's info dict: what was solved, how, and how it went (the sidecar's core)."""
    return {
        "recipe": to_dict(recipe),
        "degradation": bound.op.spec(),
        "params": summarize_params(warm.params),
        "tiles": {"count": grid.num_tiles, "size": grid.tile, "overlap": grid.overlap, "align": grid.align,
                  "streamed": warm.streaming.rows},
        "output_size": [grid.height, grid.width],  # the clean grid: larger than the input for a downsampling
        "stage_energies": mean_energies(energies),
        "rollbacks": rollbacks,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "model": {"name": recipe.model, "sha256": getattr(prior, "sha256", None)},
        # what a conditioned warm start was told about the degradation (None: no learned or a blind warm start)
        "warm_start_condition": getattr(warm.initializer, "last_condition", None),
        # the embedded warm-start model that ran (the general one or a specialist; None: a checkpoint or none)
        "warm_start_model": getattr(warm.initializer, "last_model", None),
        # SURE's weight on the network per pass (flowprior.warmstart.sure; [] where no blend ran; 1 = network alone)
        "warm_start_shrink": list(getattr(warm.initializer, "last_shrink", [])),
        # per pass, SURE's weight on the Wiener estimate (flowprior.warmstart.wiener; 0: not used; [] where it cannot run)
        "warm_start_wiener": list(getattr(warm.initializer, "last_wiener", [])),
        "warm_start_collaborative": list(getattr(warm.initializer, "last_collaborative", [])),
    }


def summarize_params(params: dict[str, Tensor]) -> dict[str, Any]:
    """Small params as lists; maps (a mask, a haze depth) as their shape and mean."""
    out = {}
    for key, value in params.items():
        if value.numel() <= 16:
            out[key] = value.flatten().tolist()
        else:
            out[key] = {"shape": list(value.shape), "mean": float(value.float().mean())}
    return out


def mean_energies(chunks: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Each stage's start and end energy, averaged over the chunks."""
    if not chunks:
        return []
    out = []
    for stage in range(len(chunks[0])):
        rows = [c[stage] for c in chunks]
        out.append({"active": rows[0]["active"], "steps": rows[0]["steps"],
                    "start": float(np.nanmean([r["start"] for r in rows])),
                    "end": float(np.nanmean([r["end"] for r in rows]))})
    return out
