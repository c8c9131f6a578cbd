"""Settings of the posterior sampler, as a recipe section (``posterior:`` in a restore recipe, ``--set
posterior.samples=8``)."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("mala", "ula")
OUTPUTS = ("map", "mean")


@dataclass
class PosteriorSection:
    """How to draw posterior samples of a restoration by Langevin dynamics in the flow's latent space.

    The chain targets ``p(u | y) ∝ exp(-E(u) / temperature)`` with ``E`` the MAP solver's per-tile energy
    (:class:`flowprior.solver.Energy`), started at the MAP latents. One step is
    ``u' = u - h ∇E(u) / temperature + sqrt(2h) ξ``, ξ ~ N(0, I); MALA accepts it with the Metropolis-Hastings
    ratio (exact target), ULA always does (biased by O(h)). The chain runs ``burn_in + samples * thin`` steps and
    keeps every ``thin``-th state after the burn-in.

    Args:
        method: ``"mala"`` (Metropolis-adjusted, exact) or ``"ula"`` (unadjusted).
        samples: N, the samples kept per tile.
        step_size: h at the start, in latent units (the latents are standardized: prior N(0, I)).
        burn_in: steps discarded first. With ``adapt`` (MALA only), each tile's h is tuned towards
            ``target_accept`` during these steps and frozen after, so the kept samples come from a fixed kernel.
        thin: steps between kept samples.
        adapt: tune h during the burn-in (MALA).
        target_accept: the acceptance rate ``adapt`` aims at (0.574 is optimal for MALA in high dimension).
        temperature: 1 samples the posterior the MAP objective defines; > 1 flattens it.
        output: what the restored image is: ``"map"`` (the MAP estimate) or ``"mean"`` (the posterior mean).
        seed: seeds the chain's ``torch.Generator`` when the caller passes none.
    """

    method: str = "mala"
    samples: int = 8
    step_size: float = 0.01
    burn_in: int = 30
    thin: int = 4
    adapt: bool = True
    target_accept: float = 0.574
    temperature: float = 1.0
    output: str = "map"
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"posterior.method must be one of {METHODS}, not {self.method!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"posterior.output must be one of {OUTPUTS}, not {self.output!r}")
        if self.samples < 1 or self.thin < 1 or self.burn_in < 0:
            raise ValueError("posterior: samples >= 1, thin >= 1 and burn_in >= 0 are required")
        if not self.step_size > 0 or not self.temperature > 0 or not 0 < self.target_accept < 1:
            raise ValueError("posterior: step_size > 0, temperature > 0 and 0 < target_accept < 1 are required")

    @property
    def steps(self) -> int:
        """Langevin steps in all (each one energy and gradient evaluation)."""
        return self.burn_in + self.samples * self.thin
