"""Additive noise. ``apply`` draws it from per-sample seeds stored in the params; the model is the identity."""

from __future__ import annotations

import torch
from torch import Tensor

from degradations.args import ArgError, as_choice, as_range, draw_seeds, format_spec, reject_unused, sample
from degradations.base import Degradation, Params
from degradations.functional.noise import (
    gaussian_noise,
    poisson_gaussian,
    poisson_gaussian_std,
    uniform_noise,
    uniform_std,
)
from degradations.registry import register

KINDS = ("gaussian", "uniform", "poisson_gaussian")


@register
class Noise(Degradation):
    """Noise on the 0–255 scale, as papers state it; every level is a value or a ``(lo, hi)`` range.

    Args:
        kind: ``"gaussian"`` (``sigma``, default 15), ``"uniform"`` (U(``low``, ``high``), default −15…15) or
            ``"poisson_gaussian"`` (``Poisson(peak·x)/peak`` plus Gaussian read noise ``sigma``; defaults
            ``peak=30``, ``sigma=5``). Arguments the kind does not use must be left unset.
        sigma: Gaussian std (0–255 scale), >= 0.
        low, high: bounds of the uniform noise (0–255 scale); every sampled ``low`` <= every sampled ``high``.
        peak: photon count of a white pixel, > 0 (smaller is noisier).

    ``apply`` clamps the result to [0, 1] (images are stored that way); ``noise_std`` ignores the clamping, so it
    slightly overstates the noise in saturated regions. For ``poisson_gaussian`` the std is signal dependent;
    ``noise_std`` reports it at mid-gray, ``sqrt(0.5/peak + (sigma/255)²)``.

    Params:
        ``seed`` (B,) int64 plus the sampled levels: ``sigma``, or ``low``/``high``, or ``peak``/``sigma``.

    Example:
        >>> Noise(sigma=(5, 15)).spec()
        'noise(kind=gaussian,sigma=5:15)'
    """

    name = "noise"

    def __init__(
        self,
        *,
        kind: object = "gaussian",
        sigma: object = None,
        low: object = None,
        high: object = None,
        peak: object = None,
    ) -> None:
        self.kind = as_choice("kind", kind, KINDS)
        self.sigma = self.low = self.high = self.peak = None
        if self.kind == "gaussian":
            reject_unused(self.kind, low=low, high=high, peak=peak)
            self.sigma = as_range("sigma", 15 if sigma is None else sigma, low=0)
        elif self.kind == "uniform":
            reject_unused(self.kind, sigma=sigma, peak=peak)
            self.low = as_range("low", -15 if low is None else low)
            self.high = as_range("high", 15 if high is None else high)
            if self.low[1] > self.high[0]:
                raise ArgError("low", f"every low must be <= every high, got low={low!r}, high={high!r}")
        else:
            reject_unused(self.kind, low=low, high=high)
            self.peak = as_range("peak", 30 if peak is None else peak, low=0)
            if self.peak[0] <= 0:
                raise ArgError("peak", f"must be positive, got {peak!r}")
            self.sigma = as_range("sigma", 5 if sigma is None else sigma, low=0)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        b = shape[0]
        params = {"seed": draw_seeds(b, generator)}
        for key in ("sigma", "low", "high", "peak"):
            rng = getattr(self, key)
            if rng is not None:
                params[key] = sample(rng, b, generator)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        shape, seeds = tuple(x.shape), params["seed"]
        if self.kind == "gaussian":
            y = x + gaussian_noise(shape, params["sigma"], seeds).to(dtype=x.dtype, device=x.device)
        elif self.kind == "uniform":
            y = x + uniform_noise(shape, params["low"], params["high"], seeds).to(
                dtype=x.dtype, device=x.device
            )
        else:
            y = poisson_gaussian(x, params["peak"], params["sigma"], seeds)
        return y.clamp(0.0, 1.0)

    def noise_std(self, params: Params) -> Tensor:
        if self.kind == "gaussian":
            return params["sigma"].to(torch.float64) / 255.0
        if self.kind == "uniform":
            return uniform_std(params["low"], params["high"])
        return poisson_gaussian_std(params["peak"], params["sigma"])

    def spec(self) -> str:
        keys = {"gaussian": ("sigma",), "uniform": ("low", "high"), "poisson_gaussian": ("peak", "sigma")}
        return format_spec(
            self.name, [("kind", self.kind)] + [(k, getattr(self, k)) for k in keys[self.kind]]
        )
