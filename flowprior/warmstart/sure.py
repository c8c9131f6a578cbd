"""Give a learned warm start back as much of its input as Stein's unbiased risk estimate (SURE) says it should.

For ``y = x + n`` with white Gaussian noise of variance ``v`` per value and a weakly differentiable estimate
``f(y)``, ``SURE(f) = ‖f(y) − y‖² − N v + 2 v div f(y)`` is an unbiased estimate of ``‖f(y) − x‖²`` that
needs no clean image (Stein 1981). On the blend ``x_α = y + α (f(y) − y)``, ``div x_α = (1 − α) N + α D``
with ``D = div f(y)``, so ``SURE(x_α) = α² R − N v + 2 v ((1 − α) N + α D)`` with ``R = ‖f(y) − y‖²``, which is
least at ``α* = v (N − D) / R``, clipped to [0, 1].

Why: a network trained on σ 0–50 removes some detail with light noise. At σ 1 on a 128² astronaut crop the
8-orientation warm start lost 0.67 dB against its input; with α* it gains 0.65 dB. On 16 validation crops
(128², the training pool's held-out photos) the blend gained +0.80 dB at σ 1, +0.28 at σ 2, +0.11 at σ 5, +0.02 at
σ 10 and nothing at σ 25 and 50 (α* = 1 there: the network is left as it is). One α per network pass (the whole
image, or one block with its halo) did better on validation than α per 16–64 px block at σ ≥ 5 (the block
estimates are noisier), and keeps the values of a window independent of where it is computed (flowprior.warm_bands).

``D`` comes from one Monte-Carlo probe (Ramani, Blu and Unser 2008): ``D ≈ bᵀ (f(y + ε b) − f(y)) / ε`` with
``b ~ N(0, I)``, on the network *without* the self-ensemble: its divergence matched the 8-orientation ensemble's
within 1–4 % on the validation crops, so the blend costs one single pass on top of the ensemble's eight (``f(y)``
is the ensemble's own first orientation, flowprior.warmstart.ensemble.ensemble_passes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: ε on the [0, 1] scale: small against every σ it is used at, large against the network's float32 rounding
PROBE_STEP = 1e-3
#: the probe is drawn afresh for every pass from this seed, so a window's blend does not depend on what ran before
PROBE_SEED = 0
#: how many noise stds inside [0, 1] a value's estimate must lie for SURE to count it (:func:`away_from_the_bounds`)
SURE_MARGIN = 2.0


@dataclass(frozen=True)
class Probe:
    """One Monte-Carlo probe of an estimator ``f`` at ``y``: the direction ``b ~ N(0, I)``, ``f(y)`` and
    ``f(y + ε b)`` (ε = :data:`PROBE_STEP`), kept so that an estimate built on ``f`` can be probed along the same
    direction without running ``f`` again (:mod:`flowprior.warmstart.wiener`)."""

    direction: Tensor
    at_y: Tensor
    moved: Tensor

    @property
    def divergence(self) -> Tensor:
        """(B,) ``bᵀ (f(y + ε b) − f(y)) / ε``, float64."""
        return divergence_along(self.direction, self.at_y, self.moved)


def divergence_along(direction: Tensor, at_y: Tensor, moved: Tensor, values: Tensor | None = None,
                     step: float = PROBE_STEP) -> Tensor:
    """(B,) the Monte-Carlo divergence ``bᵀ (g(y + ε b) − g(y)) / ε`` of any estimate ``g`` from its two values,
    ``ε`` = ``step``; with a 0/1 ``values`` mask, the part of it on those values."""
    change = (moved - at_y).to(torch.float64) * direction.to(torch.float64)
    if values is not None:
        change = change * values
    return change.flatten(1).sum(1) / step


def probe(f: Callable[[Tensor], Tensor], y: Tensor, fy: Tensor) -> Probe:
    """Probe ``f`` at ``y`` (``fy = f(y)``) along a direction drawn from :data:`PROBE_SEED`."""
    b = torch.randn(y.shape, generator=torch.Generator().manual_seed(PROBE_SEED), dtype=torch.float32).to(y)
    return Probe(b, fy, f(y + PROBE_STEP * b))


def probe_divergence(f: Callable[[Tensor], Tensor], y: Tensor, fy: Tensor) -> Tensor:
    """(B,) Monte-Carlo estimate of ``div f`` at ``y`` (``fy = f(y)``), float64."""
    return probe(f, y, fy).divergence


def away_from_the_bounds(estimate: Tensor, variance: Tensor) -> Tensor:
    """(B, C, H, W) float64 0/1: the values whose ``estimate`` lies more than :data:`SURE_MARGIN` noise stds inside
    [0, 1]. A stored image clips its noise at 0 and 1, which SURE's Gaussian model does not know: near the bounds
    the clipped noise reads as an error the estimate does not have, so weights are chosen on these values alone."""
    margin = SURE_MARGIN * variance.to(torch.float64).reshape(-1, 1, 1, 1).sqrt()
    x = estimate.to(torch.float64)
    return ((x > margin) & (x < 1 - margin)).to(torch.float64)


def sure_weight_between(y: Tensor, a: Tensor, b: Tensor, divergence_a: Tensor, divergence_b: Tensor,
                        variance: Tensor, fallback: float, values: Tensor | None = None) -> Tensor:
    """(B,) the β in [0, 1] whose blend ``a + β (b − a)`` of two estimates of the clean image from ``y`` has the
    least SURE: ``β* = −(⟨a − y, b − a⟩ + v (D_b − D_a)) / ‖b − a‖²`` (the derivative of ``‖a − y + β (b − a)‖² +
    2 v ((1 − β) D_a + β D_b)``); ``fallback`` where it is undefined (``a == b``, non-finite). With a 0/1 ``values``
    mask the sums run over those values only (the divergences must be their parts on the same values)."""
    a64, d = a.to(torch.float64), (b.to(torch.float64) - a.to(torch.float64))
    weight = torch.ones_like(d) if values is None else values.to(torch.float64)
    cross = ((a64 - y.to(torch.float64)) * d * weight).flatten(1).sum(1)
    spread = (d.pow(2) * weight).flatten(1).sum(1)
    v = variance.to(torch.float64).reshape(-1)
    beta = -(cross + v * (divergence_b - divergence_a)) / spread
    return torch.where(torch.isfinite(beta), beta, torch.full_like(beta, fallback)).clamp(0.0, 1.0)


def sure_weight(y: Tensor, x0: Tensor, divergence: Tensor, variance: Tensor) -> Tensor:
    """(B,) the SURE-optimal α in [0, 1] (module docstring); 1 where it is undefined (``x0 == y``, non-finite): the
    blend between the input itself (divergence N) and ``x0``. α counts every value, the ones near the bounds included:
    leaving those out (:func:`away_from_the_bounds`) changed the validation crops by ≤ 0.005 dB at σ 1–10, where α
    acts (docs/benchmarks.md "Wiener refinement")."""
    values = torch.full_like(divergence, float(y[0].numel()))
    return sure_weight_between(y, y, x0, values, divergence, variance, fallback=1.0)


def shrink_towards_input(x0: Tensor, y: Tensor, single_pass: Callable[[Tensor], Tensor],
                         variance: Tensor, single_at_y: Tensor | None = None,
                         probed: Probe | None = None) -> tuple[Tensor, Tensor]:
    """(``y + α* (x0 − y)``, α*) for the warm start ``x0`` of ``y``; ``single_pass`` is the network without the
    self-ensemble (for the divergence), ``single_at_y`` its output at ``y`` when the caller has it already (without
    an ensemble it is ``x0``), ``probed`` the probe when the caller has run it, and ``variance`` the (B,) or scalar
    noise variance per value ([0, 1] scale). A new tensor; ``x0`` and ``y`` are not changed."""
    if probed is None:
        probed = probe(single_pass, y, single_pass(y) if single_at_y is None else single_at_y)
    alpha = sure_weight(y, x0, probed.divergence, variance)
    return y + alpha.to(x0.dtype).reshape(-1, 1, 1, 1) * (x0 - y), alpha


def shrunk_divergence(alpha: Tensor, probed: Probe, values: Tensor) -> Tensor:
    """(B,) the divergence, on the 0/1 ``values``, of the SURE blend ``y + α (f(y) − y)`` of the probed network
    ``f``: ``(1 − α) N + α D`` (module docstring), what an estimate blended with it next needs."""
    a64 = alpha.to(torch.float64)
    return (1 - a64) * values.flatten(1).sum(1) + a64 * divergence_along(probed.direction, probed.at_y,
                                                                         probed.moved, values)
