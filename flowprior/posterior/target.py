"""The density the sampler targets: ``p(u | y) ∝ exp(-E(u))`` with ``E`` the MAP solver's per-tile energy.

Nothing of the objective is re-implemented here: the data term (the operator's forward model, its mask and
weight λ) and the prior term (``"latent"`` or ``"flow"``) are :class:`flowprior.solver.Energy`'s, and value and
gradient come from :func:`flowprior.solver.objective.energy_and_grad`, as for the MAP. Every latent level is free.
"""

from __future__ import annotations

from torch import Tensor

from flowprior.posterior.langevin import Potential
from flowprior.prior.base import Prior
from flowprior.solver.objective import Energy, energy_and_grad


def energy_potential(energy: Energy, prior: Prior, prior_weight: float = 1.0) -> Potential:
    """The :data:`~flowprior.posterior.langevin.Potential` of a batch of tiles under the MAP energy."""

    def potential(z: list[Tensor]):
        return energy_and_grad(energy, prior, z, list(range(len(z))), prior_weight)

    return potential
