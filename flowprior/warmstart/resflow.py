"""ResFlow (Qin, Luo et al., "Reversing Flow for Image Restoration", CVPR 2025, arXiv 2506.16961) at pixel scale:
an ODE on the augmented state ``z = [x; y]`` from the degraded image (t = 1) to the clean one (t = 0).

**What the paper defines** (§3, Method; in our words and symbols; read from two public summaries of the paper,
since the stored arXiv page exposes only its abstract and introduction: the section and table numbers are theirs):

* Augmented degradation flow (§3, with its Proposition 1): a deterministic ODE ``dz/dt = v(z, t)`` keeps the
  mutual information between ``z_t`` and the clean image constant, while degradation loses it; the auxiliary
  variable ``y`` is appended to the image ``x`` to make the degradation flow reversible. The end points are
  ``z_0 = [HQ; y_0]`` with ``y_0 = 0`` and ``z_1 = [LQ; y_1]`` with ``y_1 ~ N(0, I)``, drawn independently of
  the image pair in training.
* Paths (§3, "entropy-preserving" schedule): ``z_t = α_t·z_0 + σ_t·z_1`` per component, with
  ``α_0 = σ_1 = 1`` and ``α_1 = σ_0 = 0`` required of a path. Image: ``α_x = 1 − t``, ``σ_x = t`` (a straight
  line). Auxiliary: ``σ_y(t) = β/(1 − t + β)``, ``α_y = 1 − σ_y``, β = 10. Because ``y_0 = 0``, the
  auxiliary path is ``y_t = σ_y(t)·y_1``.
* Velocity matching (§3): minimize ``E ∫ λ(t)·‖v_θ(x_t, y_t, t) − ż_t‖² dt`` with the target
  ``ż_t = [LQ − HQ; σ_y′(t)·y_1]``, ``σ_y′(t) = β/(1 − t + β)²`` (no ODE simulated in training), weighted by
  ``λ(t) = (cos(π(t − 2)/2) + 1)^γ = (1 − cos(πt/2))^γ``, γ = 1.75 (more weight near the degraded end).
* Inference (§3 and §4): start at ``z_1 = [LQ; y_1]``, ``y_1 ~ N(0, I)``, integrate the learned field over 4
  uniform steps to t = 0 and keep ``x̂_0``; y moves with its own predicted velocity. The network is a U-Net with
  time in adaptive normalization; the paper's ablation (Table 5) compares a Gaussian against a constant y,
  the entropy-preserving against a constant schedule, and adaptor / addition / concatenation as the way y enters.

**Here.** The network outputs 6 channels, ``[dx/dt; dy/dt]``; y enters through the U-Net's zero-initialized
adaptor (:class:`~flowprior.warmstart.unet.TimeUNet`) or is concatenated to the input
(:class:`~flowprior.warmstart.leannet.LeanUNet`). The loss is ``λ(t)·(mse_x + mse_y)`` per sample, the
paper's squared norm up to a factor of 2 (both halves at the weight the paper gives them; the x half at the
same scale as the ablation's whole loss). The sampler integrates ``z = [x; y]`` by Euler from t = 1 to 0
(:func:`~flowprior.warmstart.samplers.euler_sample` on the 6-channel state), so y at each step is what the
network moved it to, not a formula. The degradation maps (``cond``) reach the network as for every warm start.

**Reading of σ_y(0).** The paper says ``y_0 = 0`` and prints ``σ_y(t) = β/(1 − t + β)``, which is
``β/(1 + β) = 10/11`` at t = 0, not the 0 a path needs there. We read ``y_0 = 0`` as the anchor of the
interpolation (the y part of ``z_0``, multiplied by ``α_y``, so it drops out) and the path as printed:
``y_t = σ_y(t)·y_1`` runs from ``y_1`` at t = 1 to ``(10/11)·y_1`` at t = 0 and never reaches its anchor.
Reasons: the printed formula is the only precise statement; a renormalized schedule that hits 0 would be our
invention, and a y that collapses to 0 has no entropy left, against the schedule's stated purpose; and y at
t = 0 is discarded (only ``x̂_0`` is returned). With the formula as printed, y's target velocity is
``σ_y′(t)·y_1 = y_t/(1 − t + β)``, between 0.083·y_1 and 0.1·y_1: y moves by ~9 % of its size over the whole
flow. ``tests/test_resflow.py`` pins ``σ_y(0) = 10/11``, ``σ_y(1) = 1`` and the rate.

**What y can and cannot carry.** In the paper's training coupling ``y_1`` is independent of (HQ, LQ) and
``y_t`` is a function of ``y_1`` and t alone, so at the optimum of the loss the x velocity is
``E[LQ − HQ | x_t]`` (y tells it nothing) and the y velocity is ``y_t/(1 − t + β)`` (x tells it nothing), for
any σ_y schedule. Whatever y does for a trained network of finite size has to be measured, not assumed.

**Ablation.** ``augmented: false`` drops y: no y input, no y output, the same network as a plain LQ → HQ flow
(deterministic). Its checkpoints are unchanged by the move to the paper's formulation; augmented checkpoints
of the old formulation (an x-only output with y recomputed as ``σ_y(t)·y_1`` at every step) are refused with a
message saying so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from flowprior.errors import UsageError
from flowprior.warmstart.base import register_initializer
from flowprior.warmstart.learned import (
    LearnedInitializer,
    WarmStartModel,
    balance_weights,
    broadcast_time,
    gaussian_like,
    register_method,
    train_command,
    uniform_times_like,
)
from flowprior.warmstart.network import VelocityNetConfig
from flowprior.warmstart.samplers import euler_sample, uniform_times

IMAGE_CHANNELS = 3  # x (the prepared input is always RGB) and, when augmented, y has as many


def sigma_y(t: Tensor | float, beta: float = 10.0) -> Tensor:
    """ResFlow's scale of the auxiliary variable, ``σ_y(t) = β / (1 − t + β)`` (as printed; σ_y(0) = β/(1+β)).

    Example:
        >>> round(float(sigma_y(0.0)), 12), float(sigma_y(1.0))  # 10/11 and 1
        (0.909090909091, 1.0)
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    return beta / (1.0 - t + beta)


def sigma_y_rate(t: Tensor | float, beta: float = 10.0) -> Tensor:
    """``dσ_y/dt = β / (1 − t + β)²``: y's target velocity is this times ``y_1`` (float64).

    Example:
        >>> round(float(sigma_y_rate(0.0)), 12), float(sigma_y_rate(1.0))  # 10/121 and 1/10
        (0.082644628099, 0.1)
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    return beta / (1.0 - t + beta) ** 2


def auxiliary_path(y1: Tensor, t: Tensor, beta: float) -> tuple[Tensor, Tensor]:
    """``(y_t, dy_t/dt) = (σ_y(t)·y_1, σ_y′(t)·y_1)`` for per-sample times t of shape (B,), in y_1's dtype."""
    scale = broadcast_time(sigma_y(t, beta).to(device=y1.device, dtype=y1.dtype))
    rate = broadcast_time(sigma_y_rate(t, beta).to(device=y1.device, dtype=y1.dtype))
    return scale * y1, rate * y1


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
    augmented: bool = True  # False: the plain LQ -> HQ flow ablation (no y in, no y out)

    def __post_init__(self):
        super().__post_init__()
        if self.beta <= 0 or self.steps < 1:
            raise ValueError("beta must be > 0 and steps >= 1")

    @property
    def aux_channels(self) -> int:
        return IMAGE_CHANNELS if self.augmented else 0

    def velocity_net(self) -> nn.Module:
        """The shared network with y as its auxiliary input and y's velocity as 3 more output channels."""
        return self.unet(in_channels=IMAGE_CHANNELS, aux_channels=self.aux_channels,
                         out_channels=IMAGE_CHANNELS + self.aux_channels)


@register_method
class ResFlow(WarmStartModel):
    """The ResFlow velocity network on ``[x; y]`` and its Euler sampler."""

    method = "resflow"
    config_class = ResFlowConfig

    def __init__(self, config: ResFlowConfig):
        super().__init__(config)
        self.net = config.velocity_net()

    def velocity(self, z: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """``dz/dt`` at the state ``z`` (B, 6, H, W) = ``[x; y]``, or ``dx/dt`` at x (B, 3, H, W) when not
        augmented, given the degradation maps ``cond``."""
        if not self.config.augmented:
            return self.net(z, t, cond=cond)
        return self.net(z[:, :IMAGE_CHANNELS], t, z[:, IMAGE_CHANNELS:], cond=cond)

    def loss_terms(self, hq: Tensor, lq: Tensor, generator: torch.Generator,
                   phase: str = "main", cond: Tensor | None = None) -> dict[str, Tensor]:
        t = 1.0 - uniform_times_like(hq, generator)  # [0, 1)
        z_t = (1 - broadcast_time(t)) * hq + broadcast_time(t) * lq
        target = lq - hq
        if self.config.augmented:
            y_t, y_rate = auxiliary_path(gaussian_like(hq, generator), t, self.config.beta)
            z_t, target = torch.cat([z_t, y_t], 1), torch.cat([target, y_rate], 1)
        error = (self.velocity(z_t, t, cond) - target).square()
        mse_x = error[:, :IMAGE_CHANNELS].flatten(1).mean(1)
        weight = resflow_loss_weight(t, self.config.weight_power)
        if self.config.loss_balance:  # weights from the image's error, so λ(t) keeps its meaning
            weight = weight * balance_weights(mse_x, self.config.loss_balance, self.config.loss_floor)
        terms = {"mse": mse_x.mean().detach()}
        total = mse_x
        if self.config.augmented:
            mse_y = error[:, IMAGE_CHANNELS:].flatten(1).mean(1)
            terms["mse_y"] = mse_y.mean().detach()
            total = mse_x + mse_y
        terms["loss"] = (weight * total).mean()
        return terms

    def restore(self, lq: Tensor, generator: torch.Generator, cond: Tensor | None = None) -> Tensor:
        z = lq
        if self.config.augmented:
            z = torch.cat([lq, gaussian_like(lq, generator)], 1)  # z_1 = [LQ; y_1]
        times = uniform_times(self.config.steps, 1.0, 0.0)
        return euler_sample(lambda state, t: self.velocity(state, t, cond), z, times)[:, :IMAGE_CHANNELS]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Refuse, with the fix, augmented weights of the old formulation (no y output): their network
        predicted dx/dt only and expected y recomputed at every step."""
        found = state_dict.get("net.out.weight")
        expected = self.net.out.weight.shape[0]
        if self.config.augmented and found is not None and found.shape[0] != expected:
            raise UsageError(
                f"this ResFlow checkpoint predates the paper's formulation (its network outputs {found.shape[0]} "
                f"channels, not {expected}: no velocity for y, which was recomputed instead of integrated); "
                f"retrain it with `{train_command('resflow')}` (checkpoints trained with "
                f"resflow.augmented=false still load)")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


@register_initializer("resflow")
class ResFlowInitializer(LearnedInitializer):
    """Warm start from a trained ResFlow checkpoint (``checkpoint=PATH``)."""

    name = "resflow"
