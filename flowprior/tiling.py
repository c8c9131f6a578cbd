"""Cut an image of any size into square, overlapping, block-aligned tiles, and blend them back.

The prior models patches of a fixed size P, so the solver restores an image by cutting it into P×P tiles,
solving all tiles as one batch and blending the results back (Helminger et al. §5 use a margin M = 4 px, i.e.
an overlap of 2M = 8 px; larger overlaps trade compute for smoother seams).

Conventions:

* Tile origins lie on a regular stride ``tile - overlap`` and are all multiples of ``align``, so a JPEG data
  term inside a tile compares the same 8×8 (or 16×16 with 4:2:0 chroma) blocks as the real codec did. The
  stride is therefore rounded *down* to a multiple of ``align``, which can make the effective overlap larger
  than asked; :attr:`TileGrid.overlap` is the effective one.
* The image is padded on the bottom/right only (origins stay on the image's own block grid), up to the last
  tile flush with the padded border and to at least one tile. Padding reflects the image, falling back to
  replicate on an axis where the image is too short to reflect (pad ≥ size, e.g. a 5×7 image in a 64×64 tile).
* Tiles of batch item ``b`` are contiguous: tile ``t`` of item ``b`` is at index ``b * num_tiles + t``, and
  ``t`` runs row-major over the origins.
* Blending uses a separable window (raised cosine or linear ramp across the overlap, flat 1 elsewhere, flat
  also on tile sides that face the image border); each axis profile is divided by the accumulated profiles along
  that axis, in float64, so the weights of all tiles covering a pixel sum to 1 and ``merge(split(x))`` returns
  ``x``.
* Streaming: :func:`split_range` cuts a range of tiles from only the rows it covers (of a tensor, or of an image
  read by rows), and :class:`Blender` blends tiles as they arrive, handing each image row out once final; the
  values are those of :func:`split` and :func:`merge`, whatever the chunking.

Example:
    >>> grid = make_grid(100, 70, tile=64, overlap=8, align=8)
    >>> grid.origins, (grid.padded_height, grid.padded_width)
    (((0, 0), (0, 56), (56, 0), (56, 56)), (120, 120))
    >>> x = torch.rand(2, 3, 100, 70, dtype=torch.float64)
    >>> tiles = split(x, grid)                       # (2 * 4, 3, 64, 64)
    >>> bool((merge(tiles, grid, batch=2) - x).abs().max() < 1e-12)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

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


def _pad_index(size: int, padded: int, device: torch.device) -> Tensor:
    """Source index of each padded position on one axis: reflect, or replicate where reflect cannot reach."""
    idx = torch.arange(padded, device=device)
    extra = padded - size
    if extra == 0:
        return idx
    if extra < size:  # reflect without repeating the edge (like F.pad mode="reflect")
        return torch.where(idx < size, idx, 2 * (size - 1) - idx)
    return idx.clamp(max=size - 1)


def _check_spatial(x: Tensor, grid: TileGrid, name: str = "x") -> None:
    if x.dim() != 4 or tuple(x.shape[-2:]) != (grid.height, grid.width):
        raise ValueError(
            f"{name} must have shape (B, C, {grid.height}, {grid.width}) for this grid, got {tuple(x.shape)}"
        )


def pad_to_grid(x: Tensor, grid: TileGrid) -> Tensor:
    """Pad an image (or mask) on the bottom/right to the grid's padded size.

    Index-based, so it works for any dtype (bool masks included), keeps gradients, and always returns a new
    tensor (never a view of ``x``).

    Args:
        x: (B, C, H, W) with (H, W) equal to the grid's image size.
        grid: from :func:`make_grid`.

    Returns:
        (B, C, padded_height, padded_width).
    """
    _check_spatial(x, grid)
    iy = _pad_index(grid.height, grid.padded_height, x.device)
    ix = _pad_index(grid.width, grid.padded_width, x.device)
    return x.index_select(-2, iy).index_select(-1, ix)


def split_padded(padded: Tensor, grid: TileGrid) -> Tensor:
    """Like :func:`split`, for a tensor already padded to (B, C, padded_height, padded_width)."""
    if padded.dim() != 4 or tuple(padded.shape[-2:]) != grid.padded_size:
        raise ValueError(f"expected padded size (B, C, *{grid.padded_size}), got {tuple(padded.shape)}")
    b, c = padded.shape[:2]
    p, s = grid.tile, grid.stride
    # (B, C, rows, cols, P, P) view; the regular stride makes unfold land exactly on the origins.
    blocks = padded.unfold(2, p, s).unfold(3, p, s)
    return blocks.permute(0, 2, 3, 1, 4, 5).reshape(b * grid.num_tiles, c, p, p)


def split(x: Tensor, grid: TileGrid) -> Tensor:
    """Cut an image batch into tiles.

    Args:
        x: (B, C, H, W) images or (B, 1, H, W) masks, any dtype.
        grid: from :func:`make_grid` for (H, W).

    Returns:
        (B * T, C, P, P) with T = ``grid.num_tiles``; tile t of item b at index ``b * T + t``. A fresh tensor
        (``pad_to_grid`` always copies), so writing into it never touches ``x``.
    """
    return split_padded(pad_to_grid(x, grid), grid)


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


def _fold(tiles: Tensor, grid: TileGrid, batch: int) -> Tensor:
    """Sum (batch * T, C, P, P) tiles into (batch, C, padded_height, padded_width) at their origins."""
    c, p = tiles.shape[1], grid.tile
    cols = tiles.reshape(batch, grid.num_tiles, c * p * p).transpose(1, 2)
    return F.fold(cols, grid.padded_size, kernel_size=p, stride=grid.stride)


def _axis_weights(origins: tuple[int, ...], padded: int, grid: TileGrid, device: torch.device) -> Tensor:
    """(count, P) window profiles along one axis, each divided by the sum of all profiles at that position (float64),
    so that they sum to 1 along the axis."""
    prof = _axis_profiles(len(origins), grid, device)
    at = torch.tensor(origins, device=device)[:, None] + torch.arange(grid.tile, device=device)  # (count, P)
    total = torch.zeros(padded, dtype=torch.float64, device=device).index_add_(0, at.flatten(), prof.flatten())
    return prof / total[at]  # > 0 everywhere since ramps are strictly positive


def _row_weights(grid: TileGrid, wy: Tensor, wx: Tensor, row: int) -> Tensor:
    """(cols, P, P) blending weights of the tiles of tile row ``row`` (from the normalized axis profiles)."""
    return wy[row][None, :, None] * wx[:, None, :]


def blend_weights(grid: TileGrid, device: torch.device | str | None = None) -> Tensor:
    """Per-tile blending weights that sum to 1 at every pixel of the padded image.

    The raw window is separable: a ramp across each overlap with a neighbour, 1 elsewhere. Each axis profile is
    divided by the sum of the profiles of all tiles at that position (float64), and a tile's weight is the product
    of its row and column profiles, so the weights partition unity even when the alignment made the overlap exceed
    half a tile and three tiles share a pixel.

    Args:
        grid: from :func:`make_grid`.
        device: where to build the weights.

    Returns:
        (T, P, P) float64.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    wy = _axis_weights(grid.ys, grid.padded_height, grid, device)
    wx = _axis_weights(grid.xs, grid.padded_width, grid, device)
    return torch.cat([_row_weights(grid, wy, wx, row) for row in range(len(grid.ys))])


def merge(tiles: Tensor, grid: TileGrid, batch: int) -> Tensor:
    """Blend tiles back into images cropped to the grid's image size.

    Computed in float64 (weights times tiles, summed with ``fold``), returned in the tiles' dtype.
    Differentiable.

    Args:
        tiles: (batch * T, C, P, P) floating point, ordered as :func:`split` returns them.
        grid: the grid the tiles were cut with.
        batch: number of images B.

    Returns:
        (B, C, H, W).
    """
    t, p = grid.num_tiles, grid.tile
    if tiles.dim() != 4 or tiles.shape[0] != batch * t or tuple(tiles.shape[-2:]) != (p, p):
        raise ValueError(f"tiles must have shape ({batch} * {t}, C, {p}, {p}), got {tuple(tiles.shape)}")
    if not tiles.is_floating_point():
        raise TypeError(f"merge needs floating point tiles, got {tiles.dtype}")
    w = blend_weights(grid, tiles.device)[:, None].repeat(batch, 1, 1, 1)  # (B*T, 1, P, P)
    out = _fold(tiles.to(torch.float64) * w, grid, batch)
    return out[..., : grid.height, : grid.width].to(tiles.dtype)


def split_params(
    params: dict[str, Tensor], grid: TileGrid, batch: int, spatial_keys: Collection[str] | None = None
) -> dict[str, Tensor]:
    """Give every tile the degradation parameters of its image.

    Spatial params (masks, per-pixel noise maps) are padded and cut exactly like the image, so the padded
    region of every tile is a consistent mirror of (observation, params): a reflected observation next to a
    replicated mask would mark a reflected missing pixel as observed. Everything else is repeated per tile.

    Args:
        params: tensors with the batch first. Unless ``spatial_keys`` is given, a tensor is spatial when it
            has shape (B, c, H, W) with (H, W) the grid's image size.
        grid: from :func:`make_grid`.
        batch: number of images B.
        spatial_keys: explicit set of spatial keys, for when shape alone is ambiguous (e.g. a k×k kernel on a
            k×k image).

    Returns:
        A new dict: spatial values (B * T, c, P, P), others (B * T, ...), in tile order.

    Raises:
        ValueError: a value without the batch as first dimension, or a spatial key of the wrong shape.
    """
    return split_params_range(params, grid, batch, 0, batch * grid.num_tiles, spatial_keys)


def split_params_range(
    params: dict[str, Tensor],
    grid: TileGrid,
    batch: int,
    start: int,
    stop: int,
    spatial_keys: Collection[str] | None = None,
) -> dict[str, Tensor]:
    """``split_params(params, grid, batch)`` restricted to tiles ``start..stop-1``, without cutting the others."""
    out: dict[str, Tensor] = {}
    for key, value in params.items():
        if value.dim() == 0 or value.shape[0] != batch:
            raise ValueError(
                f"param {key!r} must have the batch ({batch}) first, got shape {tuple(value.shape)}"
            )
        if spatial_keys is None:
            spatial = value.dim() == 4 and tuple(value.shape[-2:]) == (grid.height, grid.width)
        else:
            spatial = key in spatial_keys
        if spatial:
            _check_spatial(value, grid, name=f"param {key!r}")
            out[key] = split_range(value, grid, start, stop)
        else:
            out[key] = value[torch.arange(start, stop, device=value.device) // grid.num_tiles]
    return out


# ----------------------------------------------------------------------------------------- streaming by rows

#: ``rows(b, y0, y1)`` -> (1, C, y1 - y0, W): rows ``y0..y1-1`` of image ``b`` of a batch that is read by rows.
RowReader = Callable[[int, int, int], Tensor]


def _reader(source: Tensor | RowReader) -> RowReader:
    if isinstance(source, Tensor):
        return lambda b, y0, y1: source[b : b + 1, :, y0:y1]
    return source


def padded_rows(source: Tensor | RowReader, grid: TileGrid, item: int, top: int, bottom: int) -> Tensor:
    """Rows ``top..bottom-1`` of ``pad_to_grid`` of image ``item``, reading only the image rows they come from.

    Args:
        source: a (B, C, H, W) tensor, or a :data:`RowReader`.
        grid: from :func:`make_grid` for (H, W).
        item: which image of the batch.
        top, bottom: padded rows, ``0 <= top < bottom <= grid.padded_height``.

    Returns:
        (1, C, bottom - top, padded_width), a fresh tensor.
    """
    iy = _pad_index(grid.height, grid.padded_height, torch.device("cpu"))[top:bottom]
    low, high = int(iy.min()), int(iy.max()) + 1
    block = _reader(source)(item, low, high)
    if bottom > grid.height:  # reflected or replicated rows below the image
        block = block.index_select(-2, (iy - low).to(block.device))
    return block.index_select(-1, _pad_index(grid.width, grid.padded_width, block.device))


def split_range(source: Tensor | RowReader, grid: TileGrid, start: int, stop: int) -> Tensor:
    """Tiles ``start..stop-1`` of ``split(x, grid)`` (tile t of item b at ``b * T + t``), cut from the rows they
    cover only: a chunk of tiles never needs the whole image in memory.

    Args:
        source: a (B, C, H, W) tensor, or a :data:`RowReader` (e.g. one that decodes rows of a file on demand).
        grid: from :func:`make_grid` for (H, W).
        start, stop: tile indices, ``0 <= start < stop <= B * T``.

    Returns:
        (stop - start, C, P, P), contiguous; the same values as ``split(x, grid)[start:stop]``.
    """
    t, cols, p, s = grid.num_tiles, len(grid.xs), grid.tile, grid.stride
    parts = []
    for item in range(start // t, (stop - 1) // t + 1):
        first, last = max(start - item * t, 0), min(stop - item * t, t)  # tiles of this item, [first, last)
        top_row, end_row = first // cols, (last - 1) // cols + 1
        block = padded_rows(source, grid, item, grid.ys[top_row], grid.ys[end_row - 1] + p)
        c = block.shape[1]
        tiles = block.unfold(2, p, s).unfold(3, p, s).permute(0, 2, 3, 1, 4, 5).reshape(-1, c, p, p)
        parts.append(tiles[first - top_row * cols : last - top_row * cols])
    return torch.cat(parts).contiguous()


class Blender:
    """Blend restored tiles back into images while they arrive, handing out each image row once it is final.

    Tiles come in tile order (:func:`split`'s), in chunks of any size. A tile row is blended once all its tiles
    are there, with the weights of :func:`blend_weights`, into a float64 accumulator that only spans the rows a
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
        self.wy = _axis_weights(grid.ys, grid.padded_height, grid, torch.device("cpu"))
        self.wx = _axis_weights(grid.xs, grid.padded_width, grid, torch.device("cpu"))
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
        weighted = row_tiles.to(torch.float64) * _row_weights(grid, self.wy, self.wx, row)[:, None]
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
