import math

import pytest
import torch

from flowprior.prior.glow import Glow, GlowConfig
from flowprior.restoration import build_recipe, restore_tensor
from flowprior.solver import Energy, LatentMAPSolver, Stage, coarse_to_fine
from flowprior.solver.weighting import noise_matched_weight
from tests.flow_checks import randomize


def tiny_prior(patch: int = 16, levels: int = 2) -> Glow:
    prior = Glow(GlowConfig(levels=levels, steps=1, width=8, patch_size=patch))
    prior.initialize(torch.rand(8, 3, patch, patch, generator=torch.Generator().manual_seed(0)))
    return randomize(prior, scale=0.02).eval().requires_grad_(False)


def test_paper_schedule_frees_levels_coarse_to_fine():
    stages = coarse_to_fine(3)
    assert [(s.active, s.steps, s.lr) for s in stages] == [(1, 50, 1.0), (2, 50, 1.0), (3, 150, 1.0)]
    with pytest.raises(ValueError):
        Stage(active=0, steps=1)


def test_data_term_alone_recovers_a_decodable_target():
    prior = tiny_prior()
    generator = torch.Generator().manual_seed(1)
    z_true = [0.5 * torch.randn(s, generator=generator) for s in prior.latent_shapes(2, 16, 16)]
    with torch.no_grad():
        target = prior.decode(z_true)
    energy = Energy(observed=target, mask=None, forward=None, weight=1.0)
    init = [torch.zeros(s) for s in prior.latent_shapes(2, 16, 16)]
    result = LatentMAPSolver(prior).solve(energy, init, [Stage(active=2, steps=400, lr=0.05, prior_weight=0.0)])
    error = (result.image - target.clamp(0, 1)).abs().max().item()
    assert error < 2e-2, error
    assert result.stage_energies[-1]["end"] < 1e-3 * result.stage_energies[-1]["start"]


@pytest.mark.parametrize("prior_term", ["flow", "latent"])
@pytest.mark.parametrize("optimizer", ["adam", "lbfgs"])
def test_energy_decreases_in_every_stage(prior_term, optimizer):
    prior = tiny_prior()
    y = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    energy = Energy(observed=y, mask=None, forward=None, weight=20.0, prior_term=prior_term)
    init = [torch.zeros(s) for s in prior.latent_shapes(3, 16, 16)]
    result = LatentMAPSolver(prior, optimizer).solve(energy, init, coarse_to_fine(2, 10, 20, lr=0.05))
    for stage in result.stage_energies:
        assert stage["end"] < stage["start"], stage


def test_masked_pixels_do_not_enter_the_data_term():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    y = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4))
    mask = torch.ones(2, 1, 8, 8)
    mask[:, :, 2:5, 3:6] = 0
    changed = y.clone()
    changed[:, :, 2:5, 3:6] = 123.0  # anything at all where the mask says missing
    a = Energy(observed=y, mask=mask, forward=None, weight=1.0).data_term(x)
    b = Energy(observed=changed, mask=mask, forward=None, weight=1.0).data_term(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, Energy(observed=changed, mask=None, forward=None, weight=1.0).data_term(x))


def test_a_nan_tile_is_rolled_back_and_never_reaches_the_output():
    prior = tiny_prior()
    y = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    calls = {"n": 0}

    def poisoned(x):  # tile 1 turns NaN on the 4th evaluation, then behaves
        calls["n"] += 1
        if calls["n"] == 4:
            x = x.clone()
            x[1] = float("nan")
        return x

    energy = Energy(observed=y, mask=None, forward=poisoned, weight=10.0)
    init = [torch.zeros(s) for s in prior.latent_shapes(3, 16, 16)]
    result = LatentMAPSolver(prior).solve(energy, init, [Stage(active=2, steps=10, lr=0.05)])
    assert result.rollbacks == 1
    assert torch.isfinite(result.image).all()
    assert all(torch.isfinite(z).all() for z in result.latents)


def test_solver_never_mutates_the_initial_latents():
    prior = tiny_prior()
    init = [torch.zeros(s) for s in prior.latent_shapes(1, 16, 16)]
    energy = Energy(observed=torch.rand(1, 3, 16, 16), mask=None, forward=None, weight=5.0)
    LatentMAPSolver(prior).solve(energy, init, [Stage(active=2, steps=3, lr=0.1)])
    assert all(torch.count_nonzero(z) == 0 for z in init)


def test_end_to_end_restore_of_a_70x45_image_with_a_tiny_prior():
    prior = tiny_prior(patch=32, levels=2)
    y = torch.rand(1, 3, 45, 70, generator=torch.Generator().manual_seed(6))
    mask = (torch.rand(1, 1, 45, 70, generator=torch.Generator().manual_seed(7)) > 0.1).float()
    recipe = build_recipe(None, {"degradation": "jpeg+noise", "solver.steps_per_stage": 2, "solver.final_steps": 3},
                          {"jpeg.quality": 30, "noise.sigma": 5})
    result = restore_tensor(y, recipe, mask=mask, prior=prior)
    assert result.image.shape == (1, 3, 45, 70)
    assert torch.isfinite(result.image).all() and result.image.min() >= 0 and result.image.max() <= 1
    assert result.info["tiles"]["align"] == 16  # JPEG 4:2:0 blocks
    assert result.info["params"]["jpeg.quality"] == [30]


def test_grayscale_input_stays_grayscale():
    prior = tiny_prior(patch=32, levels=2)
    y = torch.rand(1, 1, 20, 33, generator=torch.Generator().manual_seed(8))
    recipe = build_recipe(None, {"degradation": "noise", "solver.steps_per_stage": 1, "solver.final_steps": 1},
                          {"noise.sigma": 5})
    assert restore_tensor(y, recipe, prior=prior).image.shape == (1, 1, 20, 33)


def test_restore_errors_name_the_problem():
    prior = tiny_prior(patch=32, levels=2)
    y = torch.rand(1, 3, 32, 32)
    with pytest.raises(ValueError, match="--mask"):
        restore_tensor(y, build_recipe(None, {"degradation": "noise+mask"}, {}), prior=prior)
    with pytest.raises(ValueError, match="valid names"):
        restore_tensor(y, build_recipe(None, {"degradation": "jpg"}, {}), prior=prior)
    with pytest.raises(ValueError, match="identity"):  # A = id cannot compare a 2x larger estimate with y
        restore_tensor(y, build_recipe(None, {"degradation": "downsample", "solver.data_term": "identity"}, {}),
                       prior=prior)
    with pytest.raises(ValueError, match="NaN"):
        restore_tensor(torch.full((1, 3, 8, 8), float("nan")), prior=prior)


def test_noise_matched_weight_follows_the_gaussian_likelihood():
    sigma = torch.tensor([5 / 255, 25 / 255, 0.0])
    weight = noise_matched_weight(sigma, temperature=0.2, fallback=300.0)
    assert weight[0].item() == pytest.approx(0.2 / (2 * (5 / 255) ** 2))  # 260.1
    assert weight[0].item() / weight[1].item() == pytest.approx(25.0)  # λ moves with 1/σ²
    assert weight[2].item() == 300.0  # no declared noise: the recipe's fixed λ
    assert noise_matched_weight(sigma, temperature=None, fallback=300.0) == 300.0
    assert noise_matched_weight(None, temperature=0.2, fallback=300.0) == 300.0
    tiny = noise_matched_weight(torch.tensor([1e-9]), temperature=0.2, fallback=300.0)
    assert math.isfinite(tiny.item()) and tiny.item() == pytest.approx(0.2 / (2 * (0.5 / 255) ** 2))
    with pytest.raises(ValueError, match="noise_temperature"):
        noise_matched_weight(sigma, temperature=0.0, fallback=1.0)


def test_recipe_noise_temperature_sets_lambda_per_tile_from_the_operator():
    from degradations import parse
    from flowprior.restoration import _data_weight

    op = parse("jpeg+noise", {"jpeg.quality": 30, "noise.sigma": 5})
    params = op.sample_params((2, 3, 8, 8), torch.Generator().manual_seed(0))
    params["noise.sigma"] = torch.tensor([5.0, 25.0], dtype=torch.float64)  # two tiles, two noise levels
    matched = build_recipe(None, {"degradation": "jpeg+noise", "solver.noise_temperature": 0.2,
                                  "solver.weight": 7.0}, {})
    weight = _data_weight(matched.solver, op, params, torch.float32)
    assert weight.dtype == torch.float32
    assert torch.allclose(weight, torch.tensor([0.2 / (2 * (5 / 255) ** 2), 0.2 / (2 * (25 / 255) ** 2)]))
    fixed = build_recipe(None, {"degradation": "jpeg+noise", "solver.weight": 7.0}, {})
    assert _data_weight(fixed.solver, op, params, torch.float32) == 7.0
    assert _data_weight(matched.solver, parse("jpeg"), {"jpeg.quality": torch.tensor([30])}, torch.float32) == 7.0
    with pytest.raises(ValueError, match="noise_temperature"):
        build_recipe(None, {"solver.noise_temperature": -1.0}, {})
