"""The balanced training loss (flowprior.warmstart.learned.balanced_mean): a per-sample gradient weight that lets
light samples count in a mixture dominated by heavy damage, with the MSE's scale kept."""

import math

import pytest
import torch

from flowprior.warmstart.irflow import IRFlowConfig
from flowprior.warmstart.learned import balanced_mean


def _sample_gradients(power: float) -> torch.Tensor:
    errors = torch.tensor([1e-5, 1e-4, 1e-3, 1e-2], requires_grad=True)
    balanced_mean(errors, power).backward()
    return errors.grad


def test_power_zero_is_the_plain_mean():
    errors = torch.tensor([1e-5, 1e-3, 2e-2])
    assert balanced_mean(errors, 0.0) == errors.mean()


def test_power_one_gives_the_gradient_of_the_mean_log_error():
    grads = _sample_gradients(1.0)
    errors = torch.tensor([1e-5, 1e-4, 1e-3, 1e-2])
    expected = 1 / (errors + 1.5e-5)
    # the weights are rescaled to mean 1, so only the ratios are those of d/de log(e + floor)
    assert torch.allclose(grads / grads[0], expected / expected[0], rtol=1e-5)


def test_light_samples_gain_weight_as_the_power_grows_and_the_floor_bounds_it():
    plain, half, full = (_sample_gradients(p) for p in (0.0, 0.5, 1.0))
    assert plain[0] == plain[-1]  # the plain mean weighs every sample alike
    assert half[0] / half[-1] > 20 and full[0] / full[-1] > half[0] / half[-1]
    # a sample with no error at all cannot take over: its weight stays below 1 / floor relative to the batch
    zero = torch.tensor([0.0, 1e-3], requires_grad=True)
    balanced_mean(zero, 1.0).backward()
    assert math.isfinite(zero.grad[0].item()) and zero.grad[0] < 2.0


def test_the_loss_keeps_the_scale_of_the_errors():
    errors = torch.full((8,), 3e-4)
    assert balanced_mean(errors, 0.5).item() == pytest.approx(3e-4, rel=1e-6)


def test_config_rejects_out_of_range_balance():
    with pytest.raises(ValueError):
        IRFlowConfig(loss_balance=1.5)
    with pytest.raises(ValueError):
        IRFlowConfig(loss_floor=0.0)


@pytest.mark.parametrize("method", ["irflow", "resflow"])
def test_training_reads_the_balance(method):
    """The IR-Flow and (plain) ResFlow losses weight each sample by its balanced weight: with errors that differ
    across the batch, weighting the small ones up gives a smaller value than the plain MSE of the same draws."""
    from flowprior.warmstart import build_warmstart
    from tests.test_warmstart import TINY_CONFIGS, tiny_pairs

    hq, lq = tiny_pairs()
    lq = lq.clone()
    # half the batch lightly damaged: a fresh network predicts ~0, so its errors are the damage, 100x apart
    lq[:4] = hq[:4] + 0.1 * (lq[:4] - hq[:4])
    extra = {"irflow": {"consistency_weight": 0.0, "t1_fraction": 1.0}, "resflow": {"augmented": False}}[method]

    def loss(balance: float) -> float:
        torch.manual_seed(0)
        model = build_warmstart({**TINY_CONFIGS[method], **extra, "loss_balance": balance})
        with torch.no_grad():
            return float(model.loss_terms(hq, lq, torch.Generator().manual_seed(5))["loss"])

    plain, balanced = loss(0.0), loss(1.0)
    assert balanced < 0.7 * plain, (plain, balanced)
