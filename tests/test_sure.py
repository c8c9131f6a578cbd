"""The SURE blend of a learned warm start with its input (flowprior.warmstart.sure): the estimate is right on
estimators whose risk is known, and the default path uses it where it helps and nowhere else."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from degradations import parse
from flowprior.metrics import psnr
from flowprior.warmstart import get_initializer
from flowprior.warmstart.sure import probe_divergence, shrink_towards_input, sure_weight
from tests.conftest import natural_crop


@pytest.fixture(scope="module")
def crop():
    return natural_crop(96, 96, top=100, left=150)


def noisy(clean, sigma, seed=3):
    op = parse("noise", {"noise.sigma": sigma})
    params = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed))
    return op.apply(clean, params), op, params


def box_blur(image):
    return F.avg_pool2d(F.pad(image, (1, 1, 1, 1), mode="replicate"), 3, stride=1)


def test_the_probe_measures_the_divergence_of_a_linear_map():
    """div(c · y) = c N exactly, and a 3x3 box blur's is N / 9; one probe is within a few per cent on 27k values."""
    y = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    values = y.numel()
    scaled = probe_divergence(lambda z: 0.3 * z, y, 0.3 * y)
    blurred = probe_divergence(box_blur, y, box_blur(y))
    assert float(scaled) == pytest.approx(0.3 * values, rel=0.03)
    assert float(blurred) == pytest.approx(values / 9, rel=0.05)


def test_sures_weight_is_the_weight_with_the_least_true_error(crop):
    """Half the input plus half a double box blur over-smooths σ 5 noise: SURE's α must land where the true error
    (which it never sees) is least (measured: 0.35 against 0.32). With the divergence's sign flipped or dropped, or
    the noise variance off by 4x, it lands far from it (1.0, 0.79, 1.0)."""
    variance = torch.tensor((5 / 255) ** 2)
    y, _, _ = noisy(crop, 5)

    def smoother(z):
        return 0.5 * z + 0.5 * box_blur(box_blur(z))

    x0 = smoother(y)
    divergence = probe_divergence(smoother, y, x0)
    grid = torch.linspace(0, 1, 201)
    errors = torch.stack([((y + a * (x0 - y)) - crop).pow(2).mean() for a in grid])
    best = float(grid[errors.argmin()])
    assert 0.1 < best < 0.9
    assert float(sure_weight(y, x0, divergence, variance)) == pytest.approx(best, abs=0.05)
    for wrong in (sure_weight(y, x0, -divergence, variance), sure_weight(y, x0, 0 * divergence, variance),
                  sure_weight(y, x0, divergence, 4 * variance)):
        assert abs(float(wrong) - best) > 0.3


def test_the_blend_leaves_its_inputs_alone_and_is_finite_when_the_estimate_is_the_input(crop):
    y, _, _ = noisy(crop, 5)
    before = y.clone()
    blended, alpha = shrink_towards_input(y.clone(), y, lambda z: z, torch.tensor(1e-3))
    assert torch.equal(y, before) and torch.equal(blended, y) and float(alpha) == 1.0


@pytest.mark.parametrize("sigma", [1, 2])
def test_at_light_noise_the_blend_gives_detail_back(crop, sigma):
    """The 8-orientation IR-Flow warm start on light noise, with and without the blend: the blend gains, and at
    σ 1 it turns a loss against the input into a gain (measured on this crop: see docs/benchmarks.md)."""
    y, op, params = noisy(crop, sigma)
    y = (y * 255).round() / 255
    shrunk = get_initializer("irflow", seed=0, ensemble=8)
    plain = get_initializer("irflow", seed=0, ensemble=8, shrink=False)
    with_blend, without = shrunk(y, op, params), plain(y, op, params)
    assert len(shrunk.last_shrink) == 1 and 0 < shrunk.last_shrink[0] < 1 and plain.last_shrink == []
    gain = float(psnr(crop, with_blend) - psnr(crop, without))
    assert gain >= 0.1, f"the blend gained {gain:+.3f} dB at sigma {sigma}"
    if sigma == 1:
        assert float(psnr(crop, with_blend) - psnr(crop, y)) > 0


@pytest.mark.parametrize("spec,params", [
    ("jpeg", {"jpeg.quality": 30}),
    ("noise+jpeg", {"noise.sigma": 5, "jpeg.quality": 50}),
    ("noise(kind=uniform)", {}),
])
def test_no_blend_where_the_noise_is_not_known_white_gaussian(crop, spec, params):
    op = parse(spec, params)
    sampled = op.sample_params(tuple(crop.shape), torch.Generator().manual_seed(0))
    initializer = get_initializer("irflow", seed=0)
    initializer(op.apply(crop, sampled), op, sampled)
    assert initializer.last_shrink == []


def test_blind_noise_is_not_blended_and_strong_noise_is_left_to_the_network(crop):
    y, op, params = noisy(crop, 25)
    blind = get_initializer("irflow", seed=0, unknown=("noise",))
    blind(y, op, params)
    declared = get_initializer("irflow", seed=0)
    declared(y, op, params)
    assert blind.last_shrink == [] and declared.last_shrink == [1.0]


def test_the_sidecar_records_the_blend(tmp_path, crop):
    import json

    import numpy as np
    from PIL import Image

    from flowprior.cli import main
    from flowprior.restore_file import sidecar_path

    y, _, _ = noisy(crop[..., :64, :64], 1)
    source = tmp_path / "light.png"
    Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
    for flag, blended in (("true", True), ("false", False)):
        target = tmp_path / f"out-{flag}.png"
        assert main(["restore", str(source), "-o", str(target), "--degradation", "noise", "--set", "noise.sigma=1",
                     "--set", f"init_shrink={flag}", "--quiet"]) == 0
        shrink = json.loads(sidecar_path(target).read_text())["warm_start_shrink"]
        assert (len(shrink) == 1 and 0 < shrink[0] < 1) if blended else shrink == []
