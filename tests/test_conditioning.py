"""Degradation maps for the conditioned warm starts, the lean network, and the training mixture."""

import math

import pytest
import torch

from degradations import parse
from degradations.functional.jpeg import quantization_tables
from flowprior.conditioning import CHANNELS, NAMES, condition_maps, describe, drop_unknown, jpeg_steps
from flowprior.train_warmstart import (
    MixtureEntry,
    WarmstartDataSection,
    build_degradations,
    synthesize_mixture,
)
from flowprior.warmstart import build_warmstart
from flowprior.warmstart.leannet import LeanUNet
from flowprior.warmstart.unet import UNetConfig

SHAPE = (2, 3, 12, 20)


def maps_for(spec, params, unknown=()):
    op = parse(spec, params)
    sampled = op.sample_params(SHAPE, torch.Generator().manual_seed(0))
    return op, sampled, condition_maps(op, sampled, SHAPE, unknown)


def test_noise_sigma_is_declared_per_pixel_on_the_fifty_scale():
    _, _, maps = maps_for("noise", {"noise.sigma": 25})
    assert maps.shape == (2, CHANNELS, 12, 20) and len(NAMES) == CHANNELS
    assert torch.allclose(maps[:, 0], torch.full((2, 12, 20), 0.5))
    assert (maps[:, 1] == 1).all()  # known
    assert (maps[:, 2:5] == 0).all() and (maps[:, 5] == 1).all()  # no JPEG, and that is known
    assert (maps[:, 6] == 1).all()  # nothing missing


def test_jpeg_quality_becomes_its_tables_mean_log_step():
    _, _, maps = maps_for("jpeg", {"jpeg.quality": 10})
    luma, _ = quantization_tables(torch.tensor([10]))
    expected = math.log(luma.double().mean()) / math.log(255)
    assert maps[0, 2, 0, 0].item() == pytest.approx(expected, rel=1e-6)
    assert maps[0, 3, 0, 0] > maps[0, 2, 0, 0]  # chroma is quantized harder
    assert (maps[:, 4] == 1).all()  # 4:2:0 by default
    _, _, q90 = maps_for("jpeg(subsampling=444)", {"jpeg.quality": 90})
    assert (q90[:, 4] == 0).all() and q90[0, 2, 0, 0] < maps[0, 2, 0, 0]


def test_the_files_own_tables_override_the_quality():
    op = parse("jpeg", {"jpeg.quality": 50})
    params = op.sample_params(SHAPE, torch.Generator())
    flat = torch.full((2, 8, 8), 3, dtype=torch.int64)
    params.update(luma_table=flat, chroma_table=flat)
    maps = condition_maps(op, params, SHAPE)
    assert maps[0, 2, 0, 0].item() == pytest.approx(math.log(3) / math.log(255), rel=1e-6)


def test_composition_reports_noise_jpeg_and_the_mask():
    op, params, maps = maps_for("mask+noise+jpeg", {"mask.coverage": 0.2, "mask.size": 3, "noise.sigma": 10,
                                                     "jpeg.quality": 30})
    assert torch.allclose(maps[:, 0], torch.full((2, 12, 20), 0.2))
    assert torch.equal(maps[:, 6:7], op.observed_mask(params).float())
    assert 0 < maps[:, 6].mean() < 1
    info = describe(maps)
    assert info["noise_sigma"] == pytest.approx(10)
    assert info["jpeg_mean_step"]["subsampling"] == "420" and info["missing_fraction"] > 0


def test_unknown_quantities_are_zero_with_their_flag_down():
    _, _, maps = maps_for("noise+jpeg", {"noise.sigma": 25, "jpeg.quality": 30}, unknown=("noise", "jpeg"))
    assert (maps[:, :6] == 0).all() and (maps[:, 6] == 1).all()
    assert describe(maps)["noise_sigma"] == "unknown" and describe(maps)["jpeg_mean_step"] == "unknown"
    with pytest.raises(ValueError):
        maps_for("noise", {}, unknown=("blur",))


def test_drop_unknown_never_touches_the_mask_nor_the_callers_tensor():
    _, _, maps = maps_for("mask+noise", {"mask.coverage": 0.3, "mask.size": 2, "noise.sigma": 20})
    before = maps.clone()
    dropped = drop_unknown(maps, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(maps, before)
    assert (dropped[:, :6] == 0).all() and torch.equal(dropped[:, 6], maps[:, 6])
    assert torch.equal(drop_unknown(maps, 0.0, torch.Generator()), maps)


def test_jpeg_steps_are_zero_without_quantization():
    ones = torch.ones(1, 8, 8, dtype=torch.int64)
    assert jpeg_steps(ones, ones)[0].item() == 0


@pytest.mark.parametrize("size", [(1, 1), (7, 5), (13, 21), (64, 64)])
def test_lean_unet_keeps_any_size_and_starts_at_zero(size):
    net = LeanUNet(UNetConfig(width=8, depth=2, unshuffle=2, cond_channels=CHANNELS))
    x = torch.rand(2, 3, *size)
    out = net(x, torch.rand(2), cond=torch.rand(2, CHANNELS, *size))
    assert out.shape == x.shape and (out == 0).all()  # zero-initialized output layer
    with pytest.raises(ValueError):
        net(x, torch.rand(2))  # a conditioned network needs its maps


def test_lean_unet_reads_its_condition_once_trained_a_step():
    torch.manual_seed(0)
    net = LeanUNet(UNetConfig(width=8, depth=1, unshuffle=2, cond_channels=CHANNELS))
    for p in net.parameters():  # leave the zero-initialized start: random weights everywhere
        torch.nn.init.normal_(p, std=0.1)
    x = torch.rand(1, 3, 16, 16)
    low, high = torch.zeros(1, CHANNELS, 16, 16), torch.zeros(1, CHANNELS, 16, 16)
    high[:, 0] = 1.0
    assert not torch.allclose(net(x, 1.0, cond=low), net(x, 1.0, cond=high))


def test_conditioned_irflow_identity_at_init_and_old_blind_configs_still_build():
    model = build_warmstart({"method": "irflow", "arch": "lean", "width": 8, "depth": 1, "unshuffle": 2,
                             "cond_channels": CHANNELS, "steps": 1})
    assert model.conditioned
    lq = torch.rand(1, 3, 10, 10)
    assert torch.equal(model.restore(lq, torch.Generator(), torch.zeros(1, CHANNELS, 10, 10)), lq)
    blind = build_warmstart({"method": "irflow", "width": 8, "depth": 2, "blocks": 1, "time_dim": 16})
    assert not blind.conditioned


def test_mixture_degrades_each_group_by_one_member_and_returns_maps():
    data = WarmstartDataSection(mixture=[MixtureEntry("noise", "noise", {"noise.sigma": 30}),
                                         MixtureEntry("jpeg", "jpeg", {"jpeg.quality": 20})], groups=4)
    mixture = build_degradations(data)
    hq = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    lq, cond = synthesize_mixture(hq, mixture, data.groups, torch.Generator().manual_seed(1), conditioned=True)
    assert lq.shape == hq.shape and cond.shape == (8, CHANNELS, 16, 16)
    groups = cond[:, 0, 0, 0].reshape(4, 2)
    assert (groups[:, 0] == groups[:, 1]).all()  # one member per group
    assert {round(v, 6) for v in groups[:, 0].tolist()} == {0.6, 0.0}  # sigma 30 -> 0.6; JPEG: no noise
    noisy = cond[:, 0, 0, 0] > 0
    assert (cond[noisy, 5] == 1).all() and (cond[~noisy, 2] > 0).all()  # JPEG groups carry their step
