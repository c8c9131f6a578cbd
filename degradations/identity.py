"""The no-op operator: useful as a placeholder in recipes and as the neutral element of a Chain."""

from __future__ import annotations

import torch
from torch import Tensor

from degradations.base import Degradation, Params
from degradations.registry import register


@register
class Identity(Degradation):
    """``y = x``; no params. Linear (its adjoint is itself).

    Example:
        >>> Identity().spec()
        'identity'
    """

    name = "identity"
    linear = True

    def __init__(self) -> None:
        pass

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        return {}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        return x.clone()

    def spec(self) -> str:
        return self.name
