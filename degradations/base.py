"""The operator contract every degradation follows.

A degradation has two faces:

* ``apply(x, params)`` is the *truth*: the exact corruption (Pillow's real JPEG codec, a real noise draw). It is used
  to synthesize training pairs and test inputs. It need not be differentiable.
* ``forward_model(x, params)`` is the *model* the solver differentiates through: deterministic and smooth
  (JPEG: a DCT-domain surrogate with soft rounding; noise: identity; mask: multiplication).

Randomness is data: ``sample_params`` is the only place that draws random numbers, always from an explicit
``torch.Generator``; anything ``apply`` needs at random (the noise draw) is stored in the params as a seed, so
the same params replay the same output bit for bit.

Images are float tensors of shape (B, C, H, W) with values in [0, 1]. Params are a flat ``dict[str, Tensor]``
whose tensors have the batch as their first dimension.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch
from torch import Tensor

Params = dict[str, Tensor]


class Degradation(ABC):
    """Base class of all operators. Subclasses are registered with :func:`degradations.registry.register`.

    Subclass constructors take keyword arguments only; each may be a value or a ``(low, high)`` range from which
    ``sample_params`` draws uniformly per batch element.
    """

    #: short registry name, e.g. ``"jpeg"``
    name: ClassVar[str] = ""
    #: True when ``forward_model`` is linear in x (its adjointness is then tested)
    linear: ClassVar[bool] = False

    @abstractmethod
    def sample_params(self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None) -> Params:
        """Draw the parameters for a batch of images of the given (B, C, H, W) shape."""

    @abstractmethod
    def apply(self, x: Tensor, params: Params) -> Tensor:
        """The exact degradation (used to synthesize data). Deterministic given ``params``."""

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        """Deterministic, differentiable model of ``apply`` used by the solver. Default: identity."""
        return x

    def noise_std(self, params: Params) -> Tensor | None:
        """Per-sample std of the additive noise on the [0, 1] scale, shape (B,), or None when noise-free."""
        return None

    def observed_mask(self, params: Params) -> Tensor | None:
        """(B, 1, H, W) with 1 where a pixel was observed and 0 where it is missing, or None (all observed)."""
        return None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the degraded image for a clean image of the given size."""
        return height, width

    def block_size(self) -> int:
        """Grid (pixels) that tile origins must align to for this operator's data term (JPEG: 8 or 16)."""
        return 1

    @abstractmethod
    def spec(self) -> str:
        """A string that :func:`degradations.registry.parse` turns back into an equal operator."""

    def __add__(self, other: Degradation) -> Degradation:
        from degradations.chain import Chain

        return Chain([self, other])

    def __call__(self, x: Tensor, params: Params | None = None, generator: torch.Generator | None = None):
        """Sample params when none are given, then ``apply``. Returns ``(y, params)``."""
        if params is None:
            params = self.sample_params(tuple(x.shape), generator)
        return self.apply(x, params), params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"
