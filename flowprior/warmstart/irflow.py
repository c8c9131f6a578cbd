"""IR-Flow at pixel scale: a straight path from the clean image (t = 0) to the degraded one (t = 1), with the
network predicting the *cumulative* displacement.

* ``x_t = t·LQ + (1 − t)·HQ`` over continuous t ∈ (0, 1]; the network predicts ``d = t·(LQ − HQ)`` from
  ``(x_t, t)``. Because ``d`` is the whole way back to HQ scaled by t, any step schedule works:
  ``x ← x − (1 − s′/s)·d`` (:func:`~flowprior.warmstart.samplers.irflow_step`), 1 to 4 steps at inference.
* Multi-step consistency (:func:`multistep_consistency_loss`): K ∈ {2, 3, 4} steps are unrolled from
  ``x_1 = LQ`` — the very path inference takes — and the end point is compared with HQ, weight 0.3. In
  IR-Flow's public code this loss runs under ``no_grad`` and so trains nothing; here gradients flow through
  all K unrolled steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import torch
from torch import Tensor

from flowprior.warmstart.base import register_initializer
from flowprior.warmstart.learned import (
    LearnedInitializer,
    WarmStartModel,
    balanced_mean,
    broadcast_time,
    register_method,
    uniform_times_like,
)
from flowprior.warmstart.network import VelocityNetConfig
from flowprior.warmstart.samplers import Velocity, irflow_sample, irflow_step, uniform_times


@dataclass
class IRFlowConfig(VelocityNetConfig):
    """IR-Flow model, consistency-loss and sampler settings (stored in checkpoints)."""

    steps: int = 2  # inference steps, 1..4 (any works: the network predicts the cumulative displacement)
    consistency_weight: float = 0.3
    consistency_min_steps: int = 2
    consistency_max_steps: int = 4
    # share of each batch that runs the unrolled chain: its cost is K extra forward + backward passes
    consistency_fraction: float = 0.5
    # share of each batch trained at t = 1 exactly: the one-step path (steps = 1) starts there and nowhere else
    t1_fraction: float = 0.0

    def __post_init__(self):
        super().__post_init__()
        if self.steps < 1 or not 1 <= self.consistency_min_steps <= self.consistency_max_steps:
            raise ValueError("steps >= 1 and 1 <= consistency_min_steps <= consistency_max_steps "
                             "are required")
        if self.consistency_weight < 0 or not 0 < self.consistency_fraction <= 1:
            raise ValueError("consistency_weight >= 0 and consistency_fraction in (0, 1] are required")
        if not 0 <= self.t1_fraction <= 1:
            raise ValueError("t1_fraction must lie in [0, 1]")


def irflow_state(hq: Tensor, lq: Tensor, t: Tensor) -> Tensor:
    """``x_t = t·LQ + (1 − t)·HQ`` for per-sample times t of shape (B,)."""
    t = broadcast_time(t)
    return t * lq + (1 - t) * hq


def multistep_consistency_loss(displacement: Velocity, hq: Tensor, lq: Tensor, steps: int) -> Tensor:
    """Unroll ``steps`` uniform IR-Flow steps from ``x_1 = LQ`` and score the end point against HQ.

    Nothing is detached: the gradient reaches the network through every step, so the loss teaches it to land
    on HQ along the few-step path it will take at inference.

    Returns:
        (B,) mean squared error of the end point.
    """
    x = lq
    times = uniform_times(steps, 1.0, 0.0)
    for s, s_next in pairwise(times):
        t = torch.full((x.shape[0],), s, dtype=x.dtype, device=x.device)
        x = irflow_step(x, displacement(x, t), s, s_next)
    return (x - hq).square().flatten(1).mean(1)


@register_method
class IRFlow(WarmStartModel):
    """The IR-Flow displacement network and its step-rule sampler."""

    method = "irflow"
    config_class = IRFlowConfig

    def __init__(self, config: IRFlowConfig):
        super().__init__(config)
        self.net = config.unet()

    def displacement(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """Predicted ``t·(LQ − HQ)`` at state x and time t, given the degradation maps ``cond``."""
        return self.net(x, t, cond=cond)

    def loss_terms(self, hq: Tensor, lq: Tensor, generator: torch.Generator,
                   phase: str = "main", cond: Tensor | None = None) -> dict[str, Tensor]:
        c = self.config
        t = uniform_times_like(hq, generator)  # (0, 1]
        t[: round(c.t1_fraction * hq.shape[0])] = 1.0
        target = broadcast_time(t) * (lq - hq)
        predicted = self.displacement(irflow_state(hq, lq, t), t, cond)
        direct = balanced_mean((predicted - target).square().flatten(1).mean(1), c.loss_balance, c.loss_floor)
        terms = {"displacement": direct, "loss": direct}
        if c.consistency_weight > 0:
            k = int(torch.randint(c.consistency_min_steps, c.consistency_max_steps + 1, (1,),
                                  generator=generator))
            rows = max(1, round(c.consistency_fraction * hq.shape[0]))
            rows_cond = None if cond is None else cond[:rows]
            consistency = multistep_consistency_loss(lambda x, t: self.displacement(x, t, rows_cond),
                                                     hq[:rows], lq[:rows], k).mean()
            terms["consistency"] = consistency
            terms["loss"] = direct + c.consistency_weight * consistency
        return terms

    def restore(self, lq: Tensor, generator: torch.Generator, cond: Tensor | None = None) -> Tensor:
        return irflow_sample(lambda x, t: self.displacement(x, t, cond), lq, self.config.steps)


@register_initializer("irflow")
class IRFlowInitializer(LearnedInitializer):
    """Warm start from a trained IR-Flow checkpoint (``checkpoint=PATH``); deterministic."""

    name = "irflow"
    # Gaussian noise alone runs the noise specialist, JPEG alone the JPEG specialist
    # (recipes/train/warmstart-irflow-{noise,jpeg}.yaml): each fine-tuned from the general model on its damage only,
    # each scored higher on its settings' validation crops (docs/benchmarks.md)
    specialists: ClassVar[dict[str, str]] = {"noise": "warmstart-irflow-noise", "jpeg": "warmstart-irflow-jpeg"}
