"""Posterior sampling (issue 16): Langevin chains against a linear-Gaussian posterior in closed form.

The flow is affine, ``x = A u + b`` with ``u ~ N(0, I)``, and the data term is the MAP solver's own
``λ‖m ⊙ (H x - y)‖²`` (through :class:`flowprior.solver.Energy`), so the posterior of ``u`` is Gaussian with
precision ``P = I + 2λ KᵀK`` (``K = M H A``) and mean ``P⁻¹ 2λ Kᵀ M (y - H b)``; the posterior of ``x`` has mean
``A μ + b`` and covariance ``A P⁻¹ Aᵀ``. Some pixels are masked out, so some directions are prior-dominated and
others are pinned by the data (precision up to ~20): a step size large for those biases ULA by tens of percent,
which MALA's acceptance test removes.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from flowprior.posterior import PosteriorSection, RunningMoments, energy_potential, run_chains
from flowprior.posterior.chains import EvaluationCount, sample_tiles
from flowprior.posterior.preconditioner import gauss_newton_preconditioner
from flowprior.prior.base import Prior
from flowprior.solver import Energy

SIDE, CHAINS = 3, 1000
D = SIDE * SIDE


class AffineFlow(Prior):
    """x = A u + b on a (1, SIDE, SIDE) image; log|det ∂x/∂u| = log|det A| (a constant)."""

    patch_size, in_channels, size_multiple = SIDE, 1, 1

    def __init__(self, a: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.a, self.b = a, b

    @property
    def num_levels(self) -> int:
        return 1

    def decode(self, z, return_logdet=False):
        x = (z[0].flatten(1) @ self.a.T + self.b).reshape(-1, 1, SIDE, SIDE)
        if return_logdet:
            return x, torch.full((x.shape[0],), float(torch.linalg.slogdet(self.a)[1]))
        return x

    def encode(self, x):
        u = torch.linalg.solve(self.a, (x.flatten(1) - self.b).T).T
        return [u.reshape(-1, 1, SIDE, SIDE)], torch.full((x.shape[0],), -float(torch.linalg.slogdet(self.a)[1]))

    def latent_shapes(self, batch, height, width):
        return [(batch, 1, height, width)]

    def decode_from_coarsest(self, z_top):
        return self.decode([z_top])


def _problem():
    g = torch.Generator().manual_seed(0)
    a = 0.1 * torch.eye(D) + 0.03 * torch.randn(D, D, generator=g, dtype=torch.float64)
    b = torch.full((D,), 0.5, dtype=torch.float64)
    h = torch.eye(D, dtype=torch.float64) + 0.2 * torch.randn(D, D, generator=g, dtype=torch.float64)
    mask = torch.ones(D, dtype=torch.float64)
    mask[[1, 4, 6]] = 0  # missing pixels: only the prior speaks for them
    y = torch.rand(D, generator=g, dtype=torch.float64)
    return a, b, h, mask, y, 100.0


def _closed_form(a, b, h, mask, y, lam):
    k = mask[:, None] * (h @ a)
    precision = torch.eye(D, dtype=torch.float64) + 2 * lam * k.T @ k
    covariance = torch.linalg.inv(precision)
    mu = covariance @ (2 * lam * k.T @ (mask * (y - h @ b)))
    return a @ mu + b, torch.diagonal(a @ covariance @ a.T), covariance


def _energy(a, b, h, mask, y, lam):
    return Energy(observed=y.float().reshape(1, 1, SIDE, SIDE).expand(CHAINS, -1, -1, -1),
                  mask=mask.float().reshape(1, 1, SIDE, SIDE).expand(CHAINS, -1, -1, -1),
                  forward=lambda x: (x.flatten(1) @ h.float().T).reshape(x.shape), weight=lam,
                  prior_term="flow")


def _sample(config: PosteriorSection, seed: int = 1):
    a, b, h, mask, y, lam = _problem()
    flow = AffineFlow(a.float(), b.float())
    energy = _energy(a, b, h, mask, y, lam)
    mean, variance, covariance = _closed_form(a, b, h, mask, y, lam)
    u_map = torch.linalg.solve(a, mean - b)  # the MAP of a Gaussian posterior is its mean
    z0 = [u_map.float().reshape(1, 1, SIDE, SIDE).repeat(CHAINS, 1, 1, 1)]
    before = z0[0].clone()
    moments = RunningMoments()
    generator = torch.Generator().manual_seed(seed)
    preconditioner = None
    if config.precondition:
        preconditioner = gauss_newton_preconditioner(energy, flow, z0, generator, config.probes)
    stats = run_chains(energy_potential(energy, flow), z0, config, generator, lambda k, image: moments.add(image),
                       preconditioner)
    assert torch.equal(z0[0], before), "the caller's latents were changed"
    # every chain and every kept sample is one draw: pool them per pixel
    pooled_mean = moments.mean.mean(0).flatten()
    pooled_var = (moments.variance + (moments.mean - moments.mean.mean(0)) ** 2).mean(0).flatten()
    return pooled_mean, pooled_var, mean, variance, stats, covariance


def _relative(estimate, truth):
    return ((estimate - truth).abs() / truth.abs()).max().item()


def _mean_error(estimate, truth, variance):
    """In posterior standard deviations: some posterior means are near 0, where a relative error means nothing."""
    return ((estimate - truth).abs() / variance.sqrt()).max().item()


def test_the_problem_is_stiff_enough_to_bias_a_large_step():
    *_, covariance = _sample(PosteriorSection(method="ula", samples=1, burn_in=0, thin=1, precondition=False))
    eigenvalues = torch.linalg.eigvalsh(torch.linalg.inv(covariance))
    assert eigenvalues.min() == pytest.approx(1.0, abs=0.05) and 10 < eigenvalues.max() < 2 / 0.1


def test_mala_matches_the_closed_form_posterior():
    config = PosteriorSection(method="mala", samples=50, temperature=1.0, step_size=0.1, burn_in=50, thin=3,
                              adapt=False, precondition=False)
    est_mean, est_var, mean, variance, stats, _ = _sample(config)
    assert _mean_error(est_mean, mean, variance) < 0.05
    assert _relative(est_var, variance) < 0.05, (est_var, variance)
    assert 0.2 < stats.acceptance.mean().item() < 0.95
    assert stats.nonfinite == 0


def test_ula_with_the_same_large_step_is_biased():
    """Guards the acceptance rule: without it (or with it inverted) the variance is off by far more than 5 %."""
    config = PosteriorSection(method="ula", samples=50, temperature=1.0, step_size=0.1, burn_in=50, thin=3,
                              precondition=False)
    _, est_var, _, variance, *_ = _sample(config)
    assert _relative(est_var, variance) > 0.5


def test_adapted_mala_reaches_its_target_rate_and_stays_exact():
    config = PosteriorSection(method="mala", samples=50, temperature=1.0, step_size=1.0, burn_in=60, thin=3,
                              adapt=True, precondition=False)
    est_mean, est_var, mean, variance, stats, _ = _sample(config, seed=2)
    assert abs(stats.acceptance.mean().item() - config.target_accept) < 0.05
    assert _mean_error(est_mean, mean, variance) < 0.05
    assert _relative(est_var, variance) < 0.05


def test_the_preconditioner_is_the_inverse_gauss_newton_diagonal():
    a, b, h, mask, y, lam = _problem()
    flow = AffineFlow(a.float(), b.float())
    z = [torch.zeros(CHAINS, 1, SIDE, SIDE)]
    g = gauss_newton_preconditioner(_energy(a, b, h, mask, y, lam), flow, z, torch.Generator().manual_seed(0), 4)
    k = mask[:, None] * (h @ a)
    exact = 1 / (1 + 2 * lam * (k * k).sum(0))
    curvature = (1 / g[0].double()).flatten(1).mean(0)  # E over probes of the curvature is exact
    assert _relative(curvature, 1 / exact) < 0.05


def test_preconditioned_mala_matches_the_closed_form_posterior():
    config = PosteriorSection(method="mala", samples=50, temperature=1.0, step_size=0.5, burn_in=50, thin=3,
                              adapt=True)
    est_mean, est_var, mean, variance, stats, _ = _sample(config, seed=4)
    assert _mean_error(est_mean, mean, variance) < 0.05
    assert _relative(est_var, variance) < 0.05
    assert stats.step_size.mean() > 0.2  # bigger steps than the plain chain's (~0.1): that is what it is for


def test_non_finite_proposals_are_rejected():
    a, b, *_ = _problem()
    flow = AffineFlow(a.float(), b.float())
    energy = Energy(observed=torch.full((4, 1, SIDE, SIDE), 0.5), mask=None, forward=None, weight=1.0,
                    prior_term="latent")
    explode = energy_potential(energy, flow)

    def potential(z):  # chains 0 and 1 turn NaN beyond |u| > 1.5
        values, grads, image = explode(z)
        bad = z[0].flatten(1).abs().amax(1) > 1.5
        bad[2:] = False
        return torch.where(bad, torch.nan, values), grads, image

    seen = []
    stats = run_chains(potential, [torch.zeros(4, 1, SIDE, SIDE)], PosteriorSection(
        method="ula", samples=20, step_size=0.5, burn_in=0, thin=1, precondition=False),
        torch.Generator().manual_seed(3),
        lambda k, image: seen.append(image))
    assert stats.nonfinite > 0
    assert all(torch.isfinite(image).all() for image in seen)
    assert math.isfinite(stats.acceptance.sum().item())


# ----------------------------------------------------------- the default ensemble (Laplace starts), temperature


def _ensemble(config: PosteriorSection, tiles: int, seed: int = 5):
    """``sample_tiles`` as the image sampler calls it: ``tiles`` copies of the affine problem, N chains each."""
    a, b, h, mask, y, lam = _problem()
    flow = AffineFlow(a.float(), b.float())
    energy = Energy(observed=y.float().reshape(1, 1, SIDE, SIDE).expand(tiles, -1, -1, -1),
                    mask=mask.float().reshape(1, 1, SIDE, SIDE).expand(tiles, -1, -1, -1),
                    forward=lambda x: (x.flatten(1) @ h.float().T).reshape(x.shape), weight=lam, prior_term="flow")
    mean, variance, _ = _closed_form(a, b, h, mask, y, lam)
    z0 = [torch.linalg.solve(a, mean - b).float().reshape(1, 1, SIDE, SIDE).repeat(tiles, 1, 1, 1)]
    kept, count = [], EvaluationCount()
    stats = sample_tiles(energy, flow, z0, config, torch.Generator().manual_seed(seed), kept.append, 1.0, count)
    draws = torch.cat(kept).double().flatten(1)  # every chain of every tile is one draw
    return draws.mean(0), draws.var(0), mean, variance, stats, count


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_the_laplace_ensemble_samples_the_tempered_posterior(temperature):
    """The default path (N chains per tile from Laplace draws, a short adapted burn-in): its pooled variance is
    ``temperature`` times the closed-form one (the posterior of ``exp(-E / T)`` is Gaussian with covariance T Σ).
    Fails when the temperature is left out of the target or of the start, or the burn-in does not relax the
    diagonal start (its variance in the correlated directions is ~30 % short)."""
    config = PosteriorSection(samples=5, burn_in=30, step_size=0.3, temperature=temperature)
    est_mean, est_var, mean, variance, stats, count = _ensemble(config, tiles=800)
    assert _mean_error(est_mean, mean, temperature * variance) < 0.1
    assert _relative(est_var, temperature * variance) < 0.1, (est_var / variance)
    assert stats.nonfinite == 0 and 0.3 < stats.acceptance.mean().item() < 0.9
    assert count.potential + count.probes + count.products == 800 * config.tile_steps


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_the_gauss_newton_laplace_start_is_an_exact_draw_of_a_gaussian_posterior(temperature):
    """With no burn-in the samples are the start itself: for the affine flow the Gauss-Newton Laplace approximation
    is the posterior, and D conjugate-gradient iterations solve the perturbed system exactly, so the pooled
    variance is T times the closed form within sampling error. The diagonal start (``laplace_iterations=0``) gives
    every latent its conditional variance and is ~30 % short in the correlated directions, so it fails here."""
    config = PosteriorSection(samples=5, burn_in=0, laplace_iterations=D, temperature=temperature)
    est_mean, est_var, mean, variance, _, count = _ensemble(config, tiles=800)
    assert _mean_error(est_mean, mean, temperature * variance) < 0.1
    assert _relative(est_var, temperature * variance) < 0.1, (est_var / variance)
    assert count.potential + count.probes + count.products == 800 * config.tile_steps
    diagonal = dataclasses.replace(config, laplace_iterations=0)
    _, diagonal_var, *_ = _ensemble(diagonal, tiles=800)
    assert _relative(diagonal_var, temperature * variance) > 0.2


# ------------------------------------------------------------------------------ a real crop, through the tiling


def _holes_case():
    from degradations import parse
    from flowprior.restoration import build_recipe, load_model
    from tests.conftest import natural_crop

    clean = natural_crop(64, 96)
    op = parse("mask", {"mask.coverage": 0.1, "mask.size": 10})
    observed = op.observed_mask(op.sample_params(clean.shape, torch.Generator().manual_seed(0)))
    # the observed pixels pinned hard (λ 10⁴, σ = 0.007), so what is uncertain is what the holes hide
    recipe = build_recipe(None, {"degradation": "mask", "solver.weight": 1e4, "solver.final_steps": 0,
                                 "solver.steps_per_stage": 0, "solver.init_latent": "full"}, {})
    return clean * observed, observed, recipe, load_model("default")


def test_std_inside_holes_is_at_least_twice_the_std_outside():
    from flowprior.posterior import sample_restoration

    y, observed, recipe, prior = _holes_case()
    y_before, mask_before = y.clone(), observed.clone()
    config = PosteriorSection(samples=4, burn_in=15)
    out = sample_restoration(y, recipe, observed, prior, config=config, keep_samples=True)
    assert torch.equal(y, y_before) and torch.equal(observed, mask_before)
    assert out.std.shape == y.shape and out.samples.shape == (4, *y.shape)
    assert torch.isfinite(out.std).all() and out.info["nonfinite_rejections"] == 0
    holes = observed[0, 0] < 0.5
    std = out.std.mean(1)[0]
    assert std[holes].mean() >= 2 * std[~holes].mean(), (std[holes].mean(), std[~holes].mean())
    # where a single tile covers a pixel (left of the second tile's origin) the blend is that tile's own spread
    alone = out.samples[..., :32].std(0, unbiased=False)
    assert torch.allclose(out.std[..., :32], alone, atol=1e-5)
    again = sample_restoration(y, recipe, observed, prior, x_map=out.image, config=config)
    assert torch.equal(again.std, out.std), "the seed does not replay the samples"
