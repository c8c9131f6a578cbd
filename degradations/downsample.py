"""Downsampling by an integer factor (super-resolution)."""

from __future__ import annotations

import torch
from torch import Tensor

from degradations.args import ArgError, as_choice, as_range, format_spec
from degradations.base import Degradation, Params
from degradations.functional.resize import MODES, downsample, upsample
from degradations.registry import register


@register
class Downsample(Degradation):
    """Reduce the resolution by ``factor`` (see :mod:`degradations.functional.resize` for the conventions).

    Args:
        factor: integer 1–8 (default 4). One value for the whole batch, since it sets the output size.
        mode: ``"bicubic"`` (antialiased, default) or ``"area"``.

    ``apply`` clamps to [0, 1] (bicubic rings slightly past it, and stored images cannot); ``forward_model`` is
    the unclamped, linear operator. A restore works on the clean grid, ``input_size`` (``factor`` x larger);
    ``block_size`` is the factor, so tiles start on whole low-resolution pixels.

    Example:
        >>> Downsample(factor=2).output_size(65, 64)
        (32, 32)
    """

    name = "downsample"
    linear = True

    def __init__(self, *, factor: object = 4, mode: object = "bicubic") -> None:
        rng = as_range("factor", factor, low=1, high=8, integer=True, allow_range=False)
        self.factor = rng[0]
        self.mode = as_choice("mode", mode, MODES)

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        if shape[-2] < self.factor or shape[-1] < self.factor:
            raise ArgError("factor", f"{self.factor} exceeds the image size {tuple(shape[-2:])}")
        return {}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return downsample(x, self.factor, self.mode).clamp(0.0, 1.0)

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        return downsample(x, self.factor, self.mode)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return height // self.factor, width // self.factor

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return height * self.factor, width * self.factor

    def pseudo_inverse(self, observed: Tensor, params: Params) -> Tensor:
        """Bicubic upsampling onto the clean grid (``flowprior``'s ``inverse`` warm start back-projects it)."""
        return upsample(observed, self.factor)

    def block_size(self) -> int:
        return self.factor

    def spec(self) -> str:
        return format_spec(self.name, [("factor", self.factor), ("mode", self.mode)])
