"""A fixed diagonal preconditioner for the Langevin chains: the inverse Gauss-Newton curvature at the start.

Why: in the latent space the posterior is very unevenly scaled. Latents of observed pixels are pinned by the data
term (curvature ``2λ JᵀJ``, J the decoder's Jacobian through the forward model and mask), latents inside holes only
by the N(0, I) prior (curvature 1). One step size for all makes MALA take steps small enough for the first, so the
second barely move within a few dozen steps and the std inside holes comes out far too small. With
``G = 1 / (w + 2λ diag(JᵀJ))`` every latent moves on its own scale.

``diag(JᵀJ)`` is estimated by Hutchinson-style probes: for Rademacher ``v`` in image space, ``E[(Jᵀv)²] =
diag(JᵀJ)`` exactly, each probe one vector-Jacobian product. G is computed once, at the MAP latents, and then kept
fixed, so MALA stays exact with it (a position-dependent G would need extra terms in the acceptance ratio).
The log-determinant part of a ``"flow"`` prior term is left out of the curvature (it only changes how well G fits).
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowprior.prior.base import Prior
from flowprior.solver import Energy


def tile_weight(energy: Energy, like: Tensor) -> Tensor | float:
    """The data term's weight λ, per tile (a (B,) tensor broadcast to ``like``, in its dtype) or one float."""
    weight = energy.weight
    if not isinstance(weight, Tensor):
        return weight
    return weight.reshape((-1,) + (1,) * (like.ndim - 1)).to(like.dtype)


def masked_prediction(energy: Energy, prior: Prior, z: list[Tensor]) -> tuple[list[Tensor], Tensor]:
    """``(z', m ⊙ H(T(z')))`` with ``z'`` a differentiable copy of ``z`` (call under ``torch.enable_grad``):
    the data term's prediction whose Jacobian J the Gauss-Newton curvature ``2λ JᵀJ`` is made of."""
    z = [zi.detach().clone().requires_grad_(True) for zi in z]
    x = prior.decode(z)
    predicted = x if energy.forward is None else energy.forward(x)
    if energy.mask is not None:
        predicted = predicted * energy.mask
    return z, predicted


def gauss_newton_preconditioner(energy: Energy, prior: Prior, z: list[Tensor], generator: torch.Generator,
                                probes: int = 4, prior_weight: float = 1.0) -> list[Tensor]:
    """``G = 1 / (w + 2λ diag(JᵀJ))`` at the latents ``z`` (not changed), one tensor per level.

    Args:
        energy: the tiles' energy; its forward model, mask and weight λ define J.
        prior: the flow (decoder T).
        z: where to linearize (the MAP latents).
        generator: draws the probes.
        probes: vector-Jacobian products averaged.
        prior_weight: w, the prior term's weight (its curvature in the standardized latents).
    """
    with torch.enable_grad():
        z, predicted = masked_prediction(energy, prior, z)
        squares = [torch.zeros_like(zi) for zi in z]
        for k in range(probes):
            v = torch.randint(0, 2, predicted.shape, generator=generator, device=predicted.device)
            v = (2 * v - 1).to(predicted.dtype)
            grads = torch.autograd.grad(predicted, z, grad_outputs=v, retain_graph=k + 1 < probes, allow_unused=True)
            squares = [s + (0 if g is None else g.detach() ** 2) for s, g in zip(squares, grads)]
    out = []
    for zi, s in zip(z, squares):
        curvature = (prior_weight + 2 * tile_weight(energy, zi) * s / probes).clamp(min=1e-3)
        out.append(torch.nan_to_num(1 / curvature, nan=1.0, posinf=1.0).detach())
    return out
