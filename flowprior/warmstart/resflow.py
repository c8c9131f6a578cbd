"""ResFlow (Qin, Luo et al., CVPR 2025) at pixel scale: a flow from the degraded image (t = 1) to the clean
one (t = 0) on an augmented state [x; y].

* ``x_t = (1 − t)·HQ + t·LQ``; the network predicts the velocity ``dx/dt = LQ − HQ``.
* ``y`` is an auxiliary Gaussian variable: ``y₁ ~ N(0, I)``, ``y_t = σ_y(t)·y₁`` with
  ``σ_y(t) = β/(1 − t + β)``, β = 10. It enters through the U-Net's zero-initialized adaptor branch, which
  modulates the encoder features.
* Velocity matching weighted by ``λ(t) = (1 − cos(πt/2))^1.75``.
* Inference: 4 uniform Euler steps from t = 1 (x = LQ) to 0, with ``y_t`` recomputed from the same ``y₁`` at
  every step (y is never integrated).

**Reading of σ_y.** The paper's formula gives ``σ_y(0) = β/(1 + β) = 10/11`` while its text says ``y₀ = 0``.
We implement the formula as printed, because (a) it is the only precise statement, and any "fix"
(renormalizing it to hit 0) would be our invention; (b) the value at t = 0 is never used at inference: Euler
from 1 to 0 evaluates the network at t = 1, 3/4, 1/2, 1/4 only; and (c) y is an input, never a target, so its
endpoint does not enter the loss. ``test_warmstart.py`` pins ``σ_y(0) = 10/11`` and ``σ_y(1) = 1``.

**Ablation.** ``augmented: false`` drops y and the adaptor: the same network as a plain LQ → HQ flow. An
unofficial reproduction found y nearly inert, so this is the control that says whether y earns its keep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from flowprior.warmstart.base import register_initializer
from flowprior.warmstart.learned import (
    LearnedInitializer,
    WarmStartModel,
    broadcast_time,
    gaussian_like,
    register_method,
    uniform_times_like,
)
from flowprior.warmstart.network import VelocityNetConfig
from flowprior.warmstart.samplers import euler_sample, uniform_times


def sigma_y(t: Tensor | float, beta: float = 10.0) -> Tensor:
    """ResFlow's scale of the auxiliary variable, ``σ_y(t) = β / (1 − t + β)`` (as printed; σ_y(0) = β/(1+β)).

    Example:
        >>> round(float(sigma_y(0.0)), 12), float(sigma_y(1.0))  # 10/11 and 1
        (0.909090909091, 1.0)
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    return beta / (1.0 - t + beta)


def resflow_loss_weight(t: Tensor | float, power: float = 1.75) -> Tensor:
    """ResFlow's velocity-matching weight ``λ(t) = (1 − cos(πt/2))^power``: 0 at the clean end, 1 at LQ."""
    t = torch.as_tensor(t)
    return (1.0 - torch.cos(0.5 * math.pi * t)) ** power


@dataclass
class ResFlowConfig(VelocityNetConfig):
    """ResFlow model and sampler settings (stored in checkpoints)."""

    beta: float = 10.0
    weight_power: float = 1.75
    steps: int = 4  # uniform Euler steps at inference
    augmented: bool = True  # False: the plain LQ -> HQ flow ablation (no y, no adaptor)

    def __post_init__(self):
        super().__post_init__()
        if self.beta <= 0 or self.steps < 1:
            raise ValueError("beta must be > 0 and steps >= 1")


@register_method
class ResFlow(WarmStartModel):
    """The ResFlow velocity network and its Euler sampler."""

    method = "resflow"
    config_class = ResFlowConfig

    def __init__(self, config: ResFlowConfig):
        super().__init__(config)
        self.net = config.unet(aux_channels=3 if config.augmented else 0)

    def velocity(self, x: Tensor, t: Tensor, y1: Tensor | None, cond: Tensor | None = None) -> Tensor:
        """dx/dt at (x, t), with ``y_t = σ_y(t)·y₁`` through the adaptor when augmented."""
        aux = None
        if self.config.augmented:
            aux = broadcast_time(sigma_y(t, self.config.beta).to(x.dtype)) * y1
        return self.net(x, t, aux, cond=cond)

    def loss_terms(self, hq: Tensor, lq: Tensor, generator: torch.Generator,
                   phase: str = "main", cond: Tensor | None = None) -> dict[str, Tensor]:
        t = 1.0 - uniform_times_like(hq, generator)  # [0, 1)
        x_t = (1 - broadcast_time(t)) * hq + broadcast_time(t) * lq
        y1 = gaussian_like(hq, generator) if self.config.augmented else None
        error = (self.velocity(x_t, t, y1, cond) - (lq - hq)).square().flatten(1).mean(1)
        weight = resflow_loss_weight(t, self.config.weight_power)
        return {"loss": (weight * error).mean(), "mse": error.mean().detach()}

    def restore(self, lq: Tensor, generator: torch.Generator, cond: Tensor | None = None) -> Tensor:
        y1 = gaussian_like(lq, generator) if self.config.augmented else None
        times = uniform_times(self.config.steps, 1.0, 0.0)
        return euler_sample(lambda x, t: self.velocity(x, t, y1, cond), lq, times)


@register_initializer("resflow")
class ResFlowInitializer(LearnedInitializer):
    """Warm start from a trained ResFlow checkpoint (``checkpoint=PATH``)."""

    name = "resflow"
