"""The empirical Wiener refinement of a warm start (flowprior.warmstart.wiener): the transform is exact, the filter
is the right one when the pilot is the truth, it is local (so banded warm starts keep their values), and the
default path runs it on light white noise, where it gains, and nowhere else."""

from __future__ import annotations

import pytest
import torch

from degradations import parse
from flowprior.metrics import psnr
from flowprior.warmstart import get_initializer, sure, wiener
from flowprior.warmstart.wiener import wiener_refine
from tests.conftest import natural_crop


@pytest.fixture(scope="module")
def crop():
    return natural_crop(96, 96, top=100, left=150).float()


def noisy(clean, sigma, seed=3):
    op = parse("noise", {"noise.sigma": sigma})
    params = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed))
    return (op.apply(clean, params) * 255).round() / 255, op, params


def test_with_no_noise_the_filter_gives_its_input_back(crop):
    """Variance 0 keeps every coefficient (w = 1): the windowed DCT, the colour transform and the weighted fold must
    invert each other exactly, borders included."""
    out = wiener_refine(crop, crop.flip(-1), torch.tensor(0.0))
    assert float((out - crop).abs().max()) < 1e-5


def test_with_the_truth_as_pilot_the_filter_is_the_oracle_wiener_filter(crop):
    """With the clean image as pilot, w = X²/(X² + v) is the best linear shrinkage of each coefficient: σ 25 noise
    on this crop goes from 20.7 dB to 32.8 dB. Filtering the RGB planes instead of opponent colours gives 31.6, an
    unnormalized colour transform 9.9, a DC basis vector off by √2 8.9."""
    y, _, _ = noisy(crop, 25)
    out = wiener_refine(y, crop, torch.tensor((25 / 255) ** 2), gain=1.0)
    assert float(psnr(crop, out.clamp(0, 1))) > 32.5


def test_the_filter_is_local_and_strips_do_not_show(crop, monkeypatch):
    """A pixel 8 or more rows and columns away from a change keeps its value (7 pixels of context: why a banded
    warm start keeps the whole-image values), and filtering in strips of 5 rows gives the 32-row result."""
    y, _, _ = noisy(crop, 5)
    pilot = (y + crop) / 2
    variance = torch.tensor((5 / 255) ** 2)
    base = wiener_refine(y, pilot, variance)
    changed = y.clone()
    changed[..., 40, 40] += 0.5
    moved = (wiener_refine(changed, pilot, variance) - base).abs().amax(1)[0]
    assert float(moved[33:48, 33:48].max()) > 1e-3
    moved[33:48, 33:48] = 0
    assert float(moved.max()) == 0.0
    monkeypatch.setattr(wiener, "STRIP", 5)
    assert float((wiener_refine(y, pilot, variance) - base).abs().max()) < 1e-6


def test_the_inputs_are_left_alone(crop):
    y, _, _ = noisy(crop, 5)
    pilot = crop.clone()
    before_y, before_pilot = y.clone(), pilot.clone()
    wiener_refine(y, pilot, torch.tensor(1e-3))
    assert torch.equal(y, before_y) and torch.equal(pilot, before_pilot)


@pytest.mark.parametrize("sigma", [2, 5])
def test_at_light_noise_the_step_gains_over_the_warm_start(crop, sigma):
    """The embedded 8-orientation warm start with and without the step on the astronaut crop (measured +0.36 dB at
    σ 2 and +0.21 at σ 5, SURE's β 1 at both; validation photos chose the σ up to which it runs, docs/benchmarks.md
    "Wiener refinement")."""
    y, op, params = noisy(crop, sigma)
    refined = get_initializer("irflow", seed=0, ensemble=8, wiener=10.0)
    plain = get_initializer("irflow", seed=0, ensemble=8)
    with_step, without = refined(y, op, params), plain(y, op, params)
    assert len(refined.last_wiener) == 1 and 0 < refined.last_wiener[0] <= 1 and plain.last_wiener == []
    gain = float(psnr(crop, with_step) - psnr(crop, without))
    assert gain >= 0.1, f"the Wiener step gained {gain:+.3f} dB at sigma {sigma}"


def test_sures_weight_on_the_wiener_estimate_is_near_the_best_one(crop):
    """β* from SURE, which never sees the clean image, against the β of least true error on a grid. With the
    session-20 noise specialist at σ 5: β* 1.0 against 0.70, 38.97 against 38.99 dB (β 0, the step off: 38.85), so
    the test bounds what SURE's choice costs, not its distance in β (0.85 with session 12's specialist)."""
    y, op, params = noisy(crop, 5)
    plain = get_initializer("irflow", seed=0, ensemble=8)
    x0 = plain(y, op, params)
    refined = get_initializer("irflow", seed=0, ensemble=8, wiener=10.0)
    refined(y, op, params)
    w = wiener_refine(y, x0, torch.tensor((5 / 255) ** 2 + (1 / 12) / 255**2))
    grid = torch.linspace(0, 1, 21)
    errors = torch.stack([(x0 + b * (w - x0) - crop).pow(2).mean() for b in grid])
    chosen = refined.last_wiener[0]
    chosen_error = (x0 + chosen * (w - x0) - crop).pow(2).mean()
    cost_db = 10 * torch.log10(chosen_error / errors.min())
    assert cost_db <= 0.05, f"SURE's beta {chosen:.2f} costs {float(cost_db):.3f} dB against the best on the grid"


def test_above_its_noise_limit_and_off_white_noise_the_step_does_not_run(crop):
    y, op, params = noisy(crop, 25)
    refined = get_initializer("irflow", seed=0, wiener=10.0)
    plain = get_initializer("irflow", seed=0)
    assert torch.equal(refined(y, op, params), plain(y, op, params)) and refined.last_wiener == [0.0]
    jpeg = parse("noise+jpeg", {"noise.sigma": 2, "jpeg.quality": 50})
    sampled = jpeg.sample_params(tuple(crop.shape), torch.Generator().manual_seed(0))
    refined(jpeg.apply(crop, sampled), jpeg, sampled)
    assert refined.last_wiener == []


def test_the_default_path_runs_the_step_at_light_noise_and_the_sidecar_says_so(tmp_path, crop):
    import json

    import numpy as np
    from PIL import Image

    from flowprior.cli import main
    from flowprior.restore_file import sidecar_path

    for sigma, runs in ((5, True), (30, False)):  # fast.yaml: up to σ 25 where the collaborative step is off
        y, _, _ = noisy(crop[..., :64, :64], sigma)
        source = tmp_path / f"noisy{sigma}.png"
        Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
        target = tmp_path / f"out{sigma}.png"
        assert main(["restore", str(source), "-o", str(target), "--degradation", "noise", "--set",
                     f"noise.sigma={sigma}", "--set", "init_collaborative=0", "--quiet"]) == 0
        beta = json.loads(sidecar_path(target).read_text())["warm_start_wiener"]
        assert len(beta) == 1 and ((0 < beta[0] <= 1) if runs else beta[0] == 0.0)


def test_a_negative_noise_limit_is_refused_with_a_clear_message(tmp_path, crop):
    import numpy as np
    from PIL import Image

    from flowprior.cli import main

    source = tmp_path / "noisy.png"
    Image.fromarray((crop[0, :, :32, :32].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
    assert main(["restore", str(source), "-o", str(tmp_path / "out.png"), "--degradation", "noise", "--set",
                 "noise.sigma=5", "--set", "init_wiener=-1", "--quiet"]) == 2
    assert not (tmp_path / "out.png").exists()


def test_sure_leaves_out_the_values_whose_noise_the_stored_image_clipped(monkeypatch):
    """A dark astronaut crop (two thirds of it below 0.1) at σ 25: counting the values near 0, where the clipped
    noise reads as error, SURE took the Wiener estimate whole (β 1.0) where the best β is 0; counting only those
    2 noise stds inside [0, 1] it takes 0.48 (0.73 with session 20's noise specialist, 1.0 without the margin)."""
    dark = natural_crop(96, 96, top=380, left=380).float()
    y, op, params = noisy(dark, 25)
    betas = {}
    for margin in (sure.SURE_MARGIN, 0.0):
        monkeypatch.setattr(sure, "SURE_MARGIN", margin)
        initializer = get_initializer("irflow", seed=0, ensemble=8, wiener=50.0)
        initializer(y, op, params)
        betas[margin] = initializer.last_wiener[0]
    assert betas[2.0] < 0.75 and betas[0.0] > betas[2.0] + 0.25


def test_with_the_blend_off_and_the_noise_above_the_limit_no_probe_runs(monkeypatch, crop):
    """The probe is a network pass; when neither the SURE blend nor the Wiener step will use it, it is not run."""
    y, op, params = noisy(crop[..., :64, :64], 25)
    calls = []
    for wiener_limit, probes in ((10.0, 0), (50.0, 1)):
        initializer = get_initializer("irflow", seed=0, ensemble=8, shrink=False, wiener=wiener_limit)
        model = initializer.model_for(op, params)
        monkeypatch.setattr(model, "restore", lambda *a, restore=model.restore: calls.append(1) or restore(*a))
        calls.clear()
        initializer(y, op, params)
        monkeypatch.undo()
        assert len(calls) == 8 + probes and len(initializer.last_wiener) == 1
        assert probes or initializer.last_wiener == [0.0]
