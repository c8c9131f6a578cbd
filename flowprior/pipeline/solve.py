"""Stage *solve*: the latent MAP per tile, ``max_tiles`` tiles at a time in tile order (row-major, image after
image); each chunk's energy, data weight and starting latents."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from flowprior import tiling
from flowprior.pipeline.operator import BoundOperator
from flowprior.pipeline.recipe import RestoreRecipe, SolverSection
from flowprior.pipeline.warm_start import WarmStart
from flowprior.solver import Energy, LatentMAPSolver, SolveResult, Stage
from flowprior.solver.weighting import noise_matched_weight


def solve_tiles(prior, recipe: RestoreRecipe, bound: BoundOperator, warm: WarmStart, grid: tiling.TileGrid,
                batch: int, stages: list[Stage], progress: Callable[[int], None]) -> Iterator[SolveResult]:
    """The solved chunks of tiles, in tile order; each chunk's observation and warm start are read just then."""
    op, params, observed_mask = bound.op, warm.params, bound.observed_mask
    solver = LatentMAPSolver(prior, recipe.solver.optimizer, progress=progress)
    num_tiles = batch * grid.num_tiles  # all tiles of all images
    for rows in tiling.iter_chunks(num_tiles, recipe.tiling.max_tiles or num_tiles):
        chunk_params = tiling.split_params_range(params, grid, batch, rows.start, rows.stop)
        forward = None
        if recipe.solver.data_term == "operator":
            forward = lambda x, p=chunk_params: op.forward_model(x, p)
        chunk_mask = None if observed_mask is None else tiling.split_range(observed_mask, grid, rows.start, rows.stop)
        observed = tiling.split_range(warm.y, grid, rows.start, rows.stop)
        energy = Energy(observed=observed, mask=chunk_mask,
                        forward=forward, weight=data_weight(recipe.solver, op, chunk_params, observed.dtype),
                        prior_term=recipe.solver.prior_term)
        init = initial_latents(prior, tiling.split_range(warm.x0, grid, rows.start, rows.stop),
                               recipe.solver.init_latent)
        result = solver.solve(energy, init, stages)
        del energy, init
        yield result


def data_weight(solver: SolverSection, op, tile_params: dict, dtype: torch.dtype):
    """λ for a chunk of tiles: fixed, or matched per tile to the noise the degradation declares."""
    sigma = op.noise_std(tile_params) if solver.noise_temperature is not None else None
    weight = noise_matched_weight(sigma, solver.noise_temperature, solver.weight)
    return weight.to(dtype) if isinstance(weight, torch.Tensor) else weight


@torch.no_grad()
def initial_latents(prior, x0: Tensor, how: str) -> list[Tensor]:
    """Latents to start from: the paper's Eq. 19 (coarsest from T^-1(x0), finer at their means), all, or zeros."""
    shapes = prior.latent_shapes(x0.shape[0], x0.shape[2], x0.shape[3])
    if how == "zero":
        return [torch.zeros(s) for s in shapes]
    z, _ = prior.encode(x0)
    z = [torch.nan_to_num(zi, nan=0.0, posinf=0.0, neginf=0.0) for zi in z]  # an encode of a bad tile must not poison
    if how == "full":
        return z
    return [torch.zeros_like(zi) for zi in z[:-1]] + [z[-1]]
