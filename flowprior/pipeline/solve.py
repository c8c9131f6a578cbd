"""Stage *solve*: the latent MAP per tile, ``max_tiles`` tiles at a time in tile order (row-major, image after
image); each chunk's energy, data weight and starting latents."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from flowprior import tiling
from flowprior.conditioning import data_noise_std
from flowprior.pipeline.operator import BoundOperator
from flowprior.pipeline.recipe import RestoreRecipe, SolverSection
from flowprior.pipeline.warm_start import WarmStart
from flowprior.solver import Energy, LatentMAPSolver, SolveResult, Stage
from flowprior.solver.map import finite_tiles
from flowprior.solver.weighting import noise_matched_weight


def solve_tiles(prior, recipe: RestoreRecipe, bound: BoundOperator, warm: WarmStart, grid: tiling.TileGrid,
                batch: int, stages: list[Stage], progress: Callable[[int], None],
                observed_grid: tiling.TileGrid | None = None) -> Iterator[SolveResult]:
    """The solved chunks of tiles, in tile order; each chunk's observation and warm start are read just then.

    ``grid`` holds the tiles of the restoration (the clean grid), ``observed_grid`` the matching tiles of the
    observation and of the maps on its grid (``grid`` itself unless the degradation downsamples).
    """
    op, params, observed_mask = bound.op, warm.params, bound.observed_mask
    observed_grid = observed_grid or grid
    num_tiles = batch * grid.num_tiles  # all tiles of all images
    if skips_map(recipe, stages):
        for rows in tiling.iter_chunks(num_tiles, recipe.tiling.max_tiles or num_tiles):
            yield warm_start_tiles(warm, grid, observed_grid, rows)
        return
    solver = LatentMAPSolver(prior, recipe.solver.optimizer, progress=progress)
    for rows in tiling.iter_chunks(num_tiles, recipe.tiling.max_tiles or num_tiles):
        chunk_params = tile_params(params, (grid, observed_grid), batch, rows.start, rows.stop)
        energy = chunk_energy(recipe.solver, op, chunk_params, observed_mask, warm.y, observed_grid, rows)
        init = initial_latents(prior, tiling.split_range(warm.x0, grid, rows.start, rows.stop),
                               recipe.solver.init_latent)
        result = solver.solve(energy, init, stages)
        del energy, init
        yield result


def skips_map(recipe: RestoreRecipe, stages: list[Stage]) -> bool:
    """True when the recipe takes no MAP step from the full latent start: then decode(encode(x0)) is x0 up to
    float rounding (the flow is invertible), so the prior's round trip, four flow passes a tile, changes nothing
    worth its time (the default ``fast`` recipe: validation chose 0 steps after the conditioned warm start)."""
    return recipe.solver.init_latent == "full" and all(stage.steps == 0 for stage in stages)


def warm_start_tiles(warm: WarmStart, grid: tiling.TileGrid, observed_grid: tiling.TileGrid,
                     rows: range) -> SolveResult:
    """The warm start's tiles ``rows`` as the chunk's result (:func:`skips_map`), with the solver's guards: a tile
    that is not finite falls back to its observation (where it is on the same grid), all clamped to [0, 1]."""
    image = tiling.split_range(warm.x0, grid, rows.start, rows.stop)  # a fresh tensor: warm.x0 stays as it is
    observed = None
    if observed_grid == grid and not torch.isfinite(image).all():
        observed = tiling.split_range(warm.y, observed_grid, rows.start, rows.stop)
    return SolveResult(image=finite_tiles(image, observed), latents=[])


def chunk_energy(solver: SolverSection, op, chunk_params: dict[str, Tensor], observed_mask: Tensor | None, y,
                 observed_grid: tiling.TileGrid, rows: range) -> Energy:
    """The per-tile energy of tiles ``rows`` (data term, λ, mask, prior term), which the MAP minimizes and the
    posterior sampler samples; ``chunk_params`` are those tiles' params, ``y`` and the mask on ``observed_grid``."""
    forward = None
    if solver.data_term == "operator":
        forward = lambda x, p=chunk_params: op.forward_model(x, p)
    chunk_mask = None if observed_mask is None else tiling.split_range(observed_mask, observed_grid, rows.start,
                                                                       rows.stop)
    observed = tiling.split_range(y, observed_grid, rows.start, rows.stop)
    return Energy(observed=observed, mask=chunk_mask, forward=forward,
                  weight=data_weight(solver, op, chunk_params, observed.dtype), prior_term=solver.prior_term)


def tile_params(params: dict[str, Tensor], grids: tuple[tiling.TileGrid, ...], batch: int, start: int,
                stop: int) -> dict[str, Tensor]:
    """Each tile's params (:func:`flowprior.tiling.split_params_range`): a map is cut with the grid whose image
    size it has (a member before a downsampling has its maps on the clean grid, one after it on the observed)."""
    out: dict[str, Tensor] = {}
    for index, grid in enumerate(grids):
        size = (grid.height, grid.width)
        sized = {key for key, value in params.items() if value.dim() == 4 and tuple(value.shape[-2:]) == size}
        if index == len(grids) - 1:  # the last grid takes everything left, maps and per-image values alike
            out.update(tiling.split_params_range({k: v for k, v in params.items() if k not in out}, grid, batch,
                                                 start, stop, spatial_keys=sized))
        elif sized:
            out.update(tiling.split_params_range({k: params[k] for k in sized}, grid, batch, start, stop,
                                                 spatial_keys=sized))
    return out


def data_weight(solver: SolverSection, op, chunk_params: dict, dtype: torch.dtype):
    """λ for a chunk of tiles: fixed, or matched per tile to the noise the degradation declares (with the
    identity data term, a JPEG's quantization noise counts as noise)."""
    sigma = None
    if solver.noise_temperature is not None:
        sigma = data_noise_std(op, chunk_params, jpeg_modelled=solver.data_term == "operator")
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
