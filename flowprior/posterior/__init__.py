"""Posterior samples of a restoration and a per-pixel uncertainty map (issue 16).

Langevin dynamics (ULA, MALA) in the flow prior's latent space under the MAP solver's own energy, started at the
MAP estimate, tile by tile; the posterior mean and per-pixel standard deviation are blended across tile overlaps
like the MAP restoration.
"""

from flowprior.posterior.config import PosteriorSection
from flowprior.posterior.langevin import ChainStats, run_chains
from flowprior.posterior.moments import RunningMoments
from flowprior.posterior.sampling import PosteriorResult, sample_restoration, sample_rows
from flowprior.posterior.target import energy_potential

__all__ = ["ChainStats", "PosteriorResult", "PosteriorSection", "RunningMoments", "energy_potential", "run_chains",
           "sample_restoration", "sample_rows"]
