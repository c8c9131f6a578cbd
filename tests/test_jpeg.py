"""JPEG: the surrogate's tables, transforms and its measured gap to Pillow's real codec."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from degradations import JPEG, parse
from degradations.functional.jpeg import (
    dct_matrix,
    jpeg_codec,
    jpeg_encode,
    jpeg_surrogate,
    quantization_tables,
    rgb_to_ycbcr,
    soft_round,
    ycbcr_to_rgb,
)

HARD = 1e4  # soft_round hardness that is hard rounding for all practical purposes


@pytest.fixture(scope="module")
def astronaut() -> torch.Tensor:
    """skimage's astronaut, box-downsampled 512 → 128 and re-quantized to 8 bits, float64 (1, 3, 128, 128)."""
    from skimage import data

    a = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].to(torch.float64) / 255.0
    return (F.avg_pool2d(a, 4) * 255).round() / 255


def _gap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean absolute difference on the 0–255 scale."""
    return float((a - b).abs().mean() * 255)


@pytest.mark.parametrize("subsampling", ["420", "444"])
@pytest.mark.parametrize("quality", [1, 5, 10, 24, 25, 30, 49, 50, 51, 70, 75, 90, 95, 100])
def test_quantization_tables_match_pillow(quality, subsampling):
    img = (np.arange(16 * 16 * 3) % 251).astype(np.uint8).reshape(16, 16, 3)
    with Image.open(io.BytesIO(jpeg_encode(img, quality, subsampling))) as decoded:
        pil = decoded.quantization
    luma, chroma = quantization_tables(torch.tensor([quality]))
    assert luma[0].flatten().tolist() == list(pil[0])
    assert chroma[0].flatten().tolist() == list(pil[1])


def test_quality_50_is_the_annex_k_table():
    luma, chroma = quantization_tables(torch.tensor([50]))
    assert luma[0, 0].tolist() == [16, 11, 10, 16, 24, 40, 51, 61]
    assert chroma[0, 7].tolist() == [99] * 8


def test_dct_is_orthonormal_with_jpeg_scaling():
    d = dct_matrix(8)
    torch.testing.assert_close(d @ d.T, torch.eye(8, dtype=torch.float64), rtol=0, atol=1e-14)
    block = torch.full((8, 8), 3.0, dtype=torch.float64)
    coef = d @ block @ d.T
    assert coef[0, 0].item() == pytest.approx(8 * 3.0)  # JPEG's DC of a flat block is 8x its value
    assert coef.flatten()[1:].abs().max() < 1e-12


def test_color_transform_round_trip_and_gray():
    x = torch.rand(2, 3, 5, 7, dtype=torch.float64) * 255
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(x)), x, rtol=0, atol=1e-10)
    gray = torch.full((1, 3, 1, 1), 77.0, dtype=torch.float64)
    assert rgb_to_ycbcr(gray).flatten().tolist() == pytest.approx([77.0, 128.0, 128.0])


def test_soft_round_properties():
    x = torch.linspace(-3, 3, 6001, dtype=torch.float64)
    for hardness in (2.0, 8.0):
        y = soft_round(x, hardness)
        assert (y.diff() > 0).all(), "strictly increasing"
        ints = torch.arange(-3, 4, dtype=torch.float64)
        torch.testing.assert_close(soft_round(ints, hardness), ints, rtol=0, atol=1e-12)
        torch.testing.assert_close(soft_round(ints + 0.5, hardness), ints + 0.5, rtol=0, atol=1e-12)
    # Continuity where the pieces meet (the cubic r + (x - r)^3 jumps by 0.75 at half-integers).
    eps = 1e-9
    assert abs(soft_round(torch.tensor(1.0 - eps), 8.0) - soft_round(torch.tensor(1.0 + eps), 8.0)) < 1e-8
    # Limits: nearly hard rounding away from the steps, nearly the identity when soft.
    away = x[(x - x.round()).abs() < 0.3]
    assert (soft_round(away, 30.0) - away.round()).abs().max() < 1e-3
    assert (soft_round(x, 1e-3) - x).abs().max() < 1e-3


def test_surrogate_gap_to_real_codec(astronaut):
    """Bounds set a little above the measured values (printed with -s): 420, default hardness 8, 128x128.

    Measured: q=10: 5.27 (clean image: 12.99), q=30: 3.42 (8.71), q=50: 2.88 (7.36), q=70: 2.58 (6.18);
    with hard rounding: 1.64, 1.75, 1.46, 1.53.
    """
    soft_bound = {10: 5.8, 30: 3.8, 50: 3.2, 70: 2.9}
    op = JPEG(quality=30)
    for q, bound in soft_bound.items():
        quality = torch.tensor([q])
        real = jpeg_codec(astronaut, quality, "420")
        soft = op.forward_model(astronaut, {"quality": quality})
        hard = jpeg_surrogate(astronaut, quality, "420", HARD)
        g_soft, g_hard, g_clean = _gap(soft, real), _gap(hard, real), _gap(astronaut, real)
        print(
            f"q={q}: surrogate {g_soft:.3f}, hard-rounded surrogate {g_hard:.3f}, clean image {g_clean:.3f}"
        )
        assert g_soft < bound
        assert g_hard < 1.9  # the pipeline itself (tables, color, subsampling, upsampling) is right
        assert g_soft < 0.65 * g_clean  # and much closer to the codec than doing nothing


def test_surrogate_444_and_odd_sizes(astronaut):
    quality = torch.tensor([30])
    for subsampling in ("420", "444"):
        for crop in (
            astronaut,
            astronaut[..., 5:55, 3:40],
        ):  # 50x37: padded by edge replication, then cropped
            real = jpeg_codec(crop, quality, subsampling)
            hard = jpeg_surrogate(crop, quality, subsampling, HARD)
            assert hard.shape == crop.shape == real.shape
            assert _gap(hard, real) < 1.9


def test_gray_images(astronaut):
    gray = (astronaut.mean(1, keepdim=True) * 255).round() / 255
    quality = torch.tensor([30])
    real = jpeg_codec(gray, quality)
    assert real.shape == gray.shape
    assert _gap(jpeg_surrogate(gray, quality, "420", HARD), real) < 1.0  # measured 0.66


def test_per_sample_quality_and_uint8_rounding(astronaut):
    x = astronaut[..., :32, :48].repeat(2, 1, 1, 1).to(torch.float32)
    op = JPEG()
    p = {"quality": torch.tensor([10, 90])}
    y = op.apply(x, p)
    assert torch.equal(y[0:1], op.apply(x[0:1], {"quality": torch.tensor([10])}))
    assert torch.equal(y[1:2], op.apply(x[1:2], {"quality": torch.tensor([90])}))
    assert _gap(y[0], x[0]) > _gap(y[1], x[1])
    # apply rounds to uint8 first: a sub-level perturbation changes nothing.
    assert torch.equal(op.apply(x + 0.1 / 255, p), y)
    assert torch.equal(y * 255, (y * 255).round())


def test_block_size_and_quality_sampling_is_integer():
    assert JPEG().block_size() == 16 and JPEG(subsampling="444").block_size() == 8
    q = JPEG(quality=(10, 12)).sample_params((500, 3, 8, 8), torch.Generator().manual_seed(0))["quality"]
    assert q.dtype == torch.int64 and set(q.tolist()) == {10, 11, 12}
    assert (
        parse("jpeg(quality=10:70,subsampling=444)").spec()
        == "jpeg(quality=10:70,subsampling=444,hardness=8)"
    )


def test_surrogate_gradient_reaches_the_input(astronaut):
    x = astronaut[..., :16, :16].clone().requires_grad_(True)
    y = jpeg_surrogate(x, torch.tensor([50]))
    (y.sum()).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().mean() > 1e-3


def test_infinite_hardness_rounds_exactly_with_a_straight_through_gradient():
    from degradations.functional.jpeg import soft_round

    x = torch.tensor([-1.7, -0.2, 0.49, 0.51, 2.5, 3.2], dtype=torch.float64, requires_grad=True)
    y = soft_round(x, float("inf"))
    assert torch.equal(y.detach(), torch.round(x.detach()))
    y.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))
    assert parse("jpeg(hardness=inf)").spec().endswith("hardness=inf)")
