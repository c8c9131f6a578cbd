"""Blending restored tiles back into image rows: separable windows (a raised cosine or linear ramp across each
overlap, flat elsewhere) normalized per axis in float64 so the weights of every pixel sum to 1, and the
:class:`Blender` that applies them as tiles arrive."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from flowprior.tiling.grid import TileGrid


def _ramp(overlap: int, window: str, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Rising profile over the overlap, strictly inside (0, 1), with ramp[d] + ramp[overlap-1-d] == 1."""
    u = (torch.arange(overlap, dtype=dtype, device=device) + 0.5) / overlap
    return u if window == "linear" else torch.sin(0.5 * math.pi * u) ** 2


def _axis_profiles(count: int, grid: TileGrid, device: torch.device) -> Tensor:
    """(count, P) raw window profiles along one axis; flat on sides without a neighbouring tile."""
    p, o = grid.tile, grid.overlap
    prof = torch.ones(count, p, dtype=torch.float64, device=device)
    if o == 0 or count == 1:
        return prof
    ramp = _ramp(o, grid.window, torch.float64, device)
    prof[1:, :o] *= ramp
    prof[:-1, p - o :] *= ramp.flip(0)
    return prof


def axis_weights(origins: tuple[int, ...], padded: int, grid: TileGrid, device: torch.device) -> Tensor:
    """(count, P) window profiles along one axis, each divided by the sum of all profiles at that position (float64),
    so that they sum to 1 along the axis."""
    prof = _axis_profiles(len(origins), grid, device)
    at = torch.tensor(origins, device=device)[:, None] + torch.arange(grid.tile, device=device)  # (count, P)
    total = torch.zeros(padded, dtype=torch.float64, device=device).index_add_(0, at.flatten(), prof.flatten())
    return prof / total[at]  # > 0 everywhere since ramps are strictly positive


def row_weights(grid: TileGrid, wy: Tensor, wx: Tensor, row: int) -> Tensor:
    """(cols, P, P) blending weights of the tiles of tile row ``row`` (from the normalized axis profiles)."""
    return wy[row][None, :, None] * wx[:, None, :]


class Blender:
    """Blend restored tiles back into images while they arrive, handing out each image row once it is final.

    Tiles come in tile order (:func:`split`'s), in chunks of any size. A tile row is blended once all its tiles
    are there, with the weights of :func:`row_weights`, into a float64 accumulator that only spans the rows a
    later tile row can still touch; rows above the next tile row's origin are final and go to ``emit``. The
    arithmetic does not depend on how the tiles were chunked (tile rows are always added in the same order), so
    a streamed restoration gives the same values as one that holds all tiles at once.

    Args:
        grid: the grid the tiles were cut with.
        emit: ``emit(item, y0, y1, rows)`` with ``rows`` (1, C, y1 - y0, W) in the tiles' dtype; every image row
            is emitted exactly once, top to bottom, image after image.
    """

    def __init__(self, grid: TileGrid, emit: Callable[[int, int, int, Tensor], None]):
        self.grid, self.emit = grid, emit
        self.wy = axis_weights(grid.ys, grid.padded_height, grid, torch.device("cpu"))
        self.wx = axis_weights(grid.xs, grid.padded_width, grid, torch.device("cpu"))
        self.pending: list[Tensor] = []  # tiles of the tile row being filled
        self.count = 0  # tiles received
        self.acc: Tensor | None = None  # (1, C, rows, padded_width) float64, from image row `self.done`
        self.done = 0  # image rows of the current item emitted

    def add(self, tiles: Tensor) -> None:
        """Take the next ``len(tiles)`` restored tiles, (n, C, P, P)."""
        cols = len(self.grid.xs)
        while len(tiles):
            take = cols - sum(len(x) for x in self.pending)
            self.pending.append(tiles[:take])
            tiles = tiles[take:]
            if sum(len(x) for x in self.pending) == cols:
                self._blend_row(torch.cat(self.pending))
                self.pending = []

    def _blend_row(self, row_tiles: Tensor) -> None:
        grid, cols, p = self.grid, len(self.grid.xs), self.grid.tile
        item, row = divmod(self.count // cols, len(grid.ys))
        self.count += cols
        c = row_tiles.shape[1]
        weighted = row_tiles.to(torch.float64) * row_weights(grid, self.wy, self.wx, row)[:, None]
        strip = F.fold(weighted.reshape(cols, c * p * p).transpose(0, 1)[None], (p, grid.padded_width),
                       kernel_size=p, stride=grid.stride)  # (1, C, P, padded_width)
        top = grid.ys[row] - self.done
        if self.acc is None:
            self.acc = torch.zeros(1, c, 0, grid.padded_width, dtype=torch.float64)
        if self.acc.shape[2] < top + p:
            grow = torch.zeros(1, c, top + p - self.acc.shape[2], grid.padded_width, dtype=torch.float64)
            self.acc = torch.cat([self.acc, grow], 2)
        self.acc[:, :, top : top + p] += strip
        final = grid.ys[row + 1] if row + 1 < len(grid.ys) else grid.height
        final = min(final, grid.height)
        if final > self.done:
            rows = self.acc[:, :, : final - self.done, : grid.width].to(row_tiles.dtype)
            self.emit(item, self.done, final, rows)
            self.acc = self.acc[:, :, final - self.done :].clone()
            self.done = final
        if row + 1 == len(grid.ys):  # the item is finished
            self.acc, self.done = None, 0
