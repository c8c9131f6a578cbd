"""The JPEG quantization-noise model the data term's λ reads: it must track the real codec's error on a photo."""

from __future__ import annotations

import pytest
import torch

from degradations import parse
from degradations.functional.jpeg import jpeg_codec, quantization_tables
from degradations.functional.jpeg_noise import quantization_noise_std
from flowprior.conditioning import data_noise_std
from flowprior.pipeline.recipe import SolverSection
from flowprior.pipeline.solve import data_weight


@pytest.mark.parametrize("subsampling", ["420", "444"])
@pytest.mark.parametrize("quality", [10, 30, 75, 95])
def test_model_tracks_the_codec_error(make_natural_image, quality, subsampling):
    # a 192² crop (face, helmet, background): the model is a photo-average, so a flat crop reads up to 1.2x and a
    # busy one down to 0.6x of its real error; this one sits near the average
    x = make_natural_image(192, 192)
    decoded = jpeg_codec(x, torch.tensor([quality]), subsampling)
    real = float((decoded.double() - x.double()).pow(2).mean().sqrt())
    model = float(quantization_noise_std(*quantization_tables(torch.tensor([quality])), subsampling)[0])
    assert 0.8 < model / real < 1.2, (model * 255, real * 255)


def test_quantization_noise_falls_with_quality():
    stds = quantization_noise_std(*quantization_tables(torch.tensor([5, 10, 30, 50, 75, 90, 100])))
    assert torch.all(stds[1:] < stds[:-1])
    assert float(stds[-1]) * 255 < 1.0


def test_identity_data_term_counts_jpeg_as_noise_operator_does_not():
    op = parse("noise+jpeg", {"noise.sigma": 5, "jpeg.quality": 10})
    params = op.sample_params((1, 3, 32, 32), torch.Generator().manual_seed(0))
    noise_only = float(op.noise_std(params)[0])
    assert float(data_noise_std(op, params, jpeg_modelled=True)[0]) == pytest.approx(noise_only)
    with_jpeg = float(data_noise_std(op, params, jpeg_modelled=False)[0])
    assert with_jpeg * 255 > 9.0  # q10 adds ~10 units of error on top of σ 5
    jpeg_alone = parse("jpeg", {"jpeg.quality": 90})
    assert data_noise_std(jpeg_alone, jpeg_alone.sample_params((1, 3, 8, 8)), jpeg_modelled=True) is None


def test_lambda_follows_the_jpeg_quality_with_the_identity_term():
    solver = SolverSection(data_term="identity", noise_temperature=0.2, weight=100.0)
    weights = []
    for quality in (10, 90):
        op = parse("jpeg", {"jpeg.quality": quality})
        weights.append(float(data_weight(solver, op, op.sample_params((1, 3, 16, 16)), torch.float64)[0]))
    assert weights[1] > 5 * weights[0]
    fixed = SolverSection(data_term="identity", weight=100.0)
    op = parse("jpeg", {"jpeg.quality": 10})
    assert data_weight(fixed, op, op.sample_params((1, 3, 16, 16)), torch.float64) == 100.0
