"""Cutting tiles out of an image (or its degradation params), a range of tiles at a time, from only the image rows
they cover: of a tensor, or of an image read by rows (:data:`RowReader`). The image is padded bottom/right, by
reflection where it can, else by replication (:func:`pad_index`)."""

from __future__ import annotations

from collections.abc import Callable, Collection

import torch
from torch import Tensor

from flowprior.tiling.grid import TileGrid


def pad_index(size: int, padded: int, device: torch.device) -> Tensor:
    """Source index of each padded position on one axis: reflect, or replicate where reflect cannot reach."""
    idx = torch.arange(padded, device=device)
    extra = padded - size
    if extra == 0:
        return idx
    if extra < size:  # reflect without repeating the edge (like F.pad mode="reflect")
        return torch.where(idx < size, idx, 2 * (size - 1) - idx)
    return idx.clamp(max=size - 1)


def check_spatial(x: Tensor, grid: TileGrid, name: str = "x") -> None:
    if x.dim() != 4 or tuple(x.shape[-2:]) != (grid.height, grid.width):
        raise ValueError(
            f"{name} must have shape (B, C, {grid.height}, {grid.width}) for this grid, got {tuple(x.shape)}"
        )


#: ``rows(b, y0, y1)`` -> (1, C, y1 - y0, W): rows ``y0..y1-1`` of image ``b`` of a batch that is read by rows.
RowReader = Callable[[int, int, int], Tensor]


def _reader(source: Tensor | RowReader) -> RowReader:
    if isinstance(source, Tensor):
        return lambda b, y0, y1: source[b : b + 1, :, y0:y1]
    return source


def padded_rows(source: Tensor | RowReader, grid: TileGrid, item: int, top: int, bottom: int) -> Tensor:
    """Rows ``top..bottom-1`` of image ``item`` padded to the grid's size, reading only the image rows they come
    from.

    Args:
        source: a (B, C, H, W) tensor, or a :data:`RowReader`.
        grid: from :func:`make_grid` for (H, W).
        item: which image of the batch.
        top, bottom: padded rows, ``0 <= top < bottom <= grid.padded_height``.

    Returns:
        (1, C, bottom - top, padded_width), a fresh tensor.
    """
    iy = pad_index(grid.height, grid.padded_height, torch.device("cpu"))[top:bottom]
    low, high = int(iy.min()), int(iy.max()) + 1
    block = _reader(source)(item, low, high)
    if bottom > grid.height:  # reflected or replicated rows below the image
        block = block.index_select(-2, (iy - low).to(block.device))
    return block.index_select(-1, pad_index(grid.width, grid.padded_width, block.device))


def split_range(source: Tensor | RowReader, grid: TileGrid, start: int, stop: int) -> Tensor:
    """Tiles ``start..stop-1`` of the batch (tile t of item b at ``b * T + t``: the padded image's P×P window at
    origin t), cut from the rows they cover only: a chunk of tiles never needs the whole image in memory.

    Args:
        source: a (B, C, H, W) tensor, or a :data:`RowReader` (e.g. one that decodes rows of a file on demand).
        grid: from :func:`make_grid` for (H, W).
        start, stop: tile indices, ``0 <= start < stop <= B * T``.

    Returns:
        (stop - start, C, P, P), contiguous: a fresh tensor, so writing into it never touches ``source``.
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


def split_params_range(
    params: dict[str, Tensor],
    grid: TileGrid,
    batch: int,
    start: int,
    stop: int,
    spatial_keys: Collection[str] | None = None,
) -> dict[str, Tensor]:
    """Give tiles ``start..stop-1`` the degradation parameters of their image, without cutting the others.

    Spatial params (masks, per-pixel noise maps) are padded and cut exactly like the image (:func:`split_range`),
    so the padded region of every tile is a consistent mirror of (observation, params): a reflected observation next
    to a replicated mask would mark a reflected missing pixel as observed. Everything else is repeated per tile.

    Args:
        params: tensors with the batch first. Unless ``spatial_keys`` is given, a tensor is spatial when it
            has shape (B, c, H, W) with (H, W) the grid's image size.
        grid: from :func:`make_grid`.
        batch: number of images B.
        start, stop: tile indices, ``0 <= start < stop <= B * T``.
        spatial_keys: explicit set of spatial keys, for when shape alone is ambiguous (e.g. a k×k kernel on a
            k×k image).

    Returns:
        A new dict: spatial values (stop - start, c, P, P), others (stop - start, ...), in tile order.

    Raises:
        ValueError: a value without the batch as first dimension, or a spatial key of the wrong shape.
    """
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
            check_spatial(value, grid, name=f"param {key!r}")
            out[key] = split_range(value, grid, start, stop)
        else:
            out[key] = value[torch.arange(start, stop, device=value.device) // grid.num_tiles]
    return out
