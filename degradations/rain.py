"""Rain: bright slanted streaks laid over the image."""

from __future__ import annotations

import torch

from degradations.args import as_range, sample
from degradations.base import Params
from degradations.functional.weather import rain_layer
from degradations.overlay import ScreenOverlay
from degradations.registry import register


@register
class Rain(ScreenOverlay):
    """Streak layer ``L`` composited as white light: ``y = x + b·L·(1 − x)``.

    Args:
        density: streaks per pixel, in [0, 0.05] (default 0.001–0.004).
        length: mean streak length in pixels, > 0 (default 10–25).
        angle: degrees from vertical, in [−60, 60] (default −15–15).
        brightness: streak opacity ``b``, in [0, 1] (default 0.5–0.9).

    Affine in x, so ``forward_model`` = ``apply`` (differentiable).

    Params:
        ``layer`` (B, 1, H, W) float32: ``b·L``, the opacity actually laid over each image.

    Example:
        >>> Rain(density=0.002).spec()
        'rain(density=0.002,length=10:25,angle=-15:15,brightness=0.5:0.9)'
    """

    name = "rain"
    realization = ("layer",)  # the streaks or flakes of this photo; no estimator yet, so restores refuse
    spec_keys = ("density", "length", "angle", "brightness")

    def __init__(
        self,
        *,
        density: object = (0.001, 0.004),
        length: object = (10.0, 25.0),
        angle: object = (-15.0, 15.0),
        brightness: object = (0.5, 0.9),
    ) -> None:
        self.density = as_range("density", density, low=0, high=0.05)
        self.length = as_range("length", length, low=1, high=500)
        self.angle = as_range("angle", angle, low=-60, high=60)
        self.brightness = as_range("brightness", brightness, low=0, high=1)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        b, _, h, w = shape
        values = [
            sample(r, b, generator).tolist() for r in (self.density, self.length, self.angle, self.brightness)
        ]
        layers = [bright * rain_layer(h, w, d, n, a, generator) for d, n, a, bright in zip(*values)]
        return {"layer": torch.stack(layers)[:, None].to(torch.float32)}
