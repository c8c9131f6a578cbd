"""flowprior.tiling: aligned grids, padding, blending weights, params per tile, and streaming (split_range, Blender)
equal to the whole-image reference (tests/tiling_reference.py) whatever the chunking."""

from __future__ import annotations

import doctest
import importlib
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from flowprior import tiling
from flowprior.tiling import iter_chunks, make_grid, split_params_range
from tests.tiling_reference import blend_weights, fold_tiles, merge, pad_to_grid, split
from tests.tiling_reference import split_params as reference_split_params

SIZES = [(1, 1), (5, 7), (63, 64), (64, 64), (65, 130), (70, 45), (257, 131)]
OVERLAPS = [0, 8, 16]
ALIGNS = [1, 8, 16]


def _rand(shape, seed=0, dtype=torch.float64):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def split_params(params, grid, batch, spatial_keys=None):
    """The package's params of every tile (one range over all of them)."""
    return split_params_range(params, grid, batch, 0, batch * grid.num_tiles, spatial_keys)


def _coverage(grid) -> np.ndarray:
    cov = np.zeros(grid.padded_size, dtype=np.int64)
    for y, x in grid.origins:
        cov[y : y + grid.tile, x : x + grid.tile] += 1
    return cov


@pytest.mark.parametrize("align", ALIGNS)
@pytest.mark.parametrize("overlap", OVERLAPS)
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_split_merge_identity_and_grid_invariants(size, overlap, align):
    h, w = size
    grid = make_grid(h, w, tile=64, overlap=overlap, align=align)
    # Aligned regular origins, effective overlap >= requested, last tile flush with the padded border.
    assert all(y % align == 0 and x % align == 0 for y, x in grid.origins)
    assert grid.stride % align == 0 and grid.overlap >= overlap and grid.overlap == 64 - grid.stride
    assert grid.num_tiles == len(grid.ys) * len(grid.xs)
    assert grid.padded_height == grid.ys[-1] + 64 and grid.padded_width == grid.xs[-1] + 64
    assert np.diff(grid.ys).tolist() == [grid.stride] * (len(grid.ys) - 1)
    assert grid.padded_height >= max(h, 64) and grid.padded_width >= max(w, 64)
    # No wasted tile: dropping the last row/column of tiles would leave image pixels uncovered.
    assert len(grid.ys) == 1 or grid.ys[-1] < h
    assert len(grid.xs) == 1 or grid.xs[-1] < w
    assert (_coverage(grid) >= 1).all()

    x = _rand((2, 3, h, w), seed=h * 1000 + w)
    tiles = split(x, grid)
    assert tiles.shape == (2 * grid.num_tiles, 3, 64, 64)
    out = merge(tiles, grid, batch=2)
    assert out.shape == x.shape and out.dtype == torch.float64
    assert (out - x).abs().max().item() < 1e-12


@pytest.mark.parametrize("window", ["cosine", "linear"])
@pytest.mark.parametrize(
    "h, w, overlap, align",
    [(257, 131, 8, 1), (200, 90, 16, 8), (150, 150, 40, 16), (64, 64, 8, 1), (100, 300, 30, 1)],
)
def test_blend_weights_partition_unity(h, w, overlap, align, window):
    # (150, 150, 40, 16): stride 16, effective overlap 48 > P/2, so up to four tiles share a pixel per axis.
    grid = make_grid(h, w, tile=64, overlap=overlap, align=align, window=window)
    wts = blend_weights(grid)
    assert wts.shape == (grid.num_tiles, 64, 64) and wts.dtype == torch.float64
    assert (wts > 0).all() and (wts <= 1 + 1e-15).all()
    total = fold_tiles(wts[:, None], grid, batch=1)[0, 0]
    assert (total - 1).abs().max().item() < 1e-12


def test_weights_are_flat_away_from_overlaps_and_golden_ramp():
    grid = make_grid(120, 64, tile=64, overlap=8, align=1, window="linear")
    assert grid.ys == (0, 56) and grid.xs == (0,)
    wts = blend_weights(grid)
    # Top tile: 1 down to row 55, then the linear ramp (d + 0.5) / 8 descending; no ramp across columns.
    assert torch.equal(wts[0, :56], torch.ones(56, 64, dtype=torch.float64))
    expected = 1 - (torch.arange(8, dtype=torch.float64) + 0.5) / 8
    torch.testing.assert_close(wts[0, 56:, 0], expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(wts[1, :8, 17], 1 - expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("window", ["cosine", "linear"])
def test_merge_of_constant_tiles_blends_convexly(window):
    grid = make_grid(64, 120, tile=64, overlap=8, align=1, window=window)
    tiles = torch.tensor([0.2, 0.8], dtype=torch.float64).view(2, 1, 1, 1).expand(2, 1, 64, 64)
    row = merge(tiles, grid, batch=1)[0, 0, 10]
    assert torch.all(row[:56] == 0.2) and torch.all(row[64:] == 0.8)
    ramp = row[56:64]
    assert torch.all(ramp[1:] > ramp[:-1])  # monotone across the seam
    # Complementary weights: symmetric pairs across the overlap average to the mean of the two tiles.
    torch.testing.assert_close(ramp + ramp.flip(0), torch.full((8,), 1.0, dtype=torch.float64))
    if window == "linear":
        r = (torch.arange(8, dtype=torch.float64) + 0.5) / 8
        torch.testing.assert_close(ramp, 0.2 * (1 - r) + 0.8 * r)


def test_golden_grid_and_alignment_widens_overlap():
    grid = make_grid(130, 65, tile=64, overlap=8, align=1)
    assert grid.ys == (0, 56, 112) and grid.xs == (0, 56)
    assert grid.padded_size == (176, 120) and grid.num_tiles == 6
    assert grid.origins[:3] == ((0, 0), (0, 56), (56, 0))  # row-major
    g16 = make_grid(200, 200, tile=64, overlap=8, align=16)
    assert g16.stride == 48 and g16.overlap == 16 and g16.ys == (0, 48, 96, 144)
    small = make_grid(5, 7, tile=64)
    assert small.origins == ((0, 0),) and small.padded_size == (64, 64)


def test_padding_reflects_bottom_right_and_falls_back_to_replicate():
    # 50 rows padded to 64 (reflect fits); 7 columns padded to 64 (replicate fallback).
    x = _rand((2, 3, 50, 7))
    grid = make_grid(50, 7, tile=64)
    padded = pad_to_grid(x, grid)
    assert padded.shape == (2, 3, 64, 64)
    assert torch.equal(padded[..., :50, :7], x)  # image stays top-left: origins keep its block grid
    rows = F.pad(x, (0, 0, 0, 14), mode="reflect")
    assert torch.equal(padded[..., :7], rows)
    assert torch.equal(padded, F.pad(rows, (0, 57, 0, 0), mode="replicate"))
    one = pad_to_grid(torch.tensor([[[[0.25]]]]), make_grid(1, 1, tile=8, overlap=0))
    assert torch.equal(one, torch.full((1, 1, 8, 8), 0.25))


def test_tiles_are_the_padded_windows_at_the_origins():
    x = _rand((2, 2, 70, 45), seed=3)
    grid = make_grid(70, 45, tile=32, overlap=8, align=8)
    padded, tiles = pad_to_grid(x, grid), split(x, grid)
    for b, (t, (y, xo)) in itertools.product(range(2), enumerate(grid.origins)):
        assert torch.equal(tiles[b * grid.num_tiles + t], padded[b, :, y : y + 32, xo : xo + 32])


@pytest.mark.parametrize("size", [(64, 64), (100, 90)])
def test_no_aliasing_and_no_mutation(size):
    x = _rand((1, 3, *size), seed=5)
    x_before = x.clone()
    grid = make_grid(*size, tile=64, overlap=8)
    tiles = tiling.split_range(x, grid, 0, grid.num_tiles)
    tiles_before = tiles.clone()
    out = torch.empty_like(x)
    tiling.Blender(grid, lambda b, y0, y1, rows: out[..., y0:y1, :].copy_(rows)).add(tiles)
    assert torch.equal(tiles, tiles_before)  # blending leaves its input alone
    tiles.add_(1.0)
    assert torch.equal(x, x_before)  # writing into tiles never reaches the image


def test_masks_split_in_any_dtype():
    mask = torch.rand((2, 1, 65, 70), generator=torch.Generator().manual_seed(7)) > 0.5
    grid = make_grid(65, 70, tile=64, overlap=8, align=8)
    tiles = split(mask, grid)
    assert tiles.dtype == torch.bool and tiles.shape == (2 * grid.num_tiles, 1, 64, 64)
    assert (merge(tiles.double(), grid, batch=2) - mask.double()).abs().max().item() < 1e-12


def test_split_params_spatial_and_per_image():
    b, h, w = 2, 70, 45
    grid = make_grid(h, w, tile=64, overlap=8, align=8)
    t = grid.num_tiles
    x = _rand((b, 3, h, w), seed=11)
    mask = (_rand((b, 1, h, w), seed=12) > 0.3).double()
    params = {"quality": torch.tensor([30.0, 70.0]), "sigma": torch.tensor([[0.1], [0.2]]), "mask": mask}
    before = {k: v.clone() for k, v in params.items()}
    out = split_params(params, grid, batch=b)
    assert set(out) == set(params)
    assert out["quality"].tolist() == [30.0] * t + [70.0] * t
    assert out["sigma"].shape == (b * t, 1) and torch.equal(out["sigma"][t:], torch.full((t, 1), 0.2))
    assert torch.equal(out["mask"], split(mask, grid))
    assert all(torch.equal(out[k], v) for k, v in reference_split_params(params, grid, batch=b).items())
    # Mask tiles follow image tiles pixel for pixel, padding included (same reflect as the image).
    joint = split(torch.cat([x, mask], dim=1), grid)
    assert torch.equal(joint[:, 3:], out["mask"]) and torch.equal(joint[:, :3], split(x, grid))
    assert all(torch.equal(params[k], before[k]) for k in params)


@pytest.mark.parametrize("size,overlap,align", [((150, 210), 8, 1), ((100, 70), 8, 8), ((257, 131), 16, 8),
                                                ((5, 7), 8, 1), ((150, 150), 20, 8)])
def test_split_range_and_the_blender_stream_what_split_and_merge_do_at_once(size, overlap, align):
    grid = make_grid(*size, tile=32, overlap=overlap, align=align)
    x = _rand((2, 3, *size), seed=21, dtype=torch.float32)
    tiles = split(x, grid)
    reads = []

    def read(b, y0, y1):  # what a file-backed reader sees
        reads.append(y1 - y0)
        return x[b : b + 1, :, y0:y1]

    n = len(tiles)
    for start, stop in [(0, n), (0, 1), (n // 3, n - 1), (grid.num_tiles - 1, grid.num_tiles + 1)]:
        assert torch.equal(tiling.split_range(read, grid, start, stop), tiles[start:stop])
    tiling.split_range(read, grid, 1, 2)
    assert reads[-1] <= grid.tile  # one tile reads one tile's rows (or fewer: the image is shorter)
    params = {"quality": torch.tensor([30.0, 70.0]), "mask": (x[:, :1] > 0.5).float()}
    whole = reference_split_params(params, grid, batch=2)
    start, stop = min(3, n - 1), max(n - 2, min(3, n - 1) + 1)
    part = tiling.split_params_range(params, grid, 2, start, stop)
    assert all(torch.equal(part[k], whole[k][start:stop]) for k in params)
    reference = merge(tiles, grid, batch=2)
    outputs = {}
    for chunk in (n, 1, 5, len(grid.xs) + 1):
        out, order = torch.full_like(x, float("nan")), []

        def emit(b, y0, y1, rows, out=out, order=order):
            out[b : b + 1, :, y0:y1] = rows
            order.append((b, y0, y1))

        blender = tiling.Blender(grid, emit)
        for rows in iter_chunks(n, chunk):
            blender.add(tiles[rows.start : rows.stop])
        assert [y0 for b, y0, _ in order if b == 0] == [0] + [y1 for b, _, y1 in order if b == 0][:-1]
        assert order[-1] == (1, order[-1][1], size[0])  # every row once, top to bottom, image after image
        outputs[chunk] = out
        torch.testing.assert_close(out, reference, rtol=0, atol=1e-6)  # float32 rounding of a float64 sum
    assert all(torch.equal(out, outputs[n]) for out in outputs.values())  # chunking never changes a bit


def test_blend_weights_are_the_product_of_normalized_axis_profiles():
    grid = make_grid(150, 150, tile=64, overlap=40, align=16)  # stride 16: four tiles share a pixel per axis
    wts = blend_weights(grid)
    cols = len(grid.xs)
    torch.testing.assert_close(wts[cols + 2], wts[cols + 2, :, :1] * wts[2, :1, :] / wts[2, 0, 0], rtol=1e-12, atol=0)


def test_split_params_errors_and_explicit_spatial_keys():
    grid = make_grid(5, 5, tile=8, overlap=2)
    kernel = _rand((2, 1, 5, 5))
    # Shape alone would call a 5x5 kernel on a 5x5 image spatial; spatial_keys disambiguates.
    assert split_params({"kernel": kernel}, grid, 2)["kernel"].shape == (2, 1, 8, 8)
    kept = split_params({"kernel": kernel}, grid, 2, spatial_keys=())["kernel"]
    assert torch.equal(kept, kernel)
    with pytest.raises(ValueError, match="'quality'.*batch"):
        split_params({"quality": torch.tensor([1.0, 2.0, 3.0])}, grid, batch=2)
    with pytest.raises(ValueError, match="'quality'"):
        split_params({"quality": torch.tensor(1.0)}, grid, batch=1)
    with pytest.raises(ValueError, match="'mask'"):
        split_params({"mask": torch.ones(2, 1, 4, 4)}, grid, batch=2, spatial_keys={"mask"})


def test_iter_chunks_cover_and_chunked_solve_matches():
    assert iter_chunks(10, 4) == [range(4), range(4, 8), range(8, 10)]
    assert iter_chunks(8, 8) == [range(8)] and iter_chunks(0, 3) == []
    for n, m in [(1, 1), (17, 5), (64, 100)]:
        chunks = iter_chunks(n, m)
        assert [i for r in chunks for i in r] == list(range(n)) and max(len(r) for r in chunks) <= m
    grid = make_grid(100, 100, tile=32, overlap=8)
    tiles = split(_rand((2, 1, 100, 100)), grid)
    chunked = torch.cat([tiles[r.start : r.stop] * 2 for r in iter_chunks(len(tiles), 7)])
    torch.testing.assert_close(merge(chunked, grid, 2), merge(tiles * 2, grid, 2), rtol=0, atol=0)
    with pytest.raises(ValueError, match="max_tiles"):
        iter_chunks(5, 0)


def test_invalid_arguments():
    with pytest.raises(ValueError, match="overlap"):
        make_grid(10, 10, tile=8, overlap=8)
    with pytest.raises(ValueError, match="align"):
        make_grid(100, 100, tile=64, overlap=56, align=16)
    with pytest.raises(ValueError, match="window"):
        make_grid(10, 10, window="hann")
    with pytest.raises(ValueError, match="positive"):
        make_grid(0, 10)
    grid = make_grid(20, 20, tile=16, overlap=4)
    with pytest.raises(ValueError, match=r"param 'mask' must have shape \(B, C, 20, 20\)"):
        split_params({"mask": torch.zeros(1, 1, 20, 21)}, grid, 1, spatial_keys={"mask"})


def test_module_doctests():
    attempted = 0
    for name in ("flowprior.tiling", "flowprior.tiling.grid", "flowprior.tiling.cut", "flowprior.tiling.blend"):
        result = doctest.testmod(importlib.import_module(name))
        assert result.failed == 0, name
        attempted += result.attempted
    assert attempted >= 8
