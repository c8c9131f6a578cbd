"""The fast training loop (bfloat16 forward pass, channels-last fused Adam, compiled network) and the pair
synthesis it is timed with: the same training as the float32 loop up to rounding, resumable, and the faster
synthesis kernels equal to the ones they replaced."""

import math

import pytest
import torch
import torch.nn.functional as F

from degradations.functional.masks import _stamp_disks
from flowprior.recipe import load_recipe
from flowprior.train_warmstart import WarmstartTrainRecipe, train_warmstart
from flowprior.training import SPIKE_WARMUP, forward_precision, guarded_step, is_spike, make_adam, track_loss
from flowprior.warmstart import build_warmstart, load_warmstart
from flowprior.warmstart.identity import box_mean
from tests.test_warmstart import TINY, SmoothPatches, tiny_pairs

IRFLOW = {"method": "irflow", **TINY, "arch": "lean", "unshuffle": 2, "consistency_weight": 0.0}


def test_an_unknown_precision_is_refused_before_a_run_starts():
    with pytest.raises(ValueError, match="bf16"):
        forward_precision("fp16")
    with pytest.raises(ValueError, match="optim.precision"):
        load_recipe(WarmstartTrainRecipe, None, {"method": "irflow", "optim.precision": "half"})


def test_the_bf16_forward_runs_the_convolutions_in_bfloat16_and_returns_a_float32_loss():
    model = build_warmstart(IRFLOW)
    hq, lq = tiny_pairs(4)
    seen = []
    hook = model.net.stem.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    with forward_precision("bf16"):
        loss = model.loss_terms(hq, lq, torch.Generator().manual_seed(0))["loss"]
    with forward_precision("fp32"):
        model.loss_terms(hq, lq, torch.Generator().manual_seed(0))
    hook.remove()
    assert seen == [torch.bfloat16, torch.float32] and loss.dtype == torch.float32


def _train(fast: bool, steps: int = 60) -> tuple[list[float], torch.nn.Module]:
    torch.manual_seed(0)
    model = build_warmstart(IRFLOW)
    optimizer = make_adam(model, 3e-3, fast)
    hq, lq = tiny_pairs(8)
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(steps):
        with forward_precision("bf16" if fast else "fp32"):
            loss = model.loss_terms(hq, lq, generator)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses, model


def test_fast_training_follows_the_float32_loss_curve():
    slow, slow_model = _train(fast=False)
    fast, fast_model = _train(fast=True)
    assert fast[-1] < 0.8 * fast[0]  # it learns
    # the same trajectory up to bfloat16's rounding (8 bits of mantissa: ~0.4 % per product)
    assert all(abs(a - b) <= 0.05 * a for a, b in zip(slow, fast)), list(zip(slow, fast))
    conv = fast_model.net.stem.weight
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    assert set(slow_model.state_dict()) == set(fast_model.state_dict())


def test_fast_and_float32_runs_resume_each_others_checkpoints_and_save_float32_weights(tmp_path):
    settings = {"method": "irflow", **{f"irflow.{k}": v for k, v in IRFLOW.items() if k != "method"},
                "optim.batch_size": 4, "optim.steps": 3, "optim.checkpoint_every": 3, "optim.val_every": 3,
                "optim.val_patches": 4, "optim.warmup_steps": 1, "data.params.mask.size": 3,
                "output": str(tmp_path)}
    sources = (SmoothPatches(), SmoothPatches(seed=9))
    train_warmstart(load_recipe(WarmstartTrainRecipe, None, settings), progress=False, sources=sources)
    fast = load_recipe(WarmstartTrainRecipe, None, {**settings, "optim.steps": 6, "optim.precision": "bf16",
                                                     "optim.fast_adam": True})
    result = train_warmstart(fast, resume=True, progress=False, sources=sources)
    assert result["step"] == 6 and result["skipped"] == 0 and math.isfinite(result["val_psnr"])
    model = load_warmstart(tmp_path / "warmstart.pt")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    back = load_recipe(WarmstartTrainRecipe, None, {**settings, "optim.steps": 8})  # and the other way round
    assert train_warmstart(back, resume=True, progress=False, sources=sources)["step"] == 8


@pytest.mark.parametrize("radius", [1, 3, 16, 40])
def test_box_mean_is_the_replicate_padded_average_pool(radius):
    x = torch.rand(2, 3, 21, 34, generator=torch.Generator().manual_seed(radius))
    # the reference in float64: a float32 average pool over 81² values is itself only good to ~1e-4
    reference = F.avg_pool2d(F.pad(x.double(), [radius] * 4, mode="replicate"), 2 * radius + 1, stride=1)
    assert box_mean(x, radius).shape == x.shape and box_mean(x, radius).dtype == torch.float32
    assert torch.allclose(box_mean(x, radius).double(), reference, atol=1e-6)


def _stamp_one_by_one(missing, points, radius, r):
    """The per-point loop the vectorized stamp replaced (kept here as its reference)."""
    height, width = missing.shape
    ys = torch.arange(height, dtype=torch.float64)[:, None]
    xs = torch.arange(width, dtype=torch.float64)[None, :]
    for py, px in points.tolist():
        y0, y1 = max(0, int(py) - r), min(height, int(py) + r + 2)
        x0, x1 = max(0, int(px) - r), min(width, int(px) + r + 2)
        if y0 < y1 and x0 < x1:
            missing[y0:y1, x0:x1] |= (ys[y0:y1] - py) ** 2 + (xs[:, x0:x1] - px) ** 2 <= radius * radius


@pytest.mark.parametrize("radius", [0.5, 1.25, 2.0, 3.7])
def test_stamped_disks_equal_the_per_point_loop_including_points_off_the_image(radius):
    generator = torch.Generator().manual_seed(int(10 * radius))
    points = torch.rand(300, 2, generator=generator, dtype=torch.float64) * torch.tensor([50.0, 70.0]) - 10.0
    expected, found = torch.zeros(40, 60, dtype=torch.bool), torch.zeros(40, 60, dtype=torch.bool)
    _stamp_one_by_one(expected, points, radius, math.ceil(radius))
    _stamp_disks(found, points, radius, math.ceil(radius))
    assert expected.any() and torch.equal(found, expected)


def test_a_loss_spike_is_skipped_and_leaves_adams_moments_untouched():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight], lr=1e-3)
    state = {"step": 0, "skipped": 0}
    for _ in range(SPIKE_WARMUP):  # a steady loss of ~0.03 (gradient norm 0.017, under the clip) sets the mean
        assert guarded_step([weight], optimizer, (weight * 0.01).sum(), 1.0, state, spike_factor=50.0) is not None
    moments = optimizer.state[weight]["exp_avg_sq"].clone()
    assert guarded_step([weight], optimizer, (weight * 1e4).sum(), 1.0, state, spike_factor=50.0) is None
    assert state["spikes"] == 1 and state["step"] == SPIKE_WARMUP
    assert torch.equal(optimizer.state[weight]["exp_avg_sq"], moments)
    # without the guard the same batch is a step, clipped to norm 1, that inflates the second moment ~3000x
    assert guarded_step([weight], optimizer, (weight * 1e4).sum(), 1.0, state, spike_factor=None) is not None
    assert float(optimizer.state[weight]["exp_avg_sq"].max()) > 10 * float(moments.max())


def test_the_spike_test_waits_for_a_running_mean_and_lets_normal_variation_through():
    state = {}
    assert not is_spike(1e6, state, 50.0)  # no history yet
    for value in [1.0, 4.0, 0.5, 2.0] * 13:
        track_loss(value, state)
    assert not is_spike(20.0, state, 50.0) and is_spike(500.0, state, 50.0) and not is_spike(500.0, state, None)
