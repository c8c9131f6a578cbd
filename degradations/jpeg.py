"""JPEG compression: Pillow's real codec in ``apply``, the DCT-domain surrogate in ``forward_model``."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from degradations.args import ArgError, as_choice, as_range, format_spec, sample
from degradations.base import Degradation, Params
from degradations.functional.jpeg import DEFAULT_HARDNESS, jpeg_codec, jpeg_surrogate
from degradations.registry import register


@register
class JPEG(Degradation):
    """JPEG compression at an integer quality.

    Args:
        quality: 1–100, a value or a ``(lo, hi)`` range sampled per image (integers).
        subsampling: ``"420"`` (default; chroma halved, 16-pixel MCUs) or ``"444"`` (8-pixel blocks).
        hardness: sharpness of the surrogate's soft rounding (only affects ``forward_model``; larger is closer
            to the codec but has flatter gradients inside each quantization cell). ``inf`` rounds exactly with a
            straight-through gradient: the data term ``‖A(x) − y‖²`` is then zero, with zero gradient, whenever x
            falls in the same quantization cells as y, and pulls x toward y's cells otherwise — the JPEG
            consistency constraint. The solver uses it (``solver.jpeg_hardness``); ``gradcheck`` needs a finite one.

    Params:
        ``quality``: (B,) int64.

    Example:
        >>> op = JPEG(quality=(10, 70))
        >>> op.spec()
        'jpeg(quality=10:70,subsampling=420,hardness=8)'
    """

    name = "jpeg"

    def __init__(
        self, *, quality: object = 30, subsampling: object = "420", hardness: object = DEFAULT_HARDNESS
    ):
        self.quality = as_range("quality", quality, low=1, high=100, integer=True)
        self.subsampling = as_choice("subsampling", subsampling, ("420", "444"))
        if hardness in ("inf", math.inf):
            self.hardness = math.inf
        else:
            self.hardness = as_range("hardness", hardness, low=0, allow_range=False)[0]
        if self.hardness <= 0:
            raise ArgError("hardness", f"must be positive, got {hardness!r}")

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        return {"quality": sample(self.quality, shape[0], generator, integer=True)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return jpeg_codec(x, params["quality"], self.subsampling)

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        return jpeg_surrogate(x, params["quality"], self.subsampling, self.hardness)

    def block_size(self) -> int:
        return 16 if self.subsampling == "420" else 8

    def spec(self) -> str:
        # subsampling printed as a number (420), which parses back to the same choice without quotes.
        args = [
            ("quality", self.quality),
            ("subsampling", int(self.subsampling)),
            ("hardness", self.hardness),
        ]
        return format_spec(self.name, args)
