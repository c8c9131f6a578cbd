"""Langevin dynamics over a batch of independent chains (one per tile): ULA and MALA.

A step moves every chain by ``u' = u - h ∇U(u) + sqrt(2h) ξ`` with ``U = E / temperature`` (or, preconditioned by
a fixed positive diagonal G, ``u' = u - h G ∇U(u) + sqrt(2h G) ξ``). MALA (Roberts &
Tweedie 1996) accepts ``u'`` with probability ``min(1, exp(log α))``,

    log α = U(u) - U(u') + log q(u | u') - log q(u' | u),    log q(b | a) = -‖b - a + h ∇U(a)‖² / (4h),

so the chain's stationary law is exactly ``exp(-U)``; ULA accepts every finite proposal and is biased by O(h).
The energies of one step differ by far less than their size (a tile's energy is a sum over ~10⁴ pixels), so the
ratio is formed in float64. A proposal whose energy, gradient or image is not finite is rejected whatever the
method: no NaN enters a chain.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from flowprior.posterior.config import PosteriorSection

#: ``potential(z) -> (E (B,), ∇E per latent, decoded image (B, C, P, P))`` for a batch of independent chains
Potential = Callable[[list[Tensor]], tuple[Tensor, list[Tensor], Tensor]]


@dataclass
class ChainState:
    """Where every chain is: latents, ``U = E / temperature`` (float64, +inf where not finite), ∇U, the image."""

    z: list[Tensor]
    energy: Tensor
    grads: list[Tensor]
    image: Tensor


@dataclass
class ChainStats:
    """Per chain: acceptance rate of the kept phase (after burn-in), final step size; non-finite rejections."""

    acceptance: Tensor
    step_size: Tensor
    nonfinite: int


def _per_chain(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape((-1,) + (1,) * (like.ndim - 1))


def evaluate(potential: Potential, z: list[Tensor], temperature: float) -> ChainState:
    """The state at ``z``; a chain whose energy, gradient or image is not finite gets ``U = +inf``, ∇U = 0."""
    energy, grads, image = potential(z)
    energy = energy.to(torch.float64) / temperature
    finite = torch.isfinite(energy) & torch.isfinite(image).flatten(1).all(1)
    for g in grads:
        finite &= torch.isfinite(g).flatten(1).all(1)
    grads = [torch.where(_per_chain(finite, g), g / temperature, torch.zeros_like(g)) for g in grads]
    energy = torch.where(finite, energy, torch.full_like(energy, math.inf))
    return ChainState(z, energy, grads, image)


#: a fixed diagonal preconditioner G, one positive tensor per latent level (None: the identity)
Preconditioner = list[Tensor] | None


def _diagonal(preconditioner: Preconditioner, z: list[Tensor]) -> list[Tensor]:
    return [torch.ones_like(zi) for zi in z] if preconditioner is None else preconditioner


def propose(state: ChainState, h: Tensor, generator: torch.Generator,
            preconditioner: Preconditioner = None) -> list[Tensor]:
    """``u - h G ∇U(u) + sqrt(2h G) ξ`` per chain (h: (B,) float64; G diagonal, fixed)."""
    out = []
    for z, g, scale in zip(state.z, state.grads, _diagonal(preconditioner, state.z)):
        noise = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        step = _per_chain(h, z).to(z.dtype) * scale
        out.append(z - step * g + (2 * step).sqrt() * noise)
    return out


def log_transition(to: list[Tensor], start: ChainState, h: Tensor, preconditioner: Preconditioner = None) -> Tensor:
    """``log q(to | start) = -Σ (to - start + h G ∇U)² / (4 h G)`` up to a constant common to both directions,
    (B,) float64."""
    total = torch.zeros_like(h)
    for b, a, g, scale in zip(to, start.z, start.grads, _diagonal(preconditioner, to)):
        step = _per_chain(h, b) * scale.double()
        drift = b.double() - a.double() + step * g.double()
        total = total + (drift.pow(2) / step).flatten(1).sum(1)
    return -total / 4


def mala_log_ratio(current: ChainState, proposal: ChainState, h: Tensor,
                   preconditioner: Preconditioner = None) -> Tensor:
    """log α of the Metropolis-Hastings test, (B,) float64 (NaN or -inf where the proposal is not finite)."""
    reverse = log_transition(current.z, proposal, h, preconditioner)
    forward = log_transition(proposal.z, current, h, preconditioner)
    return current.energy - proposal.energy + reverse - forward


def _select(accept: Tensor, new: Tensor, old: Tensor) -> Tensor:
    return torch.where(_per_chain(accept, new), new, old)


def langevin_step(potential: Potential, state: ChainState, h: Tensor, config: PosteriorSection,
                  generator: torch.Generator,
                  preconditioner: Preconditioner = None) -> tuple[ChainState, Tensor, Tensor]:
    """One ULA or MALA step of every chain: (new state, acceptance probability (B,), non-finite proposals (B,))."""
    proposal = evaluate(potential, propose(state, h, generator, preconditioner), config.temperature)
    finite = torch.isfinite(proposal.energy)
    if config.method == "mala":
        log_alpha = mala_log_ratio(state, proposal, h, preconditioner)
        log_alpha = torch.where(finite & ~torch.isnan(log_alpha), log_alpha, torch.full_like(log_alpha, -math.inf))
        uniform = torch.rand(h.shape, generator=generator, dtype=torch.float64, device=h.device)
        accept = uniform.log() < log_alpha
        probability = log_alpha.clamp(max=0).exp()
    else:
        accept = finite
        probability = finite.to(torch.float64)
    new = ChainState(
        z=[_select(accept, b, a) for b, a in zip(proposal.z, state.z)],
        energy=torch.where(accept, proposal.energy, state.energy),
        grads=[_select(accept, b, a) for b, a in zip(proposal.grads, state.grads)],
        image=_select(accept, proposal.image, state.image),
    )
    return new, probability, ~finite


def run_chains(potential: Potential, z0: list[Tensor], config: PosteriorSection, generator: torch.Generator,
               keep: Callable[[int, Tensor], None], preconditioner: Preconditioner = None) -> ChainStats:
    """Run ``config.steps`` Langevin steps from ``z0`` and hand every kept state's image to ``keep(k, image)``.

    During the burn-in of an adaptive MALA each chain's ``log h`` moves by ``(a - target) / sqrt(t + 1)`` (a: the
    step's acceptance probability), a Robbins-Monro step towards the target rate; it is frozen afterwards.

    Args:
        potential: the energy, its gradient and the decoded image of a batch of latents.
        z0: the start (the MAP latents), never changed.
        config: method, step size, burn-in, thinning, number of samples, temperature.
        generator: the only source of randomness.
        keep: called with ``k = 0 .. samples - 1`` and the (B, C, P, P) image of the chain states kept.
        preconditioner: a fixed diagonal G (:mod:`flowprior.posterior.preconditioner`), or None.
    """
    state = evaluate(potential, [z.detach().clone() for z in z0], config.temperature)
    h = torch.full(state.energy.shape, float(config.step_size), dtype=torch.float64, device=state.energy.device)
    accepted = torch.zeros_like(h)
    nonfinite = 0
    adapt = config.adapt and config.method == "mala"
    for t in range(config.steps):
        state, probability, bad = langevin_step(potential, state, h, config, generator, preconditioner)
        nonfinite += int(bad.sum())
        if t < config.burn_in:
            if adapt:
                h = h * torch.exp((probability - config.target_accept) / math.sqrt(t + 1))
            continue
        accepted += probability
        done = t + 1 - config.burn_in
        if done % config.thin == 0:
            keep(done // config.thin - 1, state.image)
    return ChainStats(accepted / (config.samples * config.thin), h, nonfinite)
