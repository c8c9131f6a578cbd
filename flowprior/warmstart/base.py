"""The initializer contract: ``(y, degradation, params) -> x0`` in [0, 1] at the clean image's size.

The solver, not the initializer, encodes ``x0`` into latents; an initializer never knows the prior.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from torch import Tensor, nn

from degradations import Degradation
from flowprior.errors import UsageError

_REGISTRY: dict[str, Callable[..., Initializer]] = {}


class Initializer(nn.Module, ABC):
    """Produces a first estimate of the clean image from the degraded one."""

    name: str = ""

    @abstractmethod
    def forward(self, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
        """y: (B, C, h, w) degraded in [0, 1] -> x0: (B, C, H, W) in [0, 1]."""


def register_initializer(name: str):
    def wrap(factory):
        if name in _REGISTRY:
            raise ValueError(f"initializer {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_initializers() -> list[str]:
    return sorted(_REGISTRY)


def initializer_factory(name: str) -> Callable[..., Initializer] | None:
    """What :func:`get_initializer` would call for ``name`` (a class for the built-ins), or None if unknown."""
    return _REGISTRY.get(name)


def get_initializer(name: str, **kwargs) -> Initializer:
    if name not in _REGISTRY:
        raise UsageError(f"unknown initializer {name!r} (available: {', '.join(available_initializers())})")
    return _REGISTRY[name](**kwargs)
