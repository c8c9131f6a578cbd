"""Start a warm start from another one's trained network, even where the new network has more channels.

ResFlow's velocity network is IR-Flow's plus 3 input channels (the auxiliary variable y, concatenated after the
degradation maps) and 3 output channels (y's velocity); FlowIE's initial stage τφ can be the trained IR-Flow
network itself. :func:`transplant` copies each trained tensor into the leading slice of the new one and zeroes
the weights from the new input channels to the trained output channels, so every trained output is computed
exactly as before (new inputs are ignored, new outputs start from the new network's own initialization; an
output layer that starts at zero, as every warm start's does, makes them start at zero).

The leading-slice layout holds wherever new channels are appended: concatenated inputs (pixel-unshuffled
channel ``c·r² + k`` keeps its index when channels are added after ``c``) and extra output channels.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from flowprior.errors import UsageError


def _input_dims(target: nn.Module) -> dict[str, int]:
    """For every weight of a layer with input channels, the dimension that indexes them (1; 0 for a transposed
    convolution, whose weight is stored (in, out, kh, kw))."""
    dims = {}
    for name, module in target.named_modules():
        if isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
            dims[f"{name}.weight"] = 0
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
            dims[f"{name}.weight"] = 1
    return dims


def transplant(source: Mapping[str, Tensor], target: nn.Module, prefix: str = "") -> list[str]:
    """Copy the trained ``source`` state into ``target`` (its parameter ``prefix + key`` for each source key),
    in place, without changing what the trained channels compute; returns the target keys that were filled.

    Raises UsageError when a source key has no target, or a target tensor is smaller than its source in any
    dimension or has another number of dimensions.
    """
    state = target.state_dict()
    input_dims = _input_dims(target)
    filled = []
    with torch.no_grad():
        for key, trained in source.items():
            name = prefix + key
            if name not in state:
                raise UsageError(f"the new network has no parameter {name!r} for the trained {key!r}")
            new = state[name]
            if new.ndim != trained.ndim or any(n < t for n, t in zip(new.shape, trained.shape)):
                raise UsageError(f"{name}: trained shape {tuple(trained.shape)} does not fit {tuple(new.shape)}")
            lead = tuple(slice(0, size) for size in trained.shape)
            if name in input_dims and new.shape != trained.shape:
                _cut_new_inputs(new, trained.shape, input_dims[name])
            new[lead] = trained.to(dtype=new.dtype)
            filled.append(name)
    return filled


def _cut_new_inputs(weight: Tensor, trained_shape: torch.Size, input_dim: int) -> None:
    """Zero the block connecting new input channels to trained output channels (in place)."""
    output_dim = 1 - input_dim
    block = [slice(None)] * weight.ndim
    block[output_dim] = slice(0, trained_shape[output_dim])
    block[input_dim] = slice(trained_shape[input_dim], None)
    weight[tuple(block)] = 0
