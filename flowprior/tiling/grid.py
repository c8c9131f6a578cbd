"""Where the tiles of an image lie: :func:`make_grid` lays out aligned, overlapping origins (:class:`TileGrid`),
and :func:`iter_chunks` cuts the tile indices into bounded chunks."""

from __future__ import annotations

import math
from dataclasses import dataclass

WINDOWS = ("cosine", "linear")


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of one image size lie. Built by :func:`make_grid`; independent of device and batch.

    Attributes:
        height, width: size of the image (before padding).
        tile: tile side P.
        overlap: effective overlap ``tile - stride`` (≥ the requested one when ``align`` rounded the stride
            down).
        stride: distance between neighbouring origins, a multiple of ``align``.
        align: every origin is a multiple of this.
        padded_height, padded_width: size after bottom/right padding; the last tile ends exactly there.
        ys, xs: origin rows and columns.
        origins: (y, x) of every tile, row-major.
        window: blending window, ``"cosine"`` or ``"linear"``.
    """

    height: int
    width: int
    tile: int
    overlap: int
    stride: int
    align: int
    padded_height: int
    padded_width: int
    ys: tuple[int, ...]
    xs: tuple[int, ...]
    origins: tuple[tuple[int, int], ...]
    window: str = "cosine"

    @property
    def num_tiles(self) -> int:
        """Tiles per image."""
        return len(self.origins)

    @property
    def padded_size(self) -> tuple[int, int]:
        """(padded_height, padded_width)."""
        return self.padded_height, self.padded_width


def _axis_origins(size: int, tile: int, stride: int) -> tuple[int, ...]:
    count = 1 if size <= tile else 1 + math.ceil((size - tile) / stride)
    return tuple(i * stride for i in range(count))


def make_grid(
    height: int, width: int, tile: int = 64, overlap: int = 8, align: int = 1, *, window: str = "cosine"
) -> TileGrid:
    """Lay out aligned, overlapping tiles over an image of the given size.

    Args:
        height, width: image size in pixels (≥ 1).
        tile: tile side P (the prior's patch size).
        overlap: requested overlap between neighbouring tiles, ``0 <= overlap < tile``.
        align: origins are multiples of this (1: free; 8: JPEG blocks; 16: JPEG 4:2:0 macroblocks). The stride
            ``tile - overlap`` is rounded down to a multiple of ``align``, which may enlarge the overlap.
        window: blending window across overlaps, ``"cosine"`` (raised cosine) or ``"linear"``.

    Returns:
        The :class:`TileGrid`.

    Raises:
        ValueError: on non-positive sizes, an overlap outside ``[0, tile)``, or when no positive stride
            that is a multiple of ``align`` fits (``tile - overlap < align``).
    """
    if height < 1 or width < 1:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if tile < 1 or align < 1:
        raise ValueError(f"tile and align must be >= 1, got tile={tile}, align={align}")
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile={tile}), got {overlap}")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    stride = (tile - overlap) // align * align
    if stride < 1:
        raise ValueError(
            f"tile - overlap = {tile - overlap} is smaller than align = {align}: no aligned stride fits"
        )
    ys = _axis_origins(height, tile, stride)
    xs = _axis_origins(width, tile, stride)
    return TileGrid(
        height=height,
        width=width,
        tile=tile,
        overlap=tile - stride,
        stride=stride,
        align=align,
        padded_height=ys[-1] + tile,
        padded_width=xs[-1] + tile,
        ys=ys,
        xs=xs,
        origins=tuple((y, x) for y in ys for x in xs),
        window=window,
    )


def observed_grid(grid: TileGrid, factor: int, height: int, width: int) -> TileGrid:
    """The tiles of a ``height`` x ``width`` observation that is ``grid``'s image downsampled by ``factor``: tile
    ``t`` is the low-resolution region of ``grid``'s tile ``t`` (origins / factor, side ``tile // factor``), so
    :func:`~flowprior.tiling.split_range` cuts each clean-grid tile's own observation. A downsampling crops to a
    multiple of the factor, so a tile side that is not one (64 px at x3) observes its first ``tile // factor``
    low-resolution pixels (63 px) and leaves the last row and column to the prior.

    Raises:
        ValueError: origins not on the factor's grid (``grid.align`` must be a multiple of it), or an observation
            that is not the grid's image downsampled.
    """
    if factor == 1:
        return grid
    if grid.align % factor or (grid.height // factor, grid.width // factor) != (height, width):
        raise ValueError(f"a {height}x{width} observation is not the x{factor} downsampling of a "
                         f"{grid.height}x{grid.width} grid aligned to {grid.align}")
    tile, ys, xs = grid.tile // factor, tuple(y // factor for y in grid.ys), tuple(x // factor for x in grid.xs)
    return TileGrid(height=height, width=width, tile=tile, overlap=tile - grid.stride // factor,
                    stride=grid.stride // factor, align=grid.align // factor, padded_height=ys[-1] + tile,
                    padded_width=xs[-1] + tile, ys=ys, xs=xs, origins=tuple((y, x) for y in ys for x in xs),
                    window=grid.window)


def iter_chunks(num_tiles: int, max_tiles: int) -> list[range]:
    """Consecutive index ranges of at most ``max_tiles`` covering ``range(num_tiles)``, to bound memory.

    Use as ``tiles[r.start:r.stop]``.

    Example:
        >>> iter_chunks(10, 4)
        [range(0, 4), range(4, 8), range(8, 10)]
    """
    if num_tiles < 0 or max_tiles < 1:
        raise ValueError(f"need num_tiles >= 0 and max_tiles >= 1, got {num_tiles}, {max_tiles}")
    return [range(i, min(i + max_tiles, num_tiles)) for i in range(0, num_tiles, max_tiles)]
