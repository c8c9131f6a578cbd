"""A learned warm start computed a band of rows at a time, with the same values as on the whole image.

A large image goes through a learned warm start's network in blocks of ``block`` x ``block`` pixels, each with a
halo of ``halo`` pixels of context that is cut off again (``LearnedInitializer``'s block loop). Each block depends
only on its own window of the (per-pixel prepared) input, so :class:`BandedWarmStart` computes the warm start block
row by block row, reading only the input rows a block row's windows cover, and keeps only the block rows that the
solver's current band still needs. Each window is handed to the initializer on its own; a window is smaller than
the initializer's whole-image limit, so it makes one network pass over exactly the pixels the block loop gives it.

That equality needs a network that draws no noise (a fresh generator per window would differ from the block loop's
single generator): :data:`DETERMINISTIC` lists the initializers for which it holds, and no mask (holes are filled
over the whole image first). ``tests/test_restore_cli.py`` checks it against the whole-image call bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from flowprior.warmstart import LearnedInitializer

#: learned warm starts whose network draws no random numbers (IR-Flow: a fixed two-pass sampler)
DETERMINISTIC = frozenset({"irflow"})


def can_band(init: str, height: int, width: int) -> bool:
    """Whether :class:`BandedWarmStart` reproduces ``init`` on a ``height`` x ``width`` image (the image must also have
    no holes to fill: the caller checks that). Small images run in one pass on the whole image, not in blocks."""
    return init in DETERMINISTIC and height * width > LearnedInitializer.max_block_pixels


class BandedWarmStart:
    """``x0(b, y0, y1)`` -> rows ``y0..y1-1`` of ``initializer(y)`` for one image, computed block row by block row.

    Args:
        initializer: a learned warm start (:func:`can_band` holds for it).
        read: ``read(b, y0, y1)`` -> (1, C, y1 - y0, W) float rows of the observation (C = 3).
        op, params: the degradation and its sampled params (per image, nothing the size of the image).
        height, width: the image size.

    Rows come in the solver's tile order (top to bottom): a block row is dropped once a requested band starts below
    it. Each window is computed on its own, so a dropped block row asked for again is recomputed, with the same
    values.
    """

    def __init__(self, initializer, read: Callable[[int, int, int], Tensor], op, params: dict[str, Tensor],
                 height: int, width: int):
        self.initializer, self.read, self.op, self.params = initializer, read, op, params
        self.height, self.width = height, width
        self.block, self.halo = initializer.block, initializer.halo
        self.rows: dict[int, Tensor] = {}  # block row index -> (1, C, rows, W)

    def __call__(self, b: int, y0: int, y1: int) -> Tensor:
        if b != 0:
            raise ValueError("a banded warm start covers one image")
        first, last = y0 // self.block, (y1 - 1) // self.block
        for index in [i for i in self.rows if i < first]:
            del self.rows[index]  # the solver has moved below this block row
        parts = [self._block_row(i) for i in range(first, last + 1)]
        band = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
        top = first * self.block
        return band[..., y0 - top : y1 - top, :]

    def _block_row(self, index: int) -> Tensor:
        if index not in self.rows:
            self.rows[index] = self._compute(index * self.block)
        return self.rows[index]

    def _compute(self, top: int) -> Tensor:
        """Block row starting at image row ``top``: every block's window through the network, its core kept."""
        y0, y1 = max(0, top - self.halo), min(self.height, top + self.block + self.halo)
        bottom = min(self.height, top + self.block)
        rows = self.read(0, y0, y1)
        out = None
        for left in range(0, self.width, self.block):
            x0, x1 = max(0, left - self.halo), min(self.width, left + self.block + self.halo)
            right = min(self.width, left + self.block)
            piece = self.initializer(rows[..., x0:x1], self.op, self.params)
            if out is None:
                out = torch.empty((1, piece.shape[1], bottom - top, self.width), dtype=piece.dtype)
            out[..., :, left:right] = piece[..., top - y0 : bottom - y0, left - x0 : right - x0]
        return out
