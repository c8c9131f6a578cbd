"""Learned warm starts: formulas, samplers, the U-Net, training, checkpoints and restore integration."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from degradations import parse
from flowprior.cli import main
from flowprior.errors import UsageError
from flowprior.prior.glow import Glow, GlowConfig
from flowprior.recipe import find_recipe, load_recipe
from flowprior.restoration import build_recipe, make_initializer, restore_tensor
from flowprior.train_warmstart import WarmstartTrainRecipe, synthesize_pairs, train_warmstart
from flowprior.warmstart import build_warmstart, get_initializer, load_warmstart, save_warmstart
from flowprior.warmstart.irflow import multistep_consistency_loss
from flowprior.warmstart.resflow import resflow_loss_weight  # sigma_y: tests/test_resflow.py
from flowprior.warmstart.samplers import euler_sample, irflow_sample, irflow_step, mean_value_sampling
from flowprior.warmstart.unet import TimeUNet, UNetConfig, reflect_pad_to_multiple
from tests.flow_checks import randomize

TINY = {"width": 8, "depth": 2, "blocks": 1, "time_dim": 16}
TINY_CONFIGS = {
    "resflow": {"method": "resflow", **TINY},
    "irflow": {"method": "irflow", **TINY, "consistency_fraction": 1.0},
    "flowie": {"method": "flowie", **TINY, "initial_width": 8, "initial_layers": 3},
}


class SmoothPatches:
    """A fixed set of smooth random 16x16 fields (a stand-in for the photo pool)."""

    def __init__(self, count=8, size=16, seed=0):
        coarse = torch.rand(count, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(seed))
        self.images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def sample(self, batch, generator):
        return self.images[torch.randint(0, len(self.images), (batch,), generator=generator)]


def tiny_pairs(count=8, size=16, spec="noise+mask", params=None):
    """Clean smooth fields and their filled degraded side (strong noise: much to learn in a few steps)."""
    hq = SmoothPatches(count, size).images
    op = parse(spec, params or {"noise.sigma": 20, "mask.size": 3})
    return hq, synthesize_pairs(hq, op, torch.Generator().manual_seed(1))[0]


# ---------------------------------------------------------------- formulas against hand-computed values


def test_resflow_loss_weight_against_hand_values():
    t = torch.tensor([0.0, 1 / 3, 0.5, 1.0], dtype=torch.float64)
    # cos(π/6) = √3/2, cos(π/4) = √2/2
    expected = [0.0, (1 - math.sqrt(3) / 2) ** 1.75, (1 - math.sqrt(2) / 2) ** 1.75, 1.0]
    assert resflow_loss_weight(t).tolist() == pytest.approx(expected, abs=1e-12)


def test_irflow_step_rule_against_hand_values_and_exact_on_the_path():
    x = torch.tensor([1.0], dtype=torch.float64)
    assert irflow_step(x, torch.tensor([0.6], dtype=torch.float64), 0.75, 0.25).item() == pytest.approx(0.6)
    assert irflow_step(x, torch.tensor([0.6], dtype=torch.float64), 0.5, 0.0).item() == pytest.approx(0.4)
    g = torch.Generator().manual_seed(0)
    hq = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64)
    lq = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64)
    state = lambda s: s * lq + (1 - s) * hq
    for s, s_next in [(1.0, 0.7), (0.7, 0.2), (0.3, 0.0)]:
        assert torch.allclose(irflow_step(state(s), s * (lq - hq), s, s_next), state(s_next), atol=1e-14)
    oracle = lambda x, t: t.view(-1, 1, 1, 1) * (lq - hq)  # the exact cumulative displacement
    for steps in (1, 2, 3, 4):
        assert torch.allclose(irflow_sample(oracle, lq, steps), hq, atol=1e-14)
    with pytest.raises(ValueError, match="s_next"):
        irflow_step(x, x, 0.5, 0.7)


def test_mean_value_sampling_is_exact_on_a_straight_line_field():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    target = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    calls = []

    def straight(x, t):  # moves every point along the straight line to `target`, arriving at t = 1
        calls.append(float(t[0]))
        return (target - x) / (1 - t.view(-1, 1, 1, 1))

    for m in range(4):
        calls.clear()
        out = mean_value_sampling(straight, start, m)
        assert (out - target).abs().max().item() < 1e-12
        assert calls == [i / 4 for i in range(m + 1)]  # m + 1 network calls on the 5-point schedule


def test_mean_value_sampling_and_euler_against_hand_values_on_a_curved_field():
    one = torch.ones(1, 1, dtype=torch.float64)
    grow = lambda x, t: x  # dx/dt = x: Euler steps multiply by 1.25
    assert mean_value_sampling(grow, one, 0).item() == pytest.approx(2.0, abs=1e-15)
    assert mean_value_sampling(grow, one, 2).item() == pytest.approx(1 + 1.25**2, abs=1e-15)
    assert mean_value_sampling(grow, one, 3).item() == pytest.approx(1 + 1.25**3, abs=1e-15)
    assert euler_sample(grow, one, [1.0, 0.75, 0.5, 0.25, 0.0]).item() == pytest.approx(0.75**4, abs=1e-15)
    with pytest.raises(ValueError, match="m"):
        mean_value_sampling(grow, one, 4)


def test_multistep_consistency_backpropagates_through_every_unrolled_step():
    a = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    lq = torch.tensor([[2.0]], dtype=torch.float64)
    hq = torch.tensor([[0.5]], dtype=torch.float64)
    loss = multistep_consistency_loss(lambda x, t: a * x, hq, lq, steps=2).sum()
    loss.backward()
    # K = 2 on d(x) = a x: x_end = lq (1 - a/2)(1 - a); d x_end / da = lq (a - 1.5). A detached first step
    # would give lq (1 - a/2) * (-1) instead.
    end = 2.0 * (1 - 0.15) * (1 - 0.3)
    assert a.grad.item() == pytest.approx(2 * (end - 0.5) * 2.0 * (0.3 - 1.5), abs=1e-12)


# ---------------------------------------------------------------- the U-Net


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 7), (13, 21), (31, 33), (40, 17)])
def test_unet_keeps_odd_and_small_sizes(size):
    net = randomize(TimeUNet(UNetConfig(aux_channels=3, **TINY)), scale=0.1)
    x = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(0))
    aux = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    out = net(x, torch.tensor([0.2, 0.8]), aux)
    assert out.shape == (2, 3, *size) and torch.isfinite(out).all()


def test_reflect_padding_mirrors_in_several_passes_and_crops_back():
    row = torch.tensor([[[[1.0, 2.0, 3.0]]]])
    padded, size = reflect_pad_to_multiple(row, 8)
    assert size == (1, 3) and padded.shape == (1, 1, 8, 8)
    assert padded[0, 0, 0].tolist() == [1, 2, 3, 2, 1, 2, 3, 2]  # [1 2 3] -> [1 2 3 2 1] -> mirrored again
    assert (padded[0, 0] == padded[0, 0, :1]).all()  # a 1-pixel side cannot be mirrored: replicated


def test_time_conditions_the_output_and_the_fresh_adaptor_is_inert():
    net = TimeUNet(UNetConfig(aux_channels=3, **TINY))
    randomize(net, scale=0.1)
    with torch.no_grad():
        for head in net.adaptor.heads:
            head.weight.zero_(), head.bias.zero_()
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    y = torch.randn(1, 3, 12, 12, generator=torch.Generator().manual_seed(1))
    assert torch.equal(net(x, 0.5, y), net(x, 0.5, torch.zeros_like(y)))  # zero heads: y changes nothing
    assert (net(x, 0.1, y) - net(x, 0.9, y)).abs().max() > 1e-3
    randomize(net.adaptor, scale=0.1, seed=3)
    # trained heads: y modulates
    assert (net(x, 0.5, y) - net(x, 0.5, torch.zeros_like(y))).abs().max() > 1e-4
    with pytest.raises(ValueError, match="aux"):
        net(x, 0.5)


# ---------------------------------------------------------------- training


@pytest.mark.parametrize("method,phase", [("resflow", "main"), ("irflow", "main"), ("flowie", "initial"),
                                          ("flowie", "flow")])
def test_training_loss_decreases_on_a_tiny_set(method, phase):
    torch.manual_seed(0)
    model = build_warmstart(TINY_CONFIGS[method])
    hq, lq = tiny_pairs()

    def evaluate() -> float:  # the same random draws (t, noise, K) before and after
        with torch.no_grad():
            return float(model.loss_terms(hq, lq, torch.Generator().manual_seed(5), phase)["loss"])

    before = evaluate()
    # τφ starts as the identity (zero last layer), so only its last layer moves at first; it is 50x cheaper
    # than the U-Net, so it gets more and larger steps
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2 if phase == "initial" else 3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(60 if phase == "initial" else 20):
        optimizer.zero_grad()
        model.loss_terms(hq, lq, generator, phase)["loss"].backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.8 * before, (method, phase, before, after)


def test_flowie_freezes_the_initial_stage_while_the_flow_trains():
    model = build_warmstart(TINY_CONFIGS["flowie"])
    hq, lq = tiny_pairs(4)
    model.loss_terms(hq, lq, torch.Generator().manual_seed(0), "flow")["loss"].backward()
    assert all(p.grad is None for p in model.initial.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.net.parameters())
    assert [model.phase_at(s, 8) for s in range(8)] == ["initial"] * 2 + ["flow"] * 6  # initial_fraction 0.25


def test_training_run_resumes_and_logs(tmp_path):
    recipe = load_recipe(WarmstartTrainRecipe, None, {
        "method": "flowie", "flowie.width": 8, "flowie.depth": 2, "flowie.time_dim": 16,
        "flowie.initial_width": 8, "flowie.initial_layers": 3, "flowie.initial_fraction": 0.5,
        "optim.batch_size": 4, "optim.steps": 4,
        "optim.checkpoint_every": 2, "optim.val_every": 2, "optim.val_patches": 4, "optim.warmup_steps": 1,
        "data.params.mask.size": 3, "output": str(tmp_path)})
    sources = (SmoothPatches(), SmoothPatches(seed=9))
    first = train_warmstart(recipe, progress=False, sources=sources)
    assert first["step"] == 4 and first["skipped"] == 0 and first["phase"] == "flow"
    recipe.optim.steps = 6
    assert train_warmstart(recipe, resume=True, progress=False, sources=sources)["step"] == 6
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in rows if "val_psnr" in r and "final" not in r] == ["initial", "flow", "flow"]
    assert all(math.isfinite(r["val_psnr"]) for r in rows if "val_psnr" in r)
    model = load_warmstart(tmp_path / "best.pt")  # written in the final phase only
    assert model.method == "flowie" and model.config.initial_layers == 3 and not model.training
    assert (tmp_path / "recipe.yaml").read_text().startswith("method: flowie")


# ---------------------------------------------------------------- initializers from checkpoints


def _saved(tmp_path, method):
    model = randomize(build_warmstart(TINY_CONFIGS[method]), scale=0.05, seed=4)
    path = tmp_path / f"{method}.pt"
    save_warmstart(path, model, {"note": "test"})
    return model, path


@pytest.mark.parametrize("method", ["resflow", "irflow", "flowie"])
def test_loaded_warm_start_reproduces_its_output_bit_exactly(tmp_path, method):
    model, path = _saved(tmp_path, method)
    op = parse("noise+mask", {"noise.sigma": 10, "mask.size": 3})
    x = SmoothPatches(2, 24).images[:, :, :19, :23]  # odd size, below 32 px
    params = op.sample_params(tuple(x.shape), torch.Generator().manual_seed(0))
    y = op.apply(x, params)
    first = get_initializer(method, checkpoint=str(path), seed=7)(y, op, params)
    again = get_initializer(method, checkpoint=str(path), seed=7)(y, op, params)
    assert torch.equal(first, again)
    assert first.shape == y.shape and first.min() >= 0 and first.max() <= 1
    with torch.no_grad():  # the loaded weights are the saved ones
        from flowprior.warmstart.learned import prepare_input

        lq = prepare_input(y, op, params)
        direct = model.eval().restore(lq, torch.Generator().manual_seed(7)).clamp(0, 1)
    assert torch.equal(first, direct)
    other_seed = get_initializer(method, checkpoint=str(path), seed=8)(y, op, params)
    assert torch.equal(first, other_seed) == (method == "irflow")  # only IR-Flow is deterministic
    assert not torch.equal(first, y)  # a randomized network changes the input


def test_missing_or_mismatched_checkpoint_is_a_usage_error_naming_the_fix(tmp_path, monkeypatch):
    from flowprior import weights

    monkeypatch.delitem(weights.EMBEDDED, "warmstart-irflow", raising=False)
    with pytest.raises(UsageError, match="flowprior train warmstart --method irflow"):
        get_initializer("irflow")
    monkeypatch.setitem(weights.EMBEDDED, "warmstart-irflow", ("no-such-file.pt", "0" * 64))
    with pytest.raises(UsageError, match="is not installed.*flowprior train warmstart --method irflow"):
        get_initializer("irflow")
    _, path = _saved(tmp_path, "resflow")
    with pytest.raises(UsageError, match="--init resflow"):
        get_initializer("flowie", checkpoint=str(path))
    with pytest.raises(UsageError, match="init is 'identity'"):
        make_initializer(build_recipe(None, {"init": "identity", "init_checkpoint": str(path)}, {}))
    assert make_initializer(build_recipe(None, {"init": "resflow", "init_checkpoint": str(path), "seed": 3}, {})).seed == 3


def test_restore_tensor_runs_end_to_end_from_an_irflow_checkpoint(tmp_path):
    _, path = _saved(tmp_path, "irflow")
    prior = Glow(GlowConfig(levels=2, steps=1, width=8, patch_size=16))
    prior.initialize(torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)))
    prior = randomize(prior, scale=0.02).eval().requires_grad_(False)
    y = SmoothPatches(1, 32).images[:, :, :27, :30]
    mask = torch.ones(1, 1, 27, 30)
    mask[..., 5:9, 10:14] = 0
    settings = {"degradation": "noise", "init": "irflow", "init_checkpoint": str(path),
                "solver.init_latent": "full"}
    zero_steps = build_recipe(None, {**settings, "solver.steps_per_stage": 0, "solver.final_steps": 0},
                              {"noise.sigma": 5})
    result = restore_tensor(y, zero_steps, mask=mask, prior=prior)
    x0 = get_initializer("irflow", checkpoint=str(path))(y, parse("mask"), {"mask": mask})
    # no solver steps: decode(encode(x0)) merged from tiles must give back the warm start itself
    assert (result.image - x0).abs().max().item() < 1e-4
    assert result.info["recipe"]["init_checkpoint"] == str(path)
    short = build_recipe(None, {**settings, "solver.steps_per_stage": 1, "solver.final_steps": 2},
                         {"noise.sigma": 5})
    solved = restore_tensor(y, short, mask=mask, prior=prior)
    assert solved.image.shape == (1, 3, 27, 30) and torch.isfinite(solved.image).all()


# ---------------------------------------------------------------- recipes and the command line


@pytest.mark.parametrize("method", ["resflow", "irflow", "flowie"])
def test_shipped_recipes_load_and_name_their_method(method):
    recipe = load_recipe(WarmstartTrainRecipe, find_recipe(f"warmstart-{method}", "train"))
    assert recipe.method == method and recipe.optim.threads == 2
    assert recipe.data.params == {"jpeg.quality": "10:70", "noise.sigma": "0:15", "mask.coverage": "0:0.1"}
    assert recipe.build_model().method == method


def test_cli_refuses_a_recipe_for_another_method(capsys):
    assert main(["train", "warmstart", "--method", "irflow", "--recipe", "warmstart-flowie"]) == 2
    assert "trains 'flowie', not 'irflow'" in capsys.readouterr().err
