"""Shared base of the weather operators: a per-image light layer composited over the image."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from degradations.args import format_spec
from degradations.base import Degradation, Params
from degradations.functional.weather import screen


class ScreenOverlay(Degradation):
    """``y = x + L·(1 − x)`` with the layer ``L`` (B, 1, H, W) drawn by ``sample_params`` into ``params["layer"]``.

    Affine in x, so ``forward_model`` is ``apply`` (and differentiable). Subclasses list their arguments in
    ``spec_keys`` and draw the layer.
    """

    spec_keys: ClassVar[tuple[str, ...]] = ()

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return screen(x, params["layer"])

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        return screen(x, params["layer"])

    def spec(self) -> str:
        return format_spec(self.name, [(k, getattr(self, k)) for k in self.spec_keys])
