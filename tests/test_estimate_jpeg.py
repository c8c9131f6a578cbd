"""JPEG history (issue 15, item 2): tables from files; grid and quality from pixels, on the test photos."""

from __future__ import annotations

import functools
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from degradations import parse
from degradations.functional.jpeg import quantization_tables
from flowprior.estimate.jpeg import detect_jpeg_grid, ijg_quality, inspect_jpeg_file


@functools.cache
def _never_compressed(name: str) -> torch.Tensor:
    """The photo halved by area averaging, which erases the JPEG history the sample file itself may have."""
    from skimage import data

    arr = getattr(data, name)()[..., :3]
    x = torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1)[None].float()
    return (F.interpolate(x, scale_factor=0.5, mode="area") * 255).round() / 255


def _jpeg_bytes(arr: np.ndarray, **options) -> io.BytesIO:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", **options)
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    "quality,subsampling,name", [(10, 2, "420"), (37, 0, "444"), (90, 1, "422"), (75, 2, "420")]
)
def test_file_tables_give_the_exact_ijg_quality(quality, subsampling, name):
    arr = np.asarray(Image.new("RGB", (64, 48), (120, 60, 30)))
    info = inspect_jpeg_file(_jpeg_bytes(arr, quality=quality, subsampling=subsampling))
    assert info.match.exact and info.match.quality == quality and info.subsampling == name
    luma, chroma = quantization_tables(torch.tensor([quality]))
    assert (info.luma_table == luma[0].numpy()).all() and (info.chroma_table == chroma[0].numpy()).all()


def test_gray_file_and_foreign_tables():
    gray = np.full((32, 32), 100, np.uint8)
    info = inspect_jpeg_file(_jpeg_bytes(gray, quality=60))
    assert info.subsampling == "gray" and info.chroma_table is None and info.match.quality == 60
    foreign = inspect_jpeg_file(_jpeg_bytes(gray, qtables=[list(range(1, 65))]))
    assert not foreign.match.exact and foreign.match.distance > 0.05
    assert ijg_quality(quantization_tables(torch.tensor([42]))[0][0].numpy()).quality == 42


def test_png_is_not_a_jpeg_file():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    assert inspect_jpeg_file(buf) is None


@pytest.mark.parametrize(
    "name,quality,crop",
    [("coffee", 10, (0, 0)), ("chelsea", 50, (3, 5)), ("astronaut", 90, (0, 0)), ("coffee", 70, (6, 1))],
)
def test_quality_from_pixels_within_ten(name, quality, crop):
    x = _never_compressed(name)
    op = parse("jpeg", {"jpeg.quality": quality})
    y = op.apply(x, op.sample_params(tuple(x.shape)))[..., crop[0] :, crop[1] :]
    found = detect_jpeg_grid(y)
    assert found.detected and abs(found.quality - quality) <= 10
    assert found.grid_offset == (-crop[0] % 8, -crop[1] % 8)


@pytest.mark.parametrize("name,sigma", [("astronaut", 0), ("coffee", 0), ("chelsea", 5)])
def test_never_compressed_pixels_are_not_called_jpeg(name, sigma):
    x = _never_compressed(name)
    if sigma:
        op = parse("noise", {"noise.sigma": sigma})
        x = op.apply(x, op.sample_params(tuple(x.shape), torch.Generator().manual_seed(1)))
    assert not detect_jpeg_grid((x * 255).round() / 255).detected


def test_tiny_image_is_undecided():
    assert not detect_jpeg_grid(np.zeros((10, 10), np.uint8)).detected


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    op = parse("jpeg", {"jpeg.quality": quality})
    return op.apply(x, op.sample_params(tuple(x.shape)))


@pytest.mark.parametrize("quality", [10, 30])
def test_a_smooth_crop_of_a_jpeg_saved_again_coarsely_is_read_on_its_new_grid(quality):
    # A smooth photo's coarse JPEG decodes mostly to constant blocks, which the lattice test cannot use; cut
    # from an older q70 JPEG, the older grid at another offset then won: q10 read as q69, q30 as q81 (2026-12-02).
    from scipy.ndimage import gaussian_filter

    crop = _never_compressed("chelsea")[..., :256, :256].double().numpy()
    smooth = torch.from_numpy((gaussian_filter(crop, sigma=(0, 0, 16, 16)) * 255).round() / 255).float()
    older = _jpeg(smooth, 70)[..., 3:, 5:]
    found = detect_jpeg_grid(_jpeg(older, quality))
    assert found.detected and abs(found.quality - quality) <= 2, found.quality  # the issue allows 10
    assert found.grid_offset == (0, 0)
