"""The operator contract every degradation follows.

A degradation has two faces:

* ``apply(x, params)`` is the *truth*: the exact corruption (Pillow's real JPEG codec, a real noise draw). It is used
  to synthesize training pairs and test inputs. It need not be differentiable.
* ``forward_model(x, params)`` is the *model* the solver differentiates through: deterministic and smooth
  (JPEG: a DCT-domain surrogate with soft rounding; noise: identity; mask: multiplication).

Randomness is data: ``sample_params`` is the only place that draws random numbers, always from an explicit
``torch.Generator``; anything ``apply`` needs at random (the noise draw) is stored in the params as a seed, so
the same params replay the same output bit for bit.

``a + b`` composes operators into a :class:`Chain`, defined here beside the contract because ``+`` belongs to
every operator (a separate module would import this one and be imported back).

Images are float tensors of shape (B, C, H, W) with values in [0, 1]. Params are a flat ``dict[str, Tensor]``
whose tensors have the batch as their first dimension.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar

import torch
import torch.nn.functional as F
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
    #: params that are one random draw of the damage itself (a haze depth, a rain layer) rather than a setting
    realization: ClassVar[tuple[str, ...]] = ()

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

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The clean grid a degraded image of the given size is restored on (super-resolution: larger), the
        inverse of :meth:`output_size`: ``output_size(*input_size(h, w)) == (h, w)``. Default: the same size."""
        return height, width

    def estimate_params(self, observed: Tensor, params: Params) -> Params:
        """``params`` with the damage's random realization (:attr:`realization`) estimated from ``observed``.

        A restore must model the layer that is in the photo, not a fresh draw: a haze depth or a rain layer
        sampled from the restore's seed describes some other photo. Settings (a noise σ, a JPEG quality) are kept.
        The default has nothing to estimate; an operator with a realization it cannot estimate raises
        ``NotImplementedError`` with a message for the user.
        """
        if self.realization:
            raise NotImplementedError(f"{self.name!r} cannot estimate its {', '.join(self.realization)} from the "
                                      "image yet, so it cannot be restored; leave it out of the degradation")
        return params

    def unestimable(self) -> tuple[str, ...]:
        """The realization params that :meth:`estimate_params` cannot estimate (a restore refuses them)."""
        return self.realization if type(self).estimate_params is Degradation.estimate_params else ()

    def pseudo_inverse(self, observed: Tensor, params: Params) -> Tensor:
        """A cheap estimate of the clean image from ``observed`` (warm starts); default: ``observed`` itself."""
        return observed

    def block_size(self) -> int:
        """Grid (pixels) that tile origins must align to for this operator's data term (JPEG: 8 or 16)."""
        return 1

    @abstractmethod
    def spec(self) -> str:
        """A string that :func:`degradations.registry.parse` turns back into an equal operator."""

    def __add__(self, other: Degradation) -> Degradation:
        return Chain([self, other])

    def __call__(self, x: Tensor, params: Params | None = None, generator: torch.Generator | None = None):
        """Sample params when none are given, then ``apply``. Returns ``(y, params)``."""
        if params is None:
            params = self.sample_params(tuple(x.shape), generator)
        return self.apply(x, params), params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"


# -------------------------------------------------------------------------------------------- composition


class Chain(Degradation):
    """Composition ``members[-1] ∘ … ∘ members[0]``: an ordered, flattened list (``a + b + c`` is one Chain of
    three) that applies left to right, in the order of the spec string.

    Params are one flat dict whose keys are namespaced by member: ``"jpeg.quality"``, ``"noise.sigma"``,
    ``"mask.mask"``; an operator name that occurs again gets a counter, ``"noise#2.sigma"`` (:func:`member_keys`),
    so keys never collide and nothing is summed or shared between members.

    Combined quantities (documented approximations where members interact):

    * ``noise_std``: ``sqrt(Σ σᵢ²)`` over members with noise, as if all noises were added at the output.
    * ``observed_mask``: product of members' masks. A mask from before a size-changing member (``downsample``) is
      carried to the output grid by box-averaging and keeping only cells that were fully observed.
    * ``block_size``: least common multiple of the members', each on the clean grid (a member after a
      ``downsample`` by f has blocks f times larger); ``output_size`` and ``input_size``: composed.

    Args:
        members: operators in application order; nested Chains are flattened.

    Example:
        >>> from degradations import parse
        >>> op = parse("noise+noise")
        >>> op.keys
        ['noise', 'noise#2']
    """

    name = "chain"

    def __init__(self, members: list[Degradation]) -> None:
        flat: list[Degradation] = []
        for m in members:
            if not isinstance(m, Degradation):
                raise TypeError(f"Chain members must be Degradation instances, got {type(m).__name__}")
            flat.extend(m.members if isinstance(m, Chain) else [m])
        if not flat:
            raise ValueError("a Chain needs at least one member")
        self.members = flat
        self.keys = member_keys([m.name for m in flat])
        # Instance attribute shadows the ClassVar: a chain is linear exactly when all its members are.
        self.linear = all(m.linear for m in flat)
        self.realization = tuple(f"{key}.{arg}" for key, m in zip(self.keys, flat) for arg in m.realization)

    def _split(self, params: Params) -> list[Params]:
        out: list[Params] = [{} for _ in self.members]
        index = {k: i for i, k in enumerate(self.keys)}
        for dotted, value in params.items():
            prefix, _, arg = dotted.partition(".")
            if prefix not in index:
                raise KeyError(f"param {dotted!r} belongs to no member of {self.spec()!r}")
            out[index[prefix]][arg] = value
        return out

    def _join(self, per_member) -> Params:
        """The members' params (in member order) as one flat dict namespaced by member key: the inverse of
        :meth:`_split`."""
        return {f"{key}.{arg}": value for key, p in zip(self.keys, per_member) for arg, value in p.items()}

    def _shapes(self, shape: tuple[int, int, int, int]) -> list[tuple[int, int, int, int]]:
        b, c, h, w = shape
        shapes = []
        for m in self.members:
            shapes.append((b, c, h, w))
            h, w = m.output_size(h, w)
        return shapes

    def sample_params(
        self, shape: tuple[int, int, int, int], generator: torch.Generator | None = None
    ) -> Params:
        """Each member samples for the size of *its* input, in order, from the same generator."""
        return self._join(m.sample_params(s, generator) for m, s in zip(self.members, self._shapes(tuple(shape))))

    def apply(self, x: Tensor, params: Params) -> Tensor:
        for member, p in zip(self.members, self._split(params)):
            x = member.apply(x, p)
        return x

    def forward_model(self, x: Tensor, params: Params) -> Tensor:
        for member, p in zip(self.members, self._split(params)):
            x = member.forward_model(x, p)
        return x

    def noise_std(self, params: Params) -> Tensor | None:
        stds = [s for m, p in zip(self.members, self._split(params)) if (s := m.noise_std(p)) is not None]
        if not stds:
            return None
        return torch.sqrt(sum(s.to(torch.float64) ** 2 for s in stds))

    def observed_mask(self, params: Params) -> Tensor | None:
        out = None
        for i, (member, p) in enumerate(zip(self.members, self._split(params))):
            mask = member.observed_mask(p)
            if mask is None:
                continue
            # Carry the mask through the members after it (a later downsample shrinks the grid).
            h, w = mask.shape[-2:]
            for later in self.members[i + 1 :]:
                h, w = later.output_size(h, w)
            mask = _to_output_grid(mask, (h, w))
            out = mask if out is None else out * mask.to(out)
        return out

    def estimate_params(self, observed: Tensor, params: Params) -> Params:
        """Each member estimates its realization from the chain's output (the only image there is)."""
        return self._join(m.estimate_params(observed, p) for m, p in zip(self.members, self._split(params)))

    def unestimable(self) -> tuple[str, ...]:
        return tuple(f"{key}.{arg}" for key, m in zip(self.keys, self.members) for arg in m.unestimable())

    def pseudo_inverse(self, observed: Tensor, params: Params) -> Tensor:
        """The members' pseudo-inverses, last member first."""
        x = observed
        for member, p in reversed(list(zip(self.members, self._split(params)))):
            x = member.pseudo_inverse(x, p)
        return x

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        for m in self.members:
            height, width = m.output_size(height, width)
        return height, width

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        for m in reversed(self.members):
            height, width = m.input_size(height, width)
        return height, width

    def block_size(self) -> int:
        # A member after a downsample works on the smaller grid: its blocks (a JPEG's 8 px) span factor x more
        # clean pixels, and tile origins live on the clean grid.
        sizes, scale = [], 1
        for m in self.members:
            sizes.append(m.block_size() * scale)
            scale *= m.input_size(1, 1)[0]  # clean pixels per pixel of this member's output
        return math.lcm(*sizes)

    def spec(self) -> str:
        return "+".join(m.spec() for m in self.members)


def member_keys(names: list[str]) -> list[str]:
    """Param namespaces for operators in order: ``["noise", "jpeg", "noise"]`` → ``noise, jpeg, noise#2``."""
    seen: dict[str, int] = {}
    keys = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        keys.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return keys


def _to_output_grid(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Box-average a (B, 1, H, W) mask onto ``size``; a cell counts as observed only if fully observed."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    h, w = mask.shape[-2:]
    fh, fw = h // size[0], w // size[1]
    cropped = mask[..., : size[0] * fh, : size[1] * fw].to(torch.float64)
    return (F.avg_pool2d(cropped, (fh, fw)) > 1.0 - 1e-9).to(mask.dtype)
