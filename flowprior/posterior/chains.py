"""How a chunk of tiles is sampled: one long chain per tile, or an ensemble of short chains per tile.

``start="map"``: one chain per tile from the MAP latents, keeping every ``thin``-th state after the burn-in. Its
samples are correlated: in the prior-dominated directions (inside holes) a chain whose step is set by the stiff,
data-pinned directions moves by about ``sqrt(2h)`` per step, so dozens of steps explore little of them.

``start="laplace"``: N independent chains per tile, each started at ``u_MAP + sqrt(G) ξ`` (G: the diagonal
Gauss-Newton preconditioner, i.e. a diagonal Laplace approximation of the posterior around the MAP) and kept after
its burn-in. The stiff directions, where that start is too wide, relax within a few steps; the slow ones start
already spread by about their posterior scale (``sqrt(temperature · G)``: the Laplace approximation of the
tempered target). The N chains of all tiles run as one batch. With ``laplace_iterations > 0`` the start is
instead a draw of the *full* Gauss-Newton Laplace approximation (:mod:`flowprior.posterior.laplace`), correct
also along the latent combinations the data pin or cannot see (opt-in: measured no better on validation crops
and 2-3.5x the work, docs/benchmarks.md "Posterior samples").

Cost, in tile evaluations (one decode and one gradient of one tile): the preconditioner's ``probes`` are taken
once per tile, at the MAP latents that all of a tile's copies share, then each chain evaluates its start and its
``steps`` (:attr:`PosteriorSection.tile_steps`). :class:`EvaluationCount` counts what was actually run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowprior.posterior.config import PosteriorSection
from flowprior.posterior.langevin import ChainStats, Potential, run_chains
from flowprior.posterior.laplace import gauss_newton_draw
from flowprior.posterior.preconditioner import gauss_newton_preconditioner
from flowprior.posterior.target import energy_potential
from flowprior.prior.base import Prior
from flowprior.solver import Energy


def replicate(energy: Energy, copies: int) -> Energy:
    """The energy of ``copies`` stacked copies of the tiles (copy-major: tile t of copy k at ``k * B + t``)."""
    forward = energy.forward
    if forward is not None:
        forward = lambda x, f=energy.forward: torch.cat([f(part) for part in x.chunk(copies)])
    weight = energy.weight.repeat(copies) if isinstance(energy.weight, Tensor) else energy.weight
    mask = None if energy.mask is None else energy.mask.repeat(copies, 1, 1, 1)
    return dataclasses.replace(energy, observed=energy.observed.repeat(copies, 1, 1, 1), mask=mask,
                               forward=forward, weight=weight)


def laplace_start(z: list[Tensor], preconditioner: list[Tensor], generator: torch.Generator,
                  temperature: float = 1.0) -> list[Tensor]:
    """``z + sqrt(T G) ξ``: a draw of the diagonal Laplace approximation of ``exp(-E / T)`` around ``z`` (G: the
    inverse curvature of E, so T G that of E / T; a new list)."""
    return [zi + (temperature * g).sqrt() * torch.randn(zi.shape, generator=generator, dtype=zi.dtype,
                                                        device=zi.device)
            for zi, g in zip(z, preconditioner)]


@dataclass
class EvaluationCount:
    """Tile evaluations run: ``potential`` (energy and gradient of one tile), ``probes`` (one vector-Jacobian
    product of one tile's decode; the probes of a tile share one decode) and ``products`` (the Gauss-Newton
    Laplace start's: per chain one decode at the MAP, then one Jacobian-vector and one vector-Jacobian product of
    it per conjugate-gradient iteration, :mod:`flowprior.posterior.laplace`)."""

    potential: int = 0
    probes: int = 0
    products: int = 0

    def counted(self, potential: Potential) -> Potential:
        def count(z: list[Tensor]):
            self.potential += z[0].shape[0]
            return potential(z)

        return count


def sample_tiles(energy: Energy, prior: Prior, z0: list[Tensor], config: PosteriorSection,
                 generator: torch.Generator, keep: Callable[[Tensor], None], prior_weight: float = 1.0,
                 count: EvaluationCount | None = None) -> ChainStats:
    """Draw ``config.samples`` posterior samples of every tile; ``keep(image)`` gets each as (B, C, P, P).

    Returns the chains' stats, per tile (an ensemble's averaged over its chains); ``count`` (if given) adds the
    tile evaluations run.
    """
    count = count if count is not None else EvaluationCount()
    copies, tiles = config.copies, z0[0].shape[0]
    preconditioner = None
    if config.precondition or config.start == "laplace":
        # the copies of a tile start at the same latents, so they share one curvature estimate
        preconditioner = gauss_newton_preconditioner(energy, prior, [zi.detach() for zi in z0], generator,
                                                     config.probes, prior_weight)
        count.probes += tiles * config.probes
        preconditioner = [_repeat(g, copies) for g in preconditioner]
    energy = replicate(energy, copies) if copies > 1 else energy
    z = [_repeat(zi.detach(), copies) for zi in z0]
    if config.start == "laplace" and config.laplace_iterations > 0:
        z = gauss_newton_draw(energy, prior, z, preconditioner, generator, config.temperature,
                              config.laplace_iterations, prior_weight)
        count.products += copies * tiles * (2 * config.laplace_iterations + 1)
    elif config.start == "laplace":
        z = laplace_start(z, preconditioner, generator, config.temperature)
    if config.start == "laplace":
        config = dataclasses.replace(config, samples=1, thin=1)
        preconditioner = preconditioner if config.precondition else None

    def keep_copies(k: int, image: Tensor) -> None:
        for part in image.chunk(copies):
            keep(part)

    potential = count.counted(energy_potential(energy, prior, prior_weight))
    stats = run_chains(potential, z, config, generator, keep_copies, preconditioner)
    return ChainStats(stats.acceptance.reshape(copies, tiles).mean(0), stats.step_size.reshape(copies, tiles).mean(0),
                      stats.nonfinite)


def _repeat(values: Tensor, copies: int) -> Tensor:
    """``copies`` stacked copies along the batch (copy-major, as :func:`replicate`)."""
    return values.repeat(copies, *([1] * (values.ndim - 1))) if copies > 1 else values
