"""Posterior samples of a whole image: the MAP's tiles, one Langevin chain per tile, blended like the MAP.

Every tile's chain targets the same per-tile energy the MAP solver minimized (the recipe's data term, weight λ,
mask and prior term: the operator bound by :func:`flowprior.pipeline.operator.bind_operator`, as for the MAP, with
a realization estimated from the whole image the same way), starts at the MAP latents of that tile
(``prior.encode`` of the MAP image's tile) and keeps ``config.samples`` states. Tiles are chained
``recipe.tiling.max_tiles`` at a time, like the MAP, and the per-tile mean and second moment are blended with the
MAP's overlap weights (:mod:`flowprior.posterior.moments`), so memory stays bounded by the chunk and a band of rows,
as for the MAP.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from flowprior import tiling
from flowprior.errors import UsageError
from flowprior.pipeline.image_rows import ImageRows
from flowprior.pipeline.operator import BoundOperator, bind_operator, estimate_realization
from flowprior.pipeline.recipe import RestoreRecipe, load_model
from flowprior.pipeline.rows import restore_rows
from flowprior.pipeline.solve import chunk_energy, initial_latents
from flowprior.posterior.chains import EvaluationCount, sample_tiles
from flowprior.posterior.config import PosteriorSection
from flowprior.posterior.moments import RunningMoments, second_moment, variance_from_moments
from flowprior.solver import Energy

#: ``emit(b, y0, y1, mean, std, samples)``: rows (1, C, y1 - y0, W) float32 of image ``b``; ``samples`` is
#: (N, 1, C, y1 - y0, W) or None
PosteriorRows = Callable[[int, int, int, Tensor, Tensor, Tensor | None], None]


@dataclass
class PosteriorResult:
    """Output of :func:`sample_restoration`.

    Attributes:
        image: (B, C, H, W) the restoration, the MAP or the posterior mean (``config.output``), in [0, 1].
        mean: (B, C, H, W) posterior mean of the (clamped) samples.
        std: (B, C, H, W) per-pixel, per-channel posterior standard deviation, in [0, 0.5].
        samples: (N, B, C, H, W) the samples, blended across tiles, or None unless asked for.
        info: acceptance rate and step size (mean over tiles), non-finite rejections, timings, the config.
    """

    image: Tensor
    mean: Tensor
    std: Tensor
    samples: Tensor | None
    info: dict[str, Any]


def refuse_size_change(op, height: int, width: int) -> None:
    """Refuse (exit 2) a degradation that changes the image size (a downsampling): the chains cut the observation's
    tiles on the restoration's own grid, so they would compare tiles of two sizes; an error beats a wrong map."""
    if op.output_size(height, width) != (height, width):
        raise UsageError(f"posterior samples (--samples) do not support {op.spec()!r} yet: it changes the image "
                         "size, and the sampler cuts its tiles on one grid")


def _map_params(bound: BoundOperator, y: tiling.RowReader, source: ImageRows) -> dict:
    """The params the MAP's energy used: the bound ones, with a realization (a haze depth) estimated from the whole
    image as :func:`flowprior.pipeline.warm_start.warm_start` does (such a restore never streams)."""
    if not bound.op.realization:
        return bound.params
    whole = torch.cat([y(b, 0, source.height) for b in range(source.batch)])
    return estimate_realization(bound.op, whole, bound.params)


def _chain_tiles(energy: Energy, prior, prior_weight: float, z0, config: PosteriorSection, generator,
                 gray: bool, keep_samples: bool, count: EvaluationCount):
    """Sample one chunk's tiles: (mean | second moment | samples...) stacked on channels, float64, and stats."""
    moments, kept = RunningMoments(), []

    def keep(image: Tensor) -> None:
        image = image.clamp(0, 1)  # a sample is an image: what a saved one would hold
        image = image.mean(1, keepdim=True) if gray else image
        moments.add(image)
        if keep_samples:
            kept.append(image.to(torch.float64))

    stats = sample_tiles(energy, prior, z0, config, generator, keep, prior_weight, count)
    parts = [moments.mean, second_moment(moments.mean, moments.variance), *kept]
    return torch.cat(parts, 1), stats


def sample_rows(source: ImageRows, x_map: Tensor | tiling.RowReader, recipe: RestoreRecipe,
                mask: Tensor | None, prior, config: PosteriorSection, generator: torch.Generator,
                emit: PosteriorRows, keep_samples: bool = False) -> dict[str, Any]:
    """Sample the posterior of images read by rows around their MAP restoration; hand out rows as they are final.

    Args:
        source: the degraded images (C = 1 or 3).
        x_map: the MAP restoration, (B, C, H, W) or a row reader, in [0, 1].
        recipe, mask, prior: exactly those of the MAP restoration (the energy must be the one it minimized).
        config: the sampler's settings.
        generator: the chains' only randomness (tiles are chained in order, so a seed replays the output).
        emit: receives the mean, std and (with ``keep_samples``) samples rows, each image row once.

    Returns:
        Info: acceptance rate and final step size (mean over tiles), non-finite rejections, the tile evaluations
        run (:class:`flowprior.posterior.chains.EvaluationCount`), seconds.
    """
    started = time.perf_counter()
    batch, width = source.batch, source.width
    bound = bind_operator(source, recipe, mask, prior)  # the MAP's own operator, params and colour space
    refuse_size_change(bound.op, source.height, width)
    y = _as_model_channels(source.read, bound.channels)
    params = _map_params(bound, y, source)
    x_map = _as_model_channels(x_map if callable(x_map) else ImageRows.of(x_map).read, bound.channels)
    grid = tiling.make_grid(source.height, width, tile=prior.patch_size, overlap=recipe.tiling.overlap,
                            align=math.lcm(bound.op.block_size(), 1))
    gray, c_out = bound.gray, 1 if bound.gray else bound.channels

    def split_rows(b: int, y0: int, y1: int, rows: Tensor) -> None:
        mean, second = rows[:, :c_out], rows[:, c_out : 2 * c_out]
        std = variance_from_moments(mean, second).sqrt()
        samples = None
        if keep_samples:
            samples = rows[:, 2 * c_out :].reshape(1, -1, c_out, y1 - y0, width).transpose(0, 1).float()
        emit(b, y0, y1, mean.float(), std.float(), samples)

    blender = tiling.Blender(grid, split_rows)
    acceptance, step_size, nonfinite, count = [], [], 0, EvaluationCount()
    # an ensemble chains N copies of each tile at once: fewer tiles per chunk keep the memory the recipe planned
    copies = config.copies
    per_chunk = max(1, (recipe.tiling.max_tiles or batch * grid.num_tiles * copies) // copies)
    for rows in tiling.iter_chunks(batch * grid.num_tiles, per_chunk):
        chunk_params = tiling.split_params_range(params, grid, batch, rows.start, rows.stop)
        energy = chunk_energy(recipe.solver, bound.op, chunk_params, bound.observed_mask, y, grid, rows)
        z0 = initial_latents(prior, tiling.split_range(x_map, grid, rows.start, rows.stop), "full")
        tiles, stats = _chain_tiles(energy, prior, recipe.solver.prior_weight, z0, config, generator, gray,
                                    keep_samples, count)
        blender.add(tiles)
        acceptance.append(stats.acceptance)
        step_size.append(stats.step_size)
        nonfinite += stats.nonfinite
    return {"config": asdict(config), "tiles": grid.num_tiles * batch,
            "acceptance": float(torch.cat(acceptance).mean()), "step_size": float(torch.cat(step_size).mean()),
            "nonfinite_rejections": nonfinite, "tile_evaluations": asdict(count),
            "seconds": round(time.perf_counter() - started, 3)}


def _as_model_channels(read: tiling.RowReader, channels: int) -> tiling.RowReader:
    """Rows as the solver sees them: float in [0, 1], gray repeated into the prior's colour channels."""

    def rows(b: int, y0: int, y1: int) -> Tensor:
        out = read(b, y0, y1).float().clamp(0, 1)
        return out.expand(-1, channels, -1, -1) if out.shape[1] == 1 else out

    return rows


def sample_restoration(y: Tensor, recipe: RestoreRecipe | None = None, mask: Tensor | None = None, prior=None,
                       x_map: Tensor | None = None, config: PosteriorSection | None = None,
                       generator: torch.Generator | None = None, keep_samples: bool = False) -> PosteriorResult:
    """Posterior samples, mean and per-pixel standard deviation of a restoration.

    Args:
        y: (B, C, H, W) degraded images in [0, 1], C = 1 or 3 (not changed).
        recipe: the restore recipe (degradation spec, operator params, solver and tiling sections).
        mask: (B, 1, H, W), 1 = observed, 0 = missing, or None.
        prior: a loaded prior; defaults to ``recipe.model``.
        x_map: the MAP restoration of ``y`` under ``recipe``; computed (as
            :func:`flowprior.restoration.restore_tensor` does) when None.
        config: the sampler's settings (:class:`PosteriorSection`); defaults to the recipe's ``posterior``.
        generator: the chains' randomness; defaults to one seeded with ``config.seed``.
        keep_samples: also return the N samples.

    Example:
        >>> from flowprior.restoration import RestoreRecipe  # doctest: +SKIP
        >>> out = sample_restoration(y, RestoreRecipe(degradation="noise", params={"noise.sigma": 25}))  # doctest: +SKIP
        >>> out.std.shape == y.shape  # doctest: +SKIP
        True
    """
    if y.ndim != 4 or y.shape[1] not in (1, 3) or not torch.isfinite(y).all():
        raise UsageError(f"expected finite (B, C, H, W) images with 1 or 3 channels, got shape {tuple(y.shape)}")
    recipe = recipe or RestoreRecipe()
    config = config or recipe.posterior
    prior = prior if prior is not None else load_model(recipe.model)
    generator = generator if generator is not None else torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    if x_map is None:
        x_map = _map_restoration(y, recipe, mask, prior)
    map_seconds = time.perf_counter() - started
    mean, std = torch.empty(y.shape), torch.empty(y.shape)
    samples = torch.empty((config.samples, *y.shape)) if keep_samples else None

    def emit(b: int, y0: int, y1: int, mean_rows: Tensor, std_rows: Tensor, sample_rows: Tensor | None) -> None:
        mean[b : b + 1, :, y0:y1], std[b : b + 1, :, y0:y1] = mean_rows, std_rows
        if samples is not None:
            samples[:, b : b + 1, :, y0:y1] = sample_rows

    info = sample_rows(ImageRows.of(y), x_map, recipe, mask, prior, config, generator, emit, keep_samples)
    info["map_seconds"] = round(map_seconds, 3)
    image = mean.clamp(0, 1) if config.output == "mean" else x_map.float()
    return PosteriorResult(image, mean, std, samples, info)


def _map_restoration(y: Tensor, recipe: RestoreRecipe, mask: Tensor | None, prior) -> Tensor:
    """The MAP restoration, as :func:`flowprior.restoration.restore_tensor` gives it (that module imports this one
    for ``restore(samples=N)``, so this one cannot import it back)."""
    out = torch.empty(y.shape, dtype=torch.float32)

    def keep(b: int, y0: int, y1: int, rows: Tensor) -> None:
        out[b : b + 1, :, y0:y1] = rows

    restore_rows(ImageRows.of(y), recipe, mask, prior, emit=keep)
    return out
