"""The JPEG quantization constraint: the original lies in the decoded file's bins; clipping into them helps."""

import pytest
import torch
import torch.nn.functional as F

from degradations import parse
from degradations.functional.jpeg import quantization_tables
from degradations.functional.jpeg_bins import project_to_bins
from flowprior.metrics import psnr
from flowprior.warmstart.consistency import NOISE_BOX, consistent_with_input


def coded(clean, quality, subsampling):
    op = parse(f"jpeg(subsampling={subsampling})", {"jpeg.quality": quality})
    params = op.sample_params(tuple(clean.shape))
    return op, params, op.apply(clean, params)


@pytest.mark.parametrize("subsampling", ["420", "444"])
@pytest.mark.parametrize("quality,gain", [(10, 0.05), (50, 1.0), (90, 3.0)])  # measured: +0.1, +2, +6 dB
def test_the_original_sits_in_the_bins_and_a_blurred_estimate_moves_towards_it(make_natural_image, quality, gain,
                                                                                subsampling):
    clean = make_natural_image(72, 88, top=100, left=150)  # sizes that are not multiples of 16
    _, _, y = coded(clean, quality, subsampling)
    luma, chroma = quantization_tables(torch.tensor([quality]))
    assert float(psnr(clean, project_to_bins(clean, y, luma, chroma, subsampling))) > 55  # measured 58-69 dB
    blurred = F.avg_pool2d(F.pad(y, (1, 1, 1, 1), mode="replicate"), 3, 1)
    before = blurred.clone()
    projected = project_to_bins(blurred, y, luma, chroma, subsampling)
    assert torch.equal(blurred, before)  # the caller's tensor is not modified
    assert float(psnr(clean, projected)) > float(psnr(clean, blurred)) + gain


def test_only_a_jpeg_alone_is_clipped(make_natural_image):
    clean = make_natural_image(32, 32)
    op, params, y = coded(clean, 30, "420")
    x0 = torch.full_like(clean, 0.5)
    assert not torch.equal(consistent_with_input(x0, y, op, params), x0)
    chain = parse("noise+jpeg", {"noise.sigma": 10, "jpeg.quality": 30})
    sampled = chain.sample_params(tuple(clean.shape), torch.Generator().manual_seed(0))
    assert torch.equal(consistent_with_input(x0, y, chain, sampled), x0)  # the bins hold the noisy image


def test_holes_alone_keep_every_observed_pixel(make_natural_image):
    clean = make_natural_image(32, 32)
    op = parse("mask", {"mask.coverage": 0.2, "mask.size": 4})
    params = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(0))
    y, observed = op.apply(clean, params), op.observed_mask(params)
    out = consistent_with_input(torch.full_like(clean, 0.5), y, op, params)
    assert torch.equal(out * observed, clean * observed) and (out[(observed == 0).expand_as(out)] == 0.5).all()


def test_nothing_declared_returns_the_input(make_natural_image):
    clean = make_natural_image(32, 32)
    identity = parse("identity", {})
    assert torch.equal(consistent_with_input(torch.zeros_like(clean), clean, identity, {}), clean)


def test_light_noise_keeps_the_estimate_within_the_noise_box_of_the_input(make_natural_image):
    clean = make_natural_image(32, 32)
    noise = parse("noise", {"noise.sigma": 2})
    params = noise.sample_params(tuple(clean.shape), torch.Generator().manual_seed(0))
    y = noise.apply(clean, params)
    out = consistent_with_input(y + 0.1, y, noise, params)  # moved far more than sigma 2 explains
    box = NOISE_BOX * ((2 / 255) ** 2 + 1 / 12 / 255**2) ** 0.5
    assert abs((out - y).abs().max().item() - box) < 1e-6  # clipped onto the box's edge, not inside it
    near = y + 0.001  # inside the box: kept as it is
    assert torch.equal(consistent_with_input(near, y, noise, params), near)
