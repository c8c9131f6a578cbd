"""ResFlow on the augmented state [x; y] (flowprior/warmstart/resflow.py): the σ_y reading, y's velocity target,
an Euler sampler that integrates y, a short training run on photo patches, the ablation and old checkpoints."""

import json

import pytest
import torch
from torch import nn

from degradations import parse
from flowprior.conditioning import CHANNELS
from flowprior.errors import UsageError
from flowprior.metrics import psnr
from flowprior.prior.checkpoint import save_checkpoint
from flowprior.recipe import find_recipe, load_recipe
from flowprior.train_warmstart import WarmstartTrainRecipe, synthesize_pairs, train_warmstart
from flowprior.warmstart import build_warmstart, load_warmstart, save_warmstart
from flowprior.warmstart.resflow import auxiliary_path, sigma_y, sigma_y_rate
from flowprior.warmstart.samplers import uniform_times
from tests.conftest import natural_crop
from tests.flow_checks import randomize

TINY = {"method": "resflow", "width": 8, "depth": 2, "blocks": 1, "time_dim": 16}


class ScriptedVelocity(nn.Module):
    """A stand-in network with a known field: ``dx/dt = y`` and ``dy/dt = rate`` (a constant), so the end point
    tells whether the sampler fed back the y it integrated."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate
        self.out = nn.Conv2d(1, 6, 1)  # the shape ResFlow.load_state_dict checks; unused here

    def forward(self, x, t, aux=None, cond=None):
        return torch.cat([aux, torch.full_like(aux, self.rate)], 1)


def photo_patches(count_x: int = 4, count_y: int = 2, size: int = 32) -> torch.Tensor:
    """(count_x * count_y, 3, size, size) patches of the astronaut photo (face, helmet and suit)."""
    crop = natural_crop(count_y * size, count_x * size, top=40, left=160)
    patches = crop.unfold(2, size, size).unfold(3, size, size)  # (1, 3, ny, nx, size, size)
    return patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, size, size).contiguous()


# ---------------------------------------------------------------- the schedule and the targets


def test_sigma_y_is_the_printed_formula_so_it_ends_at_ten_elevenths_not_zero():
    assert float(sigma_y(0.0)) == pytest.approx(10 / 11, abs=1e-15)  # the reading chosen in resflow.py
    assert float(sigma_y(1.0)) == 1.0  # y_1 ~ N(0, I) itself
    assert float(sigma_y(0.5)) == pytest.approx(10 / 10.5, abs=1e-15)
    assert float(sigma_y(0.0, beta=1.0)) == pytest.approx(0.5, abs=1e-15)
    values = sigma_y(torch.linspace(0, 1, 11))
    assert (values[1:] > values[:-1]).all()
    assert float(sigma_y_rate(0.0)) == pytest.approx(10 / 121, abs=1e-15)
    assert float(sigma_y_rate(1.0)) == pytest.approx(0.1, abs=1e-15)
    t = torch.linspace(0.05, 0.95, 7, dtype=torch.float64)  # the rate is the derivative of the scale
    numeric = (sigma_y(t + 1e-6) - sigma_y(t - 1e-6)) / 2e-6
    assert torch.allclose(sigma_y_rate(t), numeric, rtol=1e-8, atol=0)


def test_auxiliary_path_and_its_velocity_against_hand_values():
    y1 = torch.tensor([2.0, -1.0]).reshape(2, 1, 1, 1).expand(2, 3, 2, 2)
    y_t, rate = auxiliary_path(y1, torch.tensor([1.0, 0.0]), beta=10.0)
    assert y_t[0].unique().tolist() == [2.0] and rate[0].unique().tolist() == pytest.approx([0.2])
    assert y_t[1].unique().tolist() == pytest.approx([-10 / 11]) and rate[1].unique().tolist() == pytest.approx([-10 / 121])
    # the target is a function of y_t and t alone: dy/dt = y_t / (1 - t + beta)
    assert torch.allclose(rate[1], y_t[1] / 11.0)


def test_a_network_with_the_exact_y_velocity_has_zero_y_error():
    model = build_warmstart(TINY)

    class ExactY(ScriptedVelocity):
        def forward(self, x, t, aux=None, cond=None):  # dx/dt = 0, dy/dt = y_t / (1 - t + beta)
            return torch.cat([torch.zeros_like(x), aux / (1 - t.reshape(-1, 1, 1, 1) + 10.0)], 1)

    model.net = ExactY(0.0)
    hq = photo_patches(2, 1, 16)
    terms = model.loss_terms(hq, hq.flip(-1), torch.Generator().manual_seed(0))
    assert float(terms["mse_y"]) < 1e-12 and float(terms["mse"]) > 1e-3


# ---------------------------------------------------------------- the sampler integrates [x; y]


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_the_sampler_integrates_y_with_its_predicted_velocity(rate):
    model = build_warmstart({**TINY, "steps": 4})
    model.net = ScriptedVelocity(rate)
    lq = photo_patches(1, 1, 16)
    y1 = torch.randn(lq.shape, generator=torch.Generator().manual_seed(3))
    out = model.restore(lq, torch.Generator().manual_seed(3))  # y_1 is the generator's first draw
    # Euler from t = 1 by -1/4: y_k = y_1 - k/4 * rate, x_0 = LQ - 1/4 * sum_k y_k = LQ - y_1 + (6/16) * rate
    assert torch.allclose(out, lq - y1 + 0.375 * rate, atol=1e-6)
    # the old sampler's y_t = σ_y(t)·y_1, recomputed at every step, gives another end point (and ignores rate)
    recomputed = lq - 0.25 * sum(float(sigma_y(t)) for t in uniform_times(4, 1.0, 0.0)[:-1]) * y1
    assert (out - recomputed).abs().max() > 0.05


# ---------------------------------------------------------------- training on photo patches


def test_a_short_conditioned_run_on_photo_patches_lowers_both_halves_of_the_loss_and_restores():
    torch.manual_seed(0)
    model = build_warmstart({**TINY, "cond_channels": CHANNELS})
    hq = photo_patches()  # 8 patches of 32x32
    lq, cond = synthesize_pairs(hq, parse("noise", {"noise.sigma": 25}), torch.Generator().manual_seed(1), True)

    def evaluate() -> dict[str, float]:  # the same draws of t and y_1 before and after
        with torch.no_grad():
            terms = model.loss_terms(hq, lq, torch.Generator().manual_seed(5), cond=cond)
        return {name: float(value) for name, value in terms.items()}

    before = evaluate()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(40):
        optimizer.zero_grad()
        model.loss_terms(hq, lq, generator, cond=cond)["loss"].backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    after = evaluate()
    assert after["loss"] < 0.6 * before["loss"], (before, after)
    assert after["mse_y"] < 0.5 * before["mse_y"] and after["mse"] < 0.8 * before["mse"], (before, after)
    with torch.no_grad():
        out = model.eval().restore(lq, torch.Generator().manual_seed(0), cond)
    assert out.shape == lq.shape and torch.isfinite(out).all()
    gain = float(psnr(hq, out.clamp(0, 1)).mean() - psnr(hq, lq).mean())
    assert gain > 2.0, gain  # 20.4 dB in; +4.1 dB measured after 40 steps


# ---------------------------------------------------------------- the ablation and checkpoints


def test_the_ablation_drops_y_in_and_out():
    plain = build_warmstart({**TINY, "augmented": False})
    augmented = build_warmstart(TINY)
    assert plain.net.out.out_channels == 3 and augmented.net.out.out_channels == 6
    assert plain.net.adaptor is None and augmented.net.adaptor is not None
    hq = photo_patches(2, 1, 16)
    lq = hq.flip(-1)
    assert set(plain.loss_terms(hq, lq, torch.Generator().manual_seed(0))) == {"loss", "mse"}
    assert set(augmented.loss_terms(hq, lq, torch.Generator().manual_seed(0))) == {"loss", "mse", "mse_y"}
    randomize(plain, scale=0.05, seed=4)
    with torch.no_grad():  # no y: the seed changes nothing
        assert torch.equal(plain.restore(lq, torch.Generator().manual_seed(1)),
                           plain.restore(lq, torch.Generator().manual_seed(2)))


def test_old_augmented_checkpoints_are_refused_and_old_plain_ones_still_load(tmp_path):
    model = build_warmstart(TINY)
    state = model.state_dict()
    old = {**state, "net.out.weight": state["net.out.weight"][:3], "net.out.bias": state["net.out.bias"][:3]}
    save_checkpoint(tmp_path / "old.pt", model.config_dict(), old)
    with pytest.raises(UsageError, match="predates the paper's formulation.*flowprior train warmstart --method resflow"):
        load_warmstart(tmp_path / "old.pt")
    plain = build_warmstart({**TINY, "augmented": False})
    save_warmstart(tmp_path / "plain.pt", plain)
    assert not load_warmstart(tmp_path / "plain.pt").config.augmented


def test_the_conditioned_recipe_mirrors_irflow_data_on_the_lean_network_and_trains(tmp_path):
    irflow = load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-irflow-cond", "train"))
    recipe = load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-resflow-cond", "train"))
    assert recipe.method == "resflow" and recipe.data == irflow.data
    c = recipe.resflow
    assert (c.arch, c.cond_channels, c.augmented, c.steps) == ("lean", CHANNELS, True, 4) and c.width <= 48
    small = load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-resflow-cond", "train"), {
        "resflow.width": 8, "optim.batch_size": 4, "optim.steps": 2, "optim.warmup_steps": 1,
        "optim.checkpoint_every": 2, "optim.val_every": 2, "optim.val_patches": 4, "optim.log_every": 1,
        "optim.threads": 1, "optim.init_from": None, "output": str(tmp_path)})
    sources = tuple(_PhotoPatches(seed) for seed in (0, 1))
    result = train_warmstart(small, progress=False, sources=sources)
    assert result["step"] == 2 and result["skipped"] == 0
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("mse_y" in json.dumps(row) for row in rows)
    loaded = load_warmstart(tmp_path / "warmstart.pt")
    assert loaded.config.arch == "lean" and loaded.net.out.out_channels == 6 * 2**2  # unshuffled by 2


class _PhotoPatches:
    """The train/validation source contract on astronaut patches."""

    def __init__(self, seed: int):
        self.images = photo_patches(4, 2, 32).roll(seed, 0)

    def sample(self, batch, generator):
        return self.images[torch.randint(0, len(self.images), (batch,), generator=generator)]
