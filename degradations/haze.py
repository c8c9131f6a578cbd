"""Haze / fog by the atmospheric scattering model."""

from __future__ import annotations

import torch
from torch import Tensor

from degradations.args import as_range, format_spec, sample
from degradations.base import Degradation, Params
from degradations.functional.dehaze import estimate_airlight, estimate_transmission, remove_haze
from degradations.functional.haze import add_haze, depth_proxy, transmission
from degradations.registry import register


@register
class Haze(Degradation):
    """``I = J·t + A·(1 − t)`` with ``t = exp(−β·d)`` and a smooth random depth proxy ``d`` in [0, 1].

    Args:
        beta: scattering coefficient, >= 0 (default 0.5–1.5); at the farthest point ``t = exp(−β)``.
        airlight: gray atmospheric light ``A`` in [0, 1] (default 0.7–1.0).

    Affine in x, so ``forward_model`` = ``apply`` (differentiable). A restore estimates the depth (and the
    airlight, unless one value is declared) from the hazy image by the dark-channel prior
    (:mod:`degradations.functional.dehaze`); the estimate is a transmission, stored as ``beta = 1`` and
    ``depth = −log t``, so a declared ``beta`` does not enter a restore.

    Params:
        ``beta`` (B,), ``airlight`` (B,), ``depth`` (B, 1, H, W) float32.

    Example:
        >>> Haze(beta=1.0).spec()
        'haze(beta=1,airlight=0.7:1)'
    """

    name = "haze"
    realization = ("depth",)

    def __init__(self, *, beta: object = (0.5, 1.5), airlight: object = (0.7, 1.0)) -> None:
        self.beta = as_range("beta", beta, low=0, high=20)
        self.airlight = as_range("airlight", airlight, low=0, high=1)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        b, _, h, w = shape
        beta = sample(self.beta, b, generator)
        airlight = sample(self.airlight, b, generator)
        depth = torch.stack([depth_proxy(h, w, generator) for _ in range(b)])[:, None].to(torch.float32)
        return {"beta": beta, "airlight": airlight, "depth": depth}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return add_haze(x, params["depth"], params["beta"], params["airlight"])

    def estimate_params(self, observed: Tensor, params: Params) -> Params:
        b = observed.shape[0]
        low, high = self.airlight
        airlight = torch.full((b,), float(low)) if low == high else estimate_airlight(observed.to(torch.float64))
        t = estimate_transmission(observed, airlight)
        return {"beta": torch.ones(b), "airlight": airlight.to(torch.float32),
                "depth": (-torch.log(t)).to(torch.float32)}

    def pseudo_inverse(self, observed: Tensor, params: Params) -> Tensor:
        t = transmission(params["depth"].to(observed), params["beta"])
        return remove_haze(observed, t, params["airlight"])

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        return self.apply(x, params)

    def spec(self) -> str:
        return format_spec(self.name, [("beta", self.beta), ("airlight", self.airlight)])
