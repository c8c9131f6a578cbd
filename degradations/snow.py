"""Snow: soft white flakes laid over the image."""

from __future__ import annotations

import torch

from degradations.args import as_range, sample
from degradations.base import Params
from degradations.functional.weather import snow_layer
from degradations.overlay import ScreenOverlay
from degradations.registry import register


@register
class Snow(ScreenOverlay):
    """Flake layer ``L`` composited as white light: ``y = x + b·L·(1 − x)``.

    Args:
        density: flakes per pixel, in [0, 0.05] (default 0.0005–0.002).
        size: mean flake radius in pixels, in [0.5, 50] (default 1–3).
        brightness: flake opacity ``b``, in [0, 1] (default 0.7–1.0).

    Affine in x, so ``forward_model`` = ``apply`` (differentiable).

    Params:
        ``layer`` (B, 1, H, W) float32: ``b·L``.

    Example:
        >>> Snow(size=2).spec()
        'snow(density=0.0005:0.002,size=2,brightness=0.7:1)'
    """

    name = "snow"
    realization = ("layer",)  # the streaks or flakes of this photo; no estimator yet, so restores refuse
    spec_keys = ("density", "size", "brightness")

    def __init__(
        self,
        *,
        density: object = (0.0005, 0.002),
        size: object = (1.0, 3.0),
        brightness: object = (0.7, 1.0),
    ) -> None:
        self.density = as_range("density", density, low=0, high=0.05)
        self.size = as_range("size", size, low=0.5, high=50)
        self.brightness = as_range("brightness", brightness, low=0, high=1)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        b, _, h, w = shape
        values = [sample(r, b, generator).tolist() for r in (self.density, self.size, self.brightness)]
        layers = [bright * snow_layer(h, w, d, s, generator) for d, s, bright in zip(*values)]
        return {"layer": torch.stack(layers)[:, None].to(torch.float32)}
