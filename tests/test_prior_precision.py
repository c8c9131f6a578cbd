"""The prior's bfloat16 training switch: only the coupling networks' hidden layers change precision, the flow stays
exactly invertible, validation and restores see float32, and a bf16 run trains like a float32 one."""

import json

import pytest
import torch
import torch.nn.functional as F

from flowprior.prior.glow import Glow, GlowConfig
from flowprior.prior.layers import CouplingNet, full_precision, set_coupling_precision
from flowprior.recipe import load_recipe
from flowprior.train_prior import (
    LossSection,
    PriorTrainRecipe,
    prior_loss_terms,
    train_prior,
    validation_bits_per_dim,
)


def smooth_patches(count=16, size=16, seed=0):
    coarse = torch.rand(count, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def trained_prior(seed=0):
    """A small prior with non-trivial couplings (the zero convs moved off zero), so precision matters."""
    torch.manual_seed(seed)
    prior = Glow(GlowConfig(levels=2, steps=2, width=32, patch_size=16))
    data = smooth_patches()
    prior.initialize(data)
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(20):
        terms = prior_loss_terms(prior, data, LossSection(latent_noise=0.0, autoencoder=0.0), generator)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    return prior.eval(), data


def test_bf16_changes_the_coupling_outputs_but_the_flow_still_inverts_exactly():
    prior, data = trained_prior()
    with torch.no_grad():
        _, logdet32 = prior.encode(data)
        set_coupling_precision(prior, "bf16")
        z16, logdet16 = prior.encode(data)
        back = prior.decode(z16)
    assert not torch.equal(logdet16, logdet32)  # the switch does something
    assert (logdet16 - logdet32).abs().max() < 1e-2 * logdet32.abs().max()
    assert (back - data).abs().max() < 1e-4  # the same bf16 network on both sides: exact inverse in float32
    assert all(zi.dtype == torch.float32 for zi in z16)


def test_full_precision_restores_the_flags_and_validation_reads_float32():
    prior, data = trained_prior()
    fp32_bpd = validation_bits_per_dim(prior, data, seed=0)
    set_coupling_precision(prior, "bf16")
    assert validation_bits_per_dim(prior, data, seed=0) == fp32_bpd
    nets = [m for m in prior.modules() if isinstance(m, CouplingNet)]
    assert nets and all(net.bf16_body for net in nets)  # back to bf16 after validation
    with full_precision(prior):
        assert not any(net.bf16_body for net in nets)
    with pytest.raises(ValueError, match="precision"):
        set_coupling_precision(prior, "fp16")


def test_a_bf16_prior_run_trains_like_float32(tmp_path):
    """Same seeds, same data: the held-out bits/dim after 30 steps within 2 % of each other, both improving."""
    results = {}
    for precision in ("fp32", "bf16"):
        recipe = load_recipe(PriorTrainRecipe, None, {
            "model.levels": 2, "model.steps": 2, "model.width": 32, "model.patch_size": 16,
            "optim.batch_size": 8, "optim.steps": 30, "optim.init_batch": 16, "optim.val_every": 30,
            "optim.val_patches": 8, "optim.warmup_steps": 5, "optim.lr": 2e-3, "optim.precision": precision,
            "optim.fast_adam": precision == "bf16", "output": str(tmp_path / precision),
        })
        train_prior(recipe, progress=False, sources=(_Fixed(smooth_patches()), _Fixed(smooth_patches(seed=9))))
        results[precision] = _final_val_bpd(tmp_path / precision / "log.jsonl")
    start = validation_bits_per_dim(_initialized(smooth_patches()), smooth_patches(seed=9)[:8], seed=0)
    assert results["fp32"] < start and results["bf16"] < start
    assert abs(results["bf16"] - results["fp32"]) < 0.02 * results["fp32"], results


class _Fixed:
    def __init__(self, images):
        self.images = images

    def sample(self, batch, generator):
        return self.images[torch.randint(0, len(self.images), (batch,), generator=generator)]


def _initialized(data):
    prior = Glow(GlowConfig(levels=2, steps=2, width=32, patch_size=16))
    prior.initialize(data)
    return prior


def _final_val_bpd(log_path):
    rows = [json.loads(line) for line in log_path.read_text().splitlines()]
    return [row["val_bpd"] for row in rows if "val_bpd" in row][-1]
