"""Settings of the posterior sampler, as a recipe section (``posterior:`` in a restore recipe, ``--set
posterior.burn_in=10``).

The section is declared with the restore recipe's other sections (:mod:`flowprior.pipeline.recipe`), so that the
recipe does not import this package (whose sampler imports the restore pipeline); it is re-exported here.
"""

from __future__ import annotations

from flowprior.pipeline.recipe import POSTERIOR_METHODS as METHODS
from flowprior.pipeline.recipe import POSTERIOR_OUTPUTS as OUTPUTS
from flowprior.pipeline.recipe import POSTERIOR_STARTS as STARTS
from flowprior.pipeline.recipe import PosteriorSection

__all__ = ["METHODS", "OUTPUTS", "STARTS", "PosteriorSection"]
