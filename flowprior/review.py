"""What an archivist dials back and looks at: the strength blend toward the input and the side-by-side image."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from flowprior.errors import UsageError
from flowprior.io import LazyRows, to_hwc, to_uint


def blend_toward_input(restored: Tensor, observed: Tensor, strength: float, mask: Tensor | None) -> Tensor:
    """``strength * restored + (1 - strength) * observed`` where observed; the restoration where missing."""
    if not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be in [0, 1], got {strength}")
    if strength == 1.0:
        return restored
    blended = (strength * restored.double() + (1.0 - strength) * observed.double()).to(restored.dtype)
    return blended if mask is None else torch.where(mask > 0.5, blended, restored)


def side_by_side(before: Callable[[int, int], Tensor], after, gap: int = 8, extra: Sequence = ()) -> LazyRows:
    """``before | gray divider | after [| divider | extra panel ...]`` along the width, 8-bit (the ``--compare``
    review image), built a block of rows at a time so that a full-resolution review of a large scan is streamed like
    the output.

    Args:
        before: ``before(y0, y1)`` -> (1, C, y1 - y0, W) float rows in [0, 1] (the input).
        after: (H, W, C [+ alpha]) uint8 samples of the restoration, sliced by rows (alpha is left out).
        gap: width of the divider (gray 0.5).
        extra: more (H, W, 1 or C) uint8 panels sliced by rows (the posterior std map); a gray one is repeated
            into the image's channels.
    """
    height, width = after.shape[:2]
    channels = 1 if after.shape[2] in (1, 2) else 3
    gray = to_uint(torch.tensor(0.5), 8)

    def read(y0: int, y1: int) -> np.ndarray:
        divider = np.full((y1 - y0, gap, channels), gray, np.uint8)
        parts = [to_hwc(before(y0, y1), None, 8), divider, after[y0:y1][..., :channels]]
        for panel in extra:
            rows = panel[y0:y1]
            parts += [divider, np.repeat(rows, channels, axis=2) if rows.shape[2] == 1 else rows[..., :channels]]
        return np.concatenate(parts, axis=1)

    return LazyRows((height, (2 + len(extra)) * width + (1 + len(extra)) * gap, channels), np.uint8, read)
