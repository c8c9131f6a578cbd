"""Gaussian noise alone goes to the embedded noise specialist; every other damage stays with the general model.

Real photo crops (scikit-image's astronaut), 1 orientation, seed 3. The gains over session 19's general model are
in the bounds below; a routing that never reaches a specialist fails everywhere, and a specialist that is the
general model again (or a worse one) fails at q10, q30 and sigma 5.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from degradations import parse
from flowprior.cli import main
from flowprior.metrics import psnr
from flowprior.restore_file import sidecar_path
from flowprior.warmstart import get_initializer
from flowprior.warmstart.learned import damage_kind
from flowprior.weights import embedded_path
from tests.conftest import natural_crop

SPECIALIST = "warmstart-irflow-noise"
JPEG_SPECIALIST = "warmstart-irflow-jpeg"
GENERAL = "warmstart-irflow"
MIN_GAIN_DB = 0.08  # session 19's JPEG specialist gains +0.13 / +0.20 dB on this crop at q10 / q30
# The noise specialist (session 12) against session 19's general model, which nearly caught it up: +0.07 dB at
# sigma 5, +0.01 at sigma 25 on this crop (through fast.yaml on the validation crops +0.01 and +0.08 dB, so the
# routing stays). At sigma 25 the bound only asks that routing never loses; recipes/train/
# warmstart-irflow-noise-fast.yaml is the re-tune that should widen both margins.
NOISE_MIN_GAIN_DB = {5: 0.04, 25: 0.0}


@pytest.fixture(scope="module")
def crop():
    return natural_crop(128, 128, top=100, left=150)


def degrade(clean, spec, params, seed=3):
    op = parse(spec, params)
    y = op.apply(clean, op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed)))
    return (y.clamp(0, 1) * 255).round() / 255, op


def warm_start(initializer, y, op):
    return initializer(y, op, op.sample_params(tuple(y.shape), torch.Generator().manual_seed(0)))


@pytest.mark.parametrize("spec,kind", [
    ("noise", "noise"),
    ("noise(kind=uniform)", "noise(uniform)"),
    ("mask+noise+jpeg", "mask+noise+jpeg"),
    ("identity+noise", "noise"),
    ("identity", "identity"),
])
def test_damage_kind_names_the_members_that_act(spec, kind):
    assert damage_kind(parse(spec)) == kind


def test_a_mask_that_hides_nothing_does_not_change_the_model():
    """The whole-image path passes an all-observed mask; streamed and whole results must run the same model."""
    spec = parse("noise+mask")
    holes = torch.ones(1, 1, 4, 4)
    holes[..., 0, 0] = 0
    assert damage_kind(spec, {"mask.mask": torch.ones(1, 1, 4, 4)}) == "noise"
    assert damage_kind(spec, {"mask.mask": holes}) == damage_kind(spec) == "noise+mask"


@pytest.mark.parametrize("sigma", [5, 25])
def test_gaussian_noise_runs_the_specialist_and_it_beats_the_general_model(crop, sigma):
    y, op = degrade(crop, "noise", {"noise.sigma": sigma})
    routed = get_initializer("irflow", seed=0)
    general = get_initializer("irflow", seed=0)
    general.specialists = {}  # the same initializer with routing switched off
    restored, baseline = warm_start(routed, y, op), warm_start(general, y, op)
    assert (routed.last_model, general.last_model) == (SPECIALIST, GENERAL)
    gain = float(psnr(crop, restored) - psnr(crop, baseline))
    assert gain >= NOISE_MIN_GAIN_DB[sigma], f"the noise specialist gained {gain:+.3f} dB at sigma {sigma}"


@pytest.mark.parametrize("quality", [10, 30])
def test_jpeg_alone_runs_the_jpeg_specialist_and_it_beats_the_general_model(crop, quality):
    """Measured on this crop (session 19): +0.13 dB at q10, +0.20 at q30 (and +0.21 at q75, +0.19 at q90)."""
    y, op = degrade(crop, "jpeg", {"jpeg.quality": quality})
    routed = get_initializer("irflow", seed=0)
    general = get_initializer("irflow", seed=0)
    general.specialists = {}
    restored, baseline = warm_start(routed, y, op), warm_start(general, y, op)
    assert (routed.last_model, general.last_model) == (JPEG_SPECIALIST, GENERAL)
    gain = float(psnr(crop, restored) - psnr(crop, baseline))
    assert gain >= MIN_GAIN_DB, f"the JPEG specialist gained {gain:+.3f} dB at q{quality}"


@pytest.mark.parametrize("spec,params", [
    ("noise+jpeg", {"noise.sigma": 5, "jpeg.quality": 50}),
    ("mask+jpeg", {"mask.coverage": 0.05, "mask.size": 8, "jpeg.quality": 50}),
    ("noise(kind=uniform)", {}),
])
def test_other_damage_stays_with_the_general_model(crop, spec, params):
    y, op = degrade(crop, spec, params)
    initializer = get_initializer("irflow", seed=0)
    warm_start(initializer, y, op)
    assert initializer.last_model == GENERAL


def test_a_checkpoint_given_by_the_caller_is_never_swapped(crop):
    y, op = degrade(crop, "noise", {"noise.sigma": 25})
    path, _ = embedded_path(GENERAL)
    initializer = get_initializer("irflow", checkpoint=path, seed=0)
    warm_start(initializer, y, op)
    assert initializer.last_model is None


def test_the_sidecar_names_the_model_that_ran(tmp_path, crop):
    y, _ = degrade(crop[..., :64, :64], "noise", {"noise.sigma": 15})
    source = tmp_path / "noisy.png"
    Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
    for spec, model in (("noise", SPECIALIST), ("noise+jpeg", GENERAL)):
        target = tmp_path / f"{spec}.png"
        assert main(["restore", str(source), "-o", str(target), "--degradation", spec,
                     "--set", "noise.sigma=15"]) == 0
        assert json.loads(sidecar_path(target).read_text())["warm_start_model"] == model
