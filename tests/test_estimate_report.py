"""``estimate_degradation``'s contract (issue 15, item 3) on a real photo crop, not on random tensors."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from degradations import parse
from flowprior.estimate import DegradationEstimate, estimate_degradation


def _astronaut_crop() -> torch.Tensor:
    from skimage import data

    arr = data.astronaut()[96:352, 160:416]  # face, suit and flag: 256 × 256
    return torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1)[None].float()


def _degraded(spec: str, params: dict, seed: int) -> torch.Tensor:
    x = _astronaut_crop()
    op = parse(spec, params)
    y = op.apply(x, op.sample_params(tuple(x.shape), torch.Generator().manual_seed(seed)))
    return (y * 255).round().clamp(0, 255) / 255  # as stored in an 8-bit file


@functools.cache
def _noise_then_jpeg() -> DegradationEstimate:
    return estimate_degradation(_degraded("noise+jpeg", {"noise.sigma": 15, "jpeg.quality": 40}, seed=3))


def test_noise_then_jpeg_parameters_within_tolerance():
    found = _noise_then_jpeg()
    assert isinstance(found, DegradationEstimate)
    assert {"noise", "jpeg"} <= set(found.spec.split("+"))
    assert abs(found.params["noise.sigma"] - 15) <= 2.0, found.params
    assert abs(found.params["jpeg.quality"] - 40) <= 10, found.params
    assert found.params["jpeg.subsampling"] in ("420", "444")
    assert set(found.confidence) == {"noise", "jpeg", "mask"} and found.confidence["jpeg"] > 0.5
    parse(found.spec, found.params)


# Until session 8 (the classical detector) this case found a false mask of 0.24 % on the crop's dark areas, which
# σ 15 noise clipped at 0 makes look like a black fill; the learned detector finds none (docs/benchmarks.md).
def test_noise_then_jpeg_spec_has_no_mask():
    found = _noise_then_jpeg()
    assert found.spec == "noise+jpeg" and found.mask is None


# measured P 0.50 with the classical detector (pure-black scene pieces joined the mask); passes since the learned one
def test_holes_then_noise_give_the_mask_first_and_a_matching_mask():
    x = _astronaut_crop()
    op = parse("mask+noise", {"mask.kind": "holes", "noise.sigma": 5})
    sampled = op.sample_params(tuple(x.shape), torch.Generator().manual_seed(4))
    y = (op.apply(x, sampled) * 255).round().clamp(0, 255) / 255
    found = estimate_degradation(y)
    assert found.spec == "mask+noise", found.spec
    truth = op.observed_mask(sampled)[0, 0] < 0.5
    pred = found.mask[0, 0] < 0.5
    hit = float((pred & truth).sum())
    assert hit / pred.sum() >= 0.8 and hit / truth.sum() >= 0.8


_THIN_BLACK_SCENE = pytest.mark.xfail(
    strict=True, reason="the learned detector takes astronaut's pure-black thin structures (neck ring, flag and suit "
    "seams; luma 0-4) for scratches: a 0.57 % mask (docs/benchmarks.md, 'Defects: a learned detector')")


@pytest.mark.parametrize("name", ["coffee", "chelsea", pytest.param("astronaut", marks=_THIN_BLACK_SCENE)])
def test_a_clean_photo_is_identity(name):
    from skimage import data

    # halved by area averaging: the sample file itself is JPEG-derived, its copy at half size is not
    x = torch.from_numpy(getattr(data, name)().astype(np.float64) / 255.0).permute(2, 0, 1)[None].float()
    x = (torch.nn.functional.interpolate(x, scale_factor=0.5, mode="area") * 255).round() / 255
    found = estimate_degradation(x)
    assert found.spec == "identity" and found.params == {} and found.mask is None, found
