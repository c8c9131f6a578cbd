"""The whole-image tiling that :mod:`flowprior.tiling` streams, kept as the reference its tests compare against:
pad the whole image, cut every tile at once, blend every tile at once.

This is what the package did before it streamed (``split``, ``merge``, ``split_params``); nothing in the package
needs it any more, but "streaming gives the same values, whatever the chunking" needs something to equal."""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F
from torch import Tensor

from flowprior.tiling import TileGrid
from flowprior.tiling.blend import axis_weights, row_weights
from flowprior.tiling.cut import check_spatial, pad_index


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
    check_spatial(x, grid)
    iy = pad_index(grid.height, grid.padded_height, x.device)
    ix = pad_index(grid.width, grid.padded_width, x.device)
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


def fold_tiles(tiles: Tensor, grid: TileGrid, batch: int) -> Tensor:
    """Sum (batch * T, C, P, P) tiles into (batch, C, padded_height, padded_width) at their origins."""
    c, p = tiles.shape[1], grid.tile
    cols = tiles.reshape(batch, grid.num_tiles, c * p * p).transpose(1, 2)
    return F.fold(cols, grid.padded_size, kernel_size=p, stride=grid.stride)


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
    wy = axis_weights(grid.ys, grid.padded_height, grid, device)
    wx = axis_weights(grid.xs, grid.padded_width, grid, device)
    return torch.cat([row_weights(grid, wy, wx, row) for row in range(len(grid.ys))])


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
    out = fold_tiles(tiles.to(torch.float64) * w, grid, batch)
    return out[..., : grid.height, : grid.width].to(tiles.dtype)


def split_params(
    params: dict[str, Tensor], grid: TileGrid, batch: int, spatial_keys: Collection[str] | None = None
) -> dict[str, Tensor]:
    """Every tile's degradation params at once: spatial ones (shape (B, c, H, W), or named in ``spatial_keys``)
    cut like the image, the others repeated per tile."""
    out = {}
    for key, value in params.items():
        if spatial_keys is None:
            spatial = value.dim() == 4 and tuple(value.shape[-2:]) == (grid.height, grid.width)
        else:
            spatial = key in spatial_keys
        out[key] = split(value, grid) if spatial else value.repeat_interleave(grid.num_tiles, dim=0)
    return out
