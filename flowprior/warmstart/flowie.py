"""FlowIE (Zhu, Zhao et al., CVPR 2024) at pixel scale: the published structure with small networks.

1. An initial-stage model τφ — a small residual restoration CNN — maps the degraded image to a rough
   estimate. It is trained first, alone (phase ``"initial"``, L1 to the clean image), then frozen.
2. A rectified flow from Gaussian noise (t = 0) to the clean image (t = 1), conditioned on τφ(LQ)
   (concatenated to the state): ``x_t = (1 − t)·ε + t·x``, velocity target ``x − ε``. The flow works in
   [−1, 1] (``2·img − 1``) so that noise and data have comparable scales.
3. Mean value sampling (:func:`~flowprior.warmstart.samplers.mean_value_sampling`): Euler on a 5-point
   schedule up to index m, then the start plus one unit step of the velocity there (m + 1 network calls; m in
   the recipe).

The published model is Stable Diffusion-sized and works in its latent space; here everything is pixel space.

**The conditioned variant** (``recipes/train/warmstart-flowie-cond.yaml``): τφ is a trained warm start given by
``initial_config`` (the embedded IR-Flow network, which reads the degradation maps; its weights are copied in by
``optim.init_from`` with ``init_prefix: initial.``), and with ``predict: estimate`` the flow network predicts a
correction ``r`` to τφ's estimate instead of the velocity itself: ``x̂ = τφ(LQ) + r(x_t, t)`` and
``v = (x̂ − x_t)/(1 − t)``, the rectified-flow velocity towards the estimate (the usual x-prediction form; its
loss is ``‖x̂ − x‖²``, the velocity loss times ``(1 − t)²``). The output layer starts at zero, so an untrained
flow returns exactly τφ's estimate for every noise draw and training only adds what the flow learns; on a
CPU budget a flow from pure noise to the image does not get that far (docs/benchmarks.md: after 840 steps it
landed below its input).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from flowprior.warmstart.base import register_initializer
from flowprior.warmstart.learned import (
    LearnedInitializer,
    WarmStartModel,
    balanced_mean,
    broadcast_time,
    build_warmstart,
    gaussian_like,
    register_method,
    uniform_times_like,
)
from flowprior.warmstart.network import VelocityNetConfig
from flowprior.warmstart.samplers import mean_value_sampling

PREDICTIONS = ("velocity", "estimate")
#: the estimate form divides by 1 − t; sampling never reaches t = 1 (mean value sampling stops at t_m < 1)
LAST_TIME = 1 - 1e-3


@dataclass
class FlowIEConfig(VelocityNetConfig):
    """FlowIE model, training-phase and sampler settings (stored in checkpoints)."""

    initial_width: int = 32  # τφ: channels of its conv stack
    initial_layers: int = 6  # τφ: 3x3 convs (receptive field 2 * layers + 1)
    initial_fraction: float = 0.25  # share of the training steps spent on τφ alone (phase "initial")
    m: int = 3  # mean value sampling: index of the evaluation point (m + 1 network calls)
    points: int = 5  # mean value sampling: points of the uniform schedule on [0, 1]
    # τφ: None = InitialStageCNN above; else a warm-start config ({"method": ..., ...}) built as τφ
    initial_config: dict[str, Any] | None = None
    predict: str = "velocity"  # "velocity" (as published) or "estimate" (a correction to τφ's estimate)

    def __post_init__(self):
        super().__post_init__()
        if self.predict not in PREDICTIONS:
            raise ValueError(f"predict must be one of {PREDICTIONS}, not {self.predict!r}")
        if self.initial_width < 1 or self.initial_layers < 2:
            raise ValueError("initial_width >= 1 and initial_layers >= 2 are required")
        if not 0 <= self.initial_fraction < 1:
            raise ValueError("initial_fraction must lie in [0, 1)")
        if self.points < 2 or not 0 <= self.m < self.points - 1:
            raise ValueError(f"need points >= 2 and 0 <= m < points - 1, got m={self.m}, "
                             f"points={self.points}")


class InitialStageCNN(nn.Module):
    """τφ: ``lq + body(lq)``, a plain conv stack whose last layer starts at zero (a fresh τφ is the identity).

    Any input size works (no downsampling; zero padding).
    """

    def __init__(self, width: int = 32, layers: int = 6, channels: int = 3):
        super().__init__()
        convs = [nn.Conv2d(channels, width, 3, padding=1)]
        convs += [nn.Conv2d(width, width, 3, padding=1) for _ in range(layers - 2)]
        convs.append(nn.Conv2d(width, channels, 3, padding=1))
        nn.init.zeros_(convs[-1].weight)
        nn.init.zeros_(convs[-1].bias)
        self.convs = nn.ModuleList(convs)

    def forward(self, lq: Tensor) -> Tensor:
        h = lq
        for conv in self.convs[:-1]:
            h = F.silu(conv(h))
        return lq + self.convs[-1](h)


@register_method
class FlowIE(WarmStartModel):
    """τφ, the conditional rectified-flow network, and mean value sampling."""

    method = "flowie"
    config_class = FlowIEConfig
    phases = ("initial", "flow")

    def __init__(self, config: FlowIEConfig):
        super().__init__(config)
        if config.initial_config:
            self.initial = build_warmstart(config.initial_config)
        else:
            self.initial = InitialStageCNN(config.initial_width, config.initial_layers)
        self.net = config.unet(in_channels=6)

    def phase_at(self, step: int, total_steps: int) -> str:
        return "initial" if step < round(self.config.initial_fraction * total_steps) else "flow"

    def initial_estimate(self, lq: Tensor, generator: torch.Generator, cond: Tensor | None) -> Tensor:
        """τφ(LQ) in [0, 1] units (not clamped)."""
        if isinstance(self.initial, WarmStartModel):
            return self.initial.restore(lq, generator, cond if self.initial.conditioned else None)
        return self.initial(lq)

    def _flow_net(self, x: Tensor, t: Tensor, condition: Tensor, cond: Tensor | None) -> Tensor:
        """The flow network on the state and τφ's estimate: a velocity, or ``r`` with ``predict: estimate``."""
        return self.net(torch.cat([x, condition], dim=1), t, cond=cond)

    def estimate(self, x: Tensor, t: Tensor, condition: Tensor, cond: Tensor | None = None) -> Tensor:
        """``x̂ = condition + r(x_t, t)`` in [−1, 1] space (``predict: estimate``)."""
        return condition + self._flow_net(x, t, condition, cond)

    def velocity(self, x: Tensor, t: Tensor, condition: Tensor, cond: Tensor | None = None) -> Tensor:
        """dx/dt of the flow in [−1, 1] space; ``condition`` = 2·τφ(LQ) − 1, ``cond`` the degradation maps."""
        if self.config.predict == "estimate":
            remaining = broadcast_time(1 - torch.as_tensor(t, dtype=x.dtype).clamp(max=LAST_TIME).expand(x.shape[0]))
            return (self.estimate(x, t, condition, cond) - x) / remaining
        return self._flow_net(x, t, condition, cond)

    def loss_terms(self, hq: Tensor, lq: Tensor, generator: torch.Generator,
                   phase: str = "flow", cond: Tensor | None = None) -> dict[str, Tensor]:
        if phase == "initial":
            l1 = (self.initial_estimate(lq, generator, cond) - hq).abs().mean()
            return {"initial_l1": l1, "loss": l1}
        if phase != "flow":
            raise ValueError(f"unknown FlowIE phase {phase!r} (phases: {self.phases})")
        with torch.no_grad():  # τφ is frozen once the flow trains
            condition = 2 * self.initial_estimate(lq, generator, cond).clamp(0, 1) - 1
        data = 2 * hq - 1
        noise = gaussian_like(data, generator)
        t = 1.0 - uniform_times_like(data, generator)  # [0, 1)
        x_t = (1 - broadcast_time(t)) * noise + broadcast_time(t) * data
        if self.config.predict == "estimate":  # per-sample MSE in [0, 1] units, where loss_floor is set
            per_sample = ((self.estimate(x_t, t, condition, cond) - data) / 2).square().flatten(1).mean(1)
            mse = balanced_mean(per_sample, self.config.loss_balance, self.config.loss_floor)
            return {"estimate_mse": per_sample.mean().detach(), "loss": mse}
        mse = (self.velocity(x_t, t, condition, cond) - (data - noise)).square().mean()
        return {"velocity_mse": mse, "loss": mse}

    def restore(self, lq: Tensor, generator: torch.Generator, cond: Tensor | None = None) -> Tensor:
        condition = 2 * self.initial_estimate(lq, generator, cond).clamp(0, 1) - 1
        noise = gaussian_like(lq, generator)
        velocity = lambda x, t: self.velocity(x, t, condition, cond)
        x = mean_value_sampling(velocity, noise, self.config.m, self.config.points)
        return (x + 1) / 2


@register_initializer("flowie")
class FlowIEInitializer(LearnedInitializer):
    """Warm start from a trained FlowIE checkpoint (``checkpoint=PATH``); the noise start is seeded."""

    name = "flowie"
