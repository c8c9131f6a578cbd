"""The initializer contract: ``(y, degradation, params) -> x0`` in [0, 1] at the clean image's size.

The solver, not the initializer, encodes ``x0`` into latents; an initializer never knows the prior.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from torch import Tensor, nn

from degradations import Degradation
from degradations.registry import Registry
from flowprior.errors import UsageError

#: initializer factories by name (the classes, for the built-ins), filled by :func:`register_initializer`
INITIALIZERS: Registry[Callable[..., Initializer]] = Registry("initializer")


class Initializer(nn.Module, ABC):
    """Produces a first estimate of the clean image from the degraded one."""

    name: str = ""

    @abstractmethod
    def forward(self, y: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
        """y: (B, C, h, w) degraded in [0, 1] -> x0: (B, C, H, W) in [0, 1]."""


def register_initializer(name: str):
    """Decorator: make a factory (an :class:`Initializer` class) available to :func:`get_initializer` as ``name``.

    Raises:
        ValueError: when the name is not an identifier or is already taken.
    """

    def wrap(factory):
        return INITIALIZERS.add(name, factory)

    return wrap


def available_initializers() -> list[str]:
    return INITIALIZERS.names()


def initializer_factory(name: str) -> Callable[..., Initializer] | None:
    """What :func:`get_initializer` would call for ``name`` (a class for the built-ins), or None if unknown."""
    return INITIALIZERS.find(name)


def get_initializer(name: str, **kwargs) -> Initializer:
    """The initializer ``name`` made with ``kwargs``; a UsageError (exit 2) names the valid ones when unknown."""
    factory = INITIALIZERS.find(name)
    if factory is None:
        raise UsageError(f"unknown initializer {name!r} (available: {', '.join(available_initializers())})")
    return factory(**kwargs)
