"""The models shipped in flowprior/weights: each loads with its recorded sha256 and does its job on a real photo.

Quality bounds are set well below what the shipped models measure (noted beside each) so that they catch a broken
or swapped file, not a rounding change.
"""

from __future__ import annotations

import pytest
import torch

from degradations import parse
from flowprior import weights
from flowprior.metrics import psnr
from flowprior.recipe import find_recipe
from flowprior.restoration import build_recipe, load_model, restore_tensor
from flowprior.warmstart import get_initializer
from flowprior.warmstart.learned import available_methods, embedded_warmstart

# the general model of each method (a specialist, ``warmstart-<method>-<kind>``, runs through it: tests/test_specialists.py)
EMBEDDED_WARMSTARTS = [name.removeprefix("warmstart-") for name in weights.EMBEDDED
                       if name.removeprefix("warmstart-") in available_methods()]


def degraded_crop(make_natural_image, spec: str, params: dict, size: int = 96):
    clean = make_natural_image(size, size, top=100, left=150)
    op = parse(spec, params)
    sampled = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(3))
    return clean, op, sampled, op.apply(clean, sampled)


def test_the_embedded_prior_loads_with_its_recorded_hash():
    prior = load_model("default")
    assert prior.sha256 == weights.EMBEDDED["default"][1]
    assert not any(p.requires_grad for p in prior.parameters())


@pytest.mark.parametrize("method", EMBEDDED_WARMSTARTS)
def test_an_embedded_warm_start_loads_by_method_alone_and_denoises(method, make_natural_image):
    path, sha256 = embedded_warmstart(method)
    assert path.is_file() and sha256 == weights.EMBEDDED[f"warmstart-{method}"][1]
    clean, op, params, y = degraded_crop(make_natural_image, "jpeg+noise", {"jpeg.quality": 30, "noise.sigma": 10})
    x0 = get_initializer(method, seed=0)(y, op, params)  # no checkpoint: the embedded one
    gain = float(psnr(clean, x0) - psnr(clean, y))
    assert gain > 1.5, f"{method} gained only {gain:.2f} dB"  # irflow: +4.2 dB here


@pytest.mark.skipif("warmstart-irflow" not in weights.EMBEDDED, reason="no embedded IR-Flow warm start")
def test_the_fast_recipe_restores_with_the_embedded_warm_start(make_natural_image):
    clean, _, params, y = degraded_crop(make_natural_image, "mask+noise+jpeg",
                                        {"mask.coverage": 0.05, "mask.size": 10, "noise.sigma": 5, "jpeg.quality": 50})
    mask = parse("mask+noise+jpeg", {}).observed_mask(params)
    recipe = build_recipe(find_recipe("fast", "restore"), {"degradation": "mask+noise+jpeg"},
                          {"noise.sigma": 5, "jpeg.quality": 50})
    result = restore_tensor(y, recipe, mask=mask)
    assert result.info["recipe"]["init"] == "irflow"
    assert float(psnr(clean, result.image) - psnr(clean, y)) > 3.0  # holes filled: +12.7 dB here (3 MAP steps)


@pytest.mark.skipif("warmstart-irflow" not in weights.EMBEDDED, reason="no embedded IR-Flow warm start")
def test_the_python_api_defaults_to_the_recipe_auto_picks(make_natural_image):
    import flowprior

    clean = make_natural_image(64, 64)[0]
    noisy = (clean + (15 / 255) * torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    out = flowprior.restore(noisy, "noise", params={"noise.sigma": 15})
    assert out.shape == clean.shape  # (C, H, W) in, (C, H, W) out
    assert float(psnr(clean[None], out[None]) - psnr(clean[None], noisy[None])) > 3.0  # fast recipe: +6.3 dB


@pytest.mark.skipif("warmstart-irflow" not in weights.EMBEDDED, reason="no embedded IR-Flow warm start")
def test_large_images_run_through_the_warm_start_in_blocks_that_match_the_whole(make_natural_image, monkeypatch):
    from flowprior.warmstart.learned import LearnedInitializer

    clean, op, params, y = degraded_crop(make_natural_image, "jpeg+noise", {"jpeg.quality": 30, "noise.sigma": 10},
                                         size=160)
    initializer = get_initializer("irflow", seed=0)
    whole = initializer(y, op, params)
    monkeypatch.setattr(LearnedInitializer, "max_block_pixels", 64 * 64)
    monkeypatch.setattr(LearnedInitializer, "block", 64)  # 160 = 64 + 64 + 32: a ragged last block too
    blocked = initializer(y, op, params)
    assert torch.equal(blocked, initializer(y, op, params))
    assert float((blocked - whole).abs().mean()) < 3e-3  # the halo hides the seams (measured 1.5e-3)
    assert abs(float(psnr(clean, blocked) - psnr(clean, whole))) < 0.1


@pytest.mark.skipif("warmstart-irflow" not in weights.EMBEDDED, reason="no embedded IR-Flow warm start")
def test_a_recipe_with_no_map_step_skips_the_prior_round_trip_and_matches_it(make_natural_image, monkeypatch):
    from flowprior.pipeline import solve

    clean, _, _, y = degraded_crop(make_natural_image, "noise+jpeg", {"noise.sigma": 10, "jpeg.quality": 40},
                                   size=72)
    recipe = build_recipe(find_recipe("fast", "restore"), {"degradation": "noise+jpeg", "init_ensemble": 1},
                          {"noise.sigma": 10, "jpeg.quality": 40})
    assert solve.skips_map(recipe, recipe.stages(3))  # the default path takes no MAP step
    prior = load_model("default")
    encodes = []
    monkeypatch.setattr(prior, "encode", lambda x, _e=prior.encode: encodes.append(1) or _e(x))
    short = restore_tensor(y, recipe, prior=prior).image
    assert not encodes  # the prior never ran
    monkeypatch.setattr(solve, "skips_map", lambda *_: False)
    round_trip = restore_tensor(y, recipe, prior=prior).image
    assert encodes  # ... and here it did: decode(encode(x0)) through every tile
    assert float((short - round_trip).abs().max()) < 1e-4  # the flow is invertible: only rounding differs
    assert float(psnr(clean, short) - psnr(clean, y)) > 0.4  # about +0.9 dB here (one orientation)
