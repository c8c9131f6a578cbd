"""Draws of the full Gauss-Newton Laplace approximation around the MAP, by a perturbed linear solve.

Why not the diagonal one: the data term pins *combinations* of latents (the mean brightness of a patch is known
to ``σ / sqrt(n)`` from its n noisy pixels, and the flow's coarse latents all move it), not single latents. The
diagonal approximation ``N(u, T G)``, ``G = 1 / diag(H)``, gives every latent its *conditional* variance: too wide
along the pinned combinations (which MALA's burn-in then shrinks) and too narrow along the combinations the data
cannot see, e.g. a change of a hole's content that leaves its observed border alone. Those are the directions of
the uncertainty about what a hole hides; a short chain whose step is set by the pinned directions never opens them.

The linearized posterior of ``exp(-E / T)`` at the MAP latents ``u`` is ``N(u, T H⁻¹)`` with the Gauss-Newton
precision ``H = w I + 2λ Jᵀ J`` (J: the Jacobian of ``mask ⊙ A(T(u))``, w: the prior term's weight). With
``ξ₁ ~ N(0, I)`` in latent space and ``ξ₂ ~ N(0, I)`` in image space, ``b = sqrt(w) ξ₁ + sqrt(2λ) Jᵀ ξ₂`` has
covariance H, so ``δ = sqrt(T) H⁻¹ b`` is an exact draw of ``N(0, T H⁻¹)`` ("perturb, then solve"). ``H δ = b``
is solved by conjugate gradients preconditioned with G; each iteration is one Jacobian-vector product (a double
backward) and one vector-Jacobian product through the decode at the MAP. Truncated after ``iterations``, the
draw is that of a Krylov approximation; MALA's burn-in and its exact acceptance test then move it towards the
posterior itself. In pixel space this is the Gaussian-process conditional with the flow's local prior
covariance ``J Jᵀ``: a hole gets the prior's spread minus what its observed border explains.
The log-determinant part of a ``"flow"`` prior term is left out of H, as in the diagonal preconditioner.
"""

from __future__ import annotations

import torch
from torch import Tensor

from flowprior.posterior.preconditioner import masked_prediction, tile_weight
from flowprior.prior.base import Prior
from flowprior.solver import Energy


def _dot(a: list[Tensor], b: list[Tensor]) -> Tensor:
    """Per-chain inner product over all latent levels, (B,) float64."""
    return sum((ai.double() * bi.double()).flatten(1).sum(1) for ai, bi in zip(a, b))


def _scale(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape((-1,) + (1,) * (like.ndim - 1)).to(like.dtype)


def gauss_newton_draw(energy: Energy, prior: Prior, z: list[Tensor], preconditioner: list[Tensor],
                      generator: torch.Generator, temperature: float = 1.0, iterations: int = 8,
                      prior_weight: float = 1.0) -> list[Tensor]:
    """``z + sqrt(T) H⁻¹ b``: a draw of the Gauss-Newton Laplace approximation of ``exp(-E / T)`` around ``z``.

    Args:
        energy: the chains' energy (one row per chain); its forward model, mask and weight λ define J.
        prior: the flow (decoder T).
        z: where to linearize, one row per chain (the MAP latents, repeated per copy); not changed.
        preconditioner: G, the inverse diagonal of H (:func:`gauss_newton_preconditioner`), like ``z``.
        generator: draws ξ₁ and ξ₂.
        temperature: T of the target ``exp(-E / T)``.
        iterations: conjugate-gradient iterations (each one JVP and one VJP per chain).
        prior_weight: w.

    Returns:
        New latents; a chain whose solve is not finite falls back to the diagonal draw ``z + sqrt(T G) ξ₁``.
    """
    with torch.enable_grad():
        z, predicted = masked_prediction(energy, prior, z)
        two_lambda = 2 * tile_weight(energy, predicted)
        # Jᵀ d as a function of a dummy d, kept differentiable: its gradient in d along v is J v (double backward)
        dual = torch.zeros_like(predicted, requires_grad=True)
        transposed = torch.autograd.grad(predicted, z, grad_outputs=dual, create_graph=True)

        def jt(w: Tensor) -> list[Tensor]:
            return [g.detach() for g in torch.autograd.grad(predicted, z, grad_outputs=w, retain_graph=True)]

        def jvp(v: list[Tensor]) -> Tensor:
            return torch.autograd.grad(transposed, dual, grad_outputs=v, retain_graph=True)[0].detach()

        def hessian(v: list[Tensor]) -> list[Tensor]:
            return [prior_weight * vi + g for vi, g in zip(v, jt(two_lambda * jvp(v)))]

        xi = [torch.randn(zi.shape, generator=generator, dtype=zi.dtype, device=zi.device) for zi in z]
        pixel_noise = torch.randn(predicted.shape, generator=generator, dtype=predicted.dtype,
                                  device=predicted.device)
        rhs = [prior_weight ** 0.5 * a + g for a, g in zip(xi, jt(two_lambda ** 0.5 * pixel_noise))]
        solution = _conjugate_gradients(hessian, rhs, preconditioner, iterations)
    out = []
    finite = torch.ones(z[0].shape[0], dtype=torch.bool, device=z[0].device)
    for s in solution:
        finite &= torch.isfinite(s).flatten(1).all(1)
    for zi, s, g, a in zip(z, solution, preconditioner, xi):
        diagonal = g.sqrt() * a  # the diagonal Laplace draw, should the solve fail
        step = torch.where(_scale(finite, s).bool(), s, diagonal)
        out.append(zi.detach() + temperature ** 0.5 * step)
    return out


def _conjugate_gradients(hessian, rhs: list[Tensor], preconditioner: list[Tensor], iterations: int) -> list[Tensor]:
    """Preconditioned CG for ``H x = b``, every chain its own system (batched), from x = 0."""
    x = [torch.zeros_like(r) for r in rhs]
    residual = [r.clone() for r in rhs]
    preconditioned = [g * r for g, r in zip(preconditioner, residual)]
    direction = [p.clone() for p in preconditioned]
    rz = _dot(residual, preconditioned)
    for _ in range(iterations):
        product = hessian(direction)
        curvature = _dot(direction, product)
        alpha = torch.where(curvature > 0, rz / curvature, torch.zeros_like(rz))
        x = [xi + _scale(alpha, xi) * d for xi, d in zip(x, direction)]
        residual = [r - _scale(alpha, r) * p for r, p in zip(residual, product)]
        preconditioned = [g * r for g, r in zip(preconditioner, residual)]
        rz_next = _dot(residual, preconditioned)
        beta = torch.where(rz > 0, rz_next / rz, torch.zeros_like(rz))
        direction = [p + _scale(beta, p) * d for p, d in zip(preconditioned, direction)]
        rz = rz_next
    return x
