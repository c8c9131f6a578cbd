"""Stage *warm start*: the recipe's initializer, and the observation and warm start ``x0`` the solver cuts its
tiles from: row readers a band at a time when the restore streams (:func:`~flowprior.pipeline.streaming.stream_mode`),
else whole-image tensors (after the damage's realization is estimated from the whole image)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from flowprior.conditioning import QUANTITIES
from flowprior.errors import UsageError
from flowprior.pipeline.image_rows import ImageRows, remember_last
from flowprior.pipeline.operator import BoundOperator, estimate_realization
from flowprior.pipeline.recipe import RestoreRecipe
from flowprior.pipeline.streaming import Streaming, stream_mode
from flowprior.tiling import RowReader
from flowprior.warm_bands import BandedWarmStart
from flowprior.warmstart import get_initializer


@dataclass
class WarmStart:
    """The solver's inputs: the observation ``y`` and the warm start ``x0``, each a whole-image tensor or a
    :data:`~flowprior.tiling.RowReader` (``tiling.split_range`` cuts tiles from either)."""

    y: Tensor | RowReader
    x0: Tensor | RowReader
    params: dict[str, Tensor]  # the bound params, with a realization estimated from the whole image
    streaming: Streaming
    initializer: object  # what produced x0; a conditioned one records what it was told (``last_condition``)


def make_initializer(recipe: RestoreRecipe):
    """The recipe's warm start; a learned one gets its checkpoint and the recipe's seed."""
    if recipe.init == "identity":
        if recipe.init_checkpoint is not None:
            raise UsageError(f"init_checkpoint={recipe.init_checkpoint} is set but init is 'identity', which "
                             "loads no model; choose a learned init (--init resflow|irflow|flowie)")
        return get_initializer("identity")
    for key, step in (("init_wiener", "Wiener"), ("init_collaborative", "collaborative")):
        if not getattr(recipe, key) >= 0:  # NaN too
            raise UsageError(f"{key}={getattr(recipe, key)}: the largest noise σ (0-255) the {step} step runs at "
                             "must be ≥ 0 (0 turns it off)")
    unknown = set(recipe.init_unknown) - set(QUANTITIES)
    if unknown:
        raise UsageError(f"init_unknown: {sorted(unknown)} are not quantities a warm start reads "
                         f"(known: {', '.join(QUANTITIES)})")
    return get_initializer(recipe.init, checkpoint=recipe.init_checkpoint, seed=recipe.seed,
                           unknown=tuple(recipe.init_unknown), ensemble=recipe.init_ensemble,
                           shrink=recipe.init_shrink, wiener=recipe.init_wiener,
                           collaborative=recipe.init_collaborative)


def warm_start(source: ImageRows, recipe: RestoreRecipe, bound: BoundOperator) -> WarmStart:
    """The observation in the prior's colour space and the warm start, streamed or whole (module docstring)."""
    initializer = make_initializer(recipe)
    op, params = bound.op, bound.params

    def solve_rows(b: int, y0: int, y1: int) -> Tensor:
        rows = source.read(b, y0, y1).float().clamp(0, 1)
        return rows.expand(-1, bound.channels, -1, -1) if bound.gray else rows

    mode = stream_mode(recipe.init, op, params, source.height, source.width, source.batch)
    if mode.banded:  # a learned warm start, block row by block row (flowprior.warm_bands)
        y = remember_last(solve_rows)
        x0 = remember_last(BandedWarmStart(initializer, solve_rows, op, params, source.height, source.width))
    elif mode.rows:  # the warm start is per pixel: compute it on each band
        y = remember_last(solve_rows)

        def per_band(b: int, y0: int, y1: int) -> Tensor:
            return initializer(y(b, y0, y1), op, {key: value[b : b + 1] for key, value in params.items()})

        x0 = remember_last(per_band)
    else:
        y = torch.cat([solve_rows(b, 0, source.height) for b in range(source.batch)])
        params = estimate_realization(op, y, params)
        x0 = initializer(y, op, params)
        if tuple(x0.shape[-2:]) != (bound.height, bound.width):
            raise UsageError(f"the {recipe.init!r} warm start gives {x0.shape[-2]}x{x0.shape[-1]} images, but "
                             f"{op.spec()!r} restores onto {bound.height}x{bound.width}; use --init inverse")
    return WarmStart(y, x0, params, mode, initializer)
