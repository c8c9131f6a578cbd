"""Chain: an ordered, flattened composition of operators (``a + b + c`` is one Chain of three).

Members apply left to right, in the order of the spec string. Params are one flat dict whose keys are namespaced
by member: ``"jpeg.quality"``, ``"noise.sigma"``, ``"mask.mask"``; an operator name that occurs again gets a
counter, ``"noise#2.sigma"`` (see :func:`degradations.registry.member_keys`), so keys never collide and nothing
is summed or shared between members.

Combined quantities (documented approximations where members interact):

* ``noise_std``: ``sqrt(Σ σᵢ²)`` over members with noise, as if all noises were added at the output.
* ``observed_mask``: product of members' masks. A mask from before a size-changing member (``downsample``) is
  carried to the output grid by box-averaging and keeping only cells that were fully observed.
* ``block_size``: least common multiple of the members'; ``output_size``: composed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from degradations.base import Degradation, Params
from degradations.registry import member_keys


class Chain(Degradation):
    """Composition ``members[-1] ∘ … ∘ members[0]``.

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

    def _split(self, params: Params) -> list[Params]:
        out: list[Params] = [{} for _ in self.members]
        index = {k: i for i, k in enumerate(self.keys)}
        for dotted, value in params.items():
            prefix, _, arg = dotted.partition(".")
            if prefix not in index:
                raise KeyError(f"param {dotted!r} belongs to no member of {self.spec()!r}")
            out[index[prefix]][arg] = value
        return out

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
        params: Params = {}
        for key, member, s in zip(self.keys, self.members, self._shapes(tuple(shape))):
            for arg, value in member.sample_params(s, generator).items():
                params[f"{key}.{arg}"] = value
        return params

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

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        for m in self.members:
            height, width = m.output_size(height, width)
        return height, width

    def block_size(self) -> int:
        return math.lcm(*(m.block_size() for m in self.members))

    def spec(self) -> str:
        return "+".join(m.spec() for m in self.members)


def _to_output_grid(mask: Tensor, size: tuple[int, int]) -> Tensor:
    """Box-average a (B, 1, H, W) mask onto ``size``; a cell counts as observed only if fully observed."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    h, w = mask.shape[-2:]
    fh, fw = h // size[0], w // size[1]
    cropped = mask[..., : size[0] * fh, : size[1] * fw].to(torch.float64)
    return (F.avg_pool2d(cropped, (fh, fw)) > 1.0 - 1e-9).to(mask.dtype)
