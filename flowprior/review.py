"""What an archivist dials back and looks at: the strength blend toward the input and the side-by-side image."""

from __future__ import annotations

import torch
from torch import Tensor

from flowprior.errors import UsageError


def blend_toward_input(restored: Tensor, observed: Tensor, strength: float, mask: Tensor | None) -> Tensor:
    """``strength * restored + (1 - strength) * observed`` where observed; the restoration where missing."""
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be in [0, 1], got {strength}")
    if strength == 1.0:
        return restored
    blended = (strength * restored.double() + (1.0 - strength) * observed.double()).to(restored.dtype)
    return blended if mask is None else torch.where(mask > 0.5, blended, restored)


def side_by_side(before: Tensor, after: Tensor, gap: int = 8) -> Tensor:
    """``before | gray divider | after`` along the width, in ``before``'s dtype (the ``--compare`` review image)."""
    divider = torch.full((*before.shape[:-1], gap), 0.5, dtype=before.dtype)
    return torch.cat([before, divider, after.to(before.dtype)], -1)
