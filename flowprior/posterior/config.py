"""Settings of the posterior sampler, as a recipe section (``posterior:`` in a restore recipe, ``--set
posterior.samples=8``)."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = ("mala", "ula")
OUTPUTS = ("map", "mean")
STARTS = ("laplace", "map")


@dataclass
class PosteriorSection:
    """How to draw posterior samples of a restoration by Langevin dynamics in the flow's latent space.

    Each chain targets ``p(u | y) ∝ exp(-E(u) / temperature)`` with ``E`` the MAP solver's per-tile energy
    (:class:`flowprior.solver.Energy`), started at (or around) the MAP latents. One step is
    ``u' = u - h ∇E(u) / temperature + sqrt(2h) ξ``, ξ ~ N(0, I); MALA accepts it with the Metropolis-Hastings
    ratio (exact target), ULA always does (biased by O(h)). With ``start="map"`` one chain per tile runs
    ``burn_in + samples * thin`` steps and keeps every ``thin``-th state after the burn-in; with ``start="laplace"``
    N chains per tile start at MAP + a draw of the diagonal Laplace approximation and each is kept after
    ``burn_in`` steps (:mod:`flowprior.posterior.chains`).

    Args:
        method: ``"mala"`` (Metropolis-adjusted, exact) or ``"ula"`` (unadjusted).
        samples: N, the samples kept per tile.
        start: ``"laplace"`` (N short chains per tile from Laplace draws around the MAP) or ``"map"`` (one chain
            per tile from the MAP itself).
        step_size: h at the start, in latent units (the latents are standardized: prior N(0, I)); with
            ``precondition``, relative to each latent's own curvature (h = 1 would be a Newton-sized step).
        burn_in: steps discarded first. With ``adapt`` (MALA only), each tile's h is tuned towards
            ``target_accept`` during these steps and frozen after, so the kept samples come from a fixed kernel.
        thin: steps between kept samples (``start="map"``).
        adapt: tune h during the burn-in (MALA).
        precondition: scale each latent's step by the inverse Gauss-Newton curvature of the energy at the start
            (:mod:`flowprior.posterior.preconditioner`); without it, latents inside holes hardly move.
        probes: vector-Jacobian products that estimate that curvature.
        target_accept: the acceptance rate ``adapt`` aims at (0.574 is optimal for MALA in high dimension).
        temperature: 1 samples the posterior the MAP objective defines; > 1 flattens it.
        output: what the restored image is: ``"map"`` (the MAP estimate) or ``"mean"`` (the posterior mean).
        seed: seeds the chain's ``torch.Generator`` when the caller passes none.
    """

    method: str = "mala"
    samples: int = 8
    start: str = "laplace"
    step_size: float = 0.1
    burn_in: int = 30
    thin: int = 4
    adapt: bool = True
    precondition: bool = True
    probes: int = 4
    target_accept: float = 0.574
    temperature: float = 1.0
    output: str = "map"
    seed: int = 0

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"posterior.method must be one of {METHODS}, not {self.method!r}")
        if self.start not in STARTS:
            raise ValueError(f"posterior.start must be one of {STARTS}, not {self.start!r}")
        if self.output not in OUTPUTS:
            raise ValueError(f"posterior.output must be one of {OUTPUTS}, not {self.output!r}")
        if self.samples < 1 or self.thin < 1 or self.burn_in < 0 or self.probes < 1:
            raise ValueError("posterior: samples >= 1, thin >= 1, burn_in >= 0 and probes >= 1 are required")
        if not self.step_size > 0 or not self.temperature > 0 or not 0 < self.target_accept < 1:
            raise ValueError("posterior: step_size > 0, temperature > 0 and 0 < target_accept < 1 are required")

    @property
    def steps(self) -> int:
        """Langevin steps of one chain (each one energy and gradient evaluation of its batch)."""
        return self.burn_in + self.samples * self.thin
