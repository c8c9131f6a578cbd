"""The per-tile MAP energy ``E(u) = λ·‖m ⊙ (A(T(u)) − x̂)‖² − w·log p(T(u))``.

Shapes: every term is (B,) over tiles, so all tiles of an image are one batch and one backward pass solves them
independently (the gradient of the sum separates by tile). The squared error is a *sum* over pixels of the
[0, 1]-scaled image, like the log-likelihood, so λ plays the role of 1 / (2σ²) of a Gaussian likelihood.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowprior.prior.base import Prior

PRIOR_TERMS = ("flow", "latent")


@dataclass
class Energy:
    """The objective for a batch of tiles.

    Args:
        observed: x̂, (B, C, P, P) degraded tiles.
        mask: (B, 1, P, P) with 1 where a pixel enters the data term, or None for all pixels.
        forward: A, the data term's model of the degradation (identity for the paper's formulation, or the
            degradation's differentiable ``forward_model`` with each tile's params).
        weight: λ, a number or a (B,) tensor (one per tile, e.g. matched to each tile's noise level).
        prior_term: ``"flow"`` — the flow's full ``-log p(T(u)) = -log N(u) + log|det ∂T/∂u|`` (paper); or
            ``"latent"`` — ``-log N(u)`` only (cheaper: no log-determinant bookkeeping, same decode).
    """

    observed: Tensor
    mask: Tensor | None
    forward: Callable[[Tensor], Tensor] | None
    weight: float | Tensor
    prior_term: str = "flow"

    def __post_init__(self):
        if self.prior_term not in PRIOR_TERMS:
            raise ValueError(f"prior_term must be one of {PRIOR_TERMS}, not {self.prior_term!r}")

    def data_term(self, x: Tensor) -> Tensor:
        predicted = x if self.forward is None else self.forward(x)
        residual = predicted - self.observed
        if self.mask is not None:
            residual = residual * self.mask
        return residual.pow(2).flatten(1).sum(1)

    def __call__(self, prior: Prior, z: list[Tensor], prior_weight: float = 1.0) -> tuple[Tensor, Tensor]:
        """Return (energy (B,), decoded image (B, C, P, P))."""
        if self.prior_term == "flow":
            x, logdet_decode = prior.decode(z, return_logdet=True)
            negative_log_prior = -prior.latent_log_prob(z) + logdet_decode
        else:
            x = prior.decode(z)
            negative_log_prior = -prior.latent_log_prob(z)
        return self.weight * self.data_term(x) + prior_weight * negative_log_prior, x


def energy_and_grad(energy: Energy, prior: Prior, z: list[Tensor], free: list[int],
                    prior_weight: float = 1.0) -> tuple[Tensor, list[Tensor], Tensor]:
    """The energy of every tile and its gradient with respect to the latents ``z[i]``, ``i in free``.

    One definition of "value and gradient" shared by the MAP solver and the posterior sampler
    (:mod:`flowprior.posterior`), whose log-density is ``-E``. A latent the energy does not depend on gets a zero
    gradient. ``z`` is not changed (its ``requires_grad`` flags are restored).

    Returns:
        (energy (B,) detached, gradients (like ``z[i]``), decoded image (B, C, P, P) detached).
    """
    variables = [z[i] for i in free]
    for v in variables:
        v.requires_grad_(True)
    try:
        values, x = energy(prior, z, prior_weight)
        grads = torch.autograd.grad(values.sum(), variables, allow_unused=True)
    finally:
        for v in variables:
            v.requires_grad_(False)
    grads = [torch.zeros_like(v) if g is None else g for v, g in zip(variables, grads)]
    return values.detach(), grads, x.detach()
