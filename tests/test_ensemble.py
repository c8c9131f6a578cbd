"""Self-ensemble of the learned warm start (flowprior/warmstart/ensemble.py)."""

from __future__ import annotations

import pytest
import torch

from degradations import parse
from flowprior.metrics import psnr
from flowprior.warmstart import get_initializer
from flowprior.warmstart.ensemble import (
    ORDER,
    _pad_to_grid,
    ensemble_passes,
    first_orientation,
    orient,
    self_ensemble,
    unorient,
)
from tests.conftest import natural_crop


@pytest.mark.parametrize("k", ORDER)
def test_each_orientation_is_undone_and_keeps_the_jpeg_grid(k):
    x = torch.rand(1, 3, 20, 36, generator=torch.Generator().manual_seed(k))
    padded = _pad_to_grid(x)
    assert all(side % 16 == 0 for side in orient(padded, k).shape[-2:])
    assert torch.equal(unorient(orient(padded, k), k), padded)
    assert torch.equal(padded[..., :20, :36], x)


def test_an_equivariant_network_is_unchanged_and_one_orientation_is_the_network_itself():
    x = torch.rand(1, 3, 20, 36, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(self_ensemble(lambda image, _: image * 2, x, None, 8), x * 2)
    calls = []
    assert torch.equal(self_ensemble(lambda image, _: calls.append(image.shape) or image, x, None, 1), x)
    assert calls == [x.shape]  # no padding on the plain path
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        self_ensemble(lambda image, _: image, x, None, 3)


def test_eight_orientations_lower_the_error_on_a_noisy_photo():
    clean = natural_crop(96, 96)
    op = parse("noise", {"noise.sigma": 10})
    params = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(0))
    noisy = (op.apply(clean, params).clamp(0, 1) * 255).round() / 255
    single = get_initializer("irflow")(noisy, op, params)
    ensembled = get_initializer("irflow", ensemble=8)(noisy, op, params)
    assert float(psnr(clean, ensembled)) > float(psnr(clean, single)) + 0.1


def test_the_ensembles_first_pass_is_the_single_pass_the_sure_blend_probes():
    # a network that sees the padding and the orientation: a column ramp times a shift towards the bottom row
    def network(image, _):
        ramp = torch.linspace(0, 1, image.shape[-1]).expand_as(image)
        return image * ramp + torch.roll(image, 1, -2)

    x = torch.rand(1, 3, 20, 36, generator=torch.Generator().manual_seed(1))
    for count in (1, 8):
        mean, first = ensemble_passes(network, x, None, count)
        assert torch.equal(mean, self_ensemble(network, x, None, count))
        assert torch.equal(first, first_orientation(network, x, None, count))
    assert not torch.allclose(first, network(x, None))  # padded: the cropped pass differs near the edges


def test_the_sure_blend_runs_the_network_once_more_than_the_ensemble(monkeypatch):
    clean = natural_crop(64, 64)
    op = parse("noise", {"noise.sigma": 5})
    params = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(0))
    noisy = (op.apply(clean, params).clamp(0, 1) * 255).round() / 255
    initializer = get_initializer("irflow", ensemble=8)
    calls, network = [], type(initializer)._network

    def counting(self, model, *args):
        monkeypatch.setattr(model, "restore", lambda *a, restore=model.restore: calls.append(1) or restore(*a))
        return network(self, model, *args)

    monkeypatch.setattr(type(initializer), "_network", counting)
    initializer(noisy, op, params)
    assert len(calls) == 9 and initializer.last_shrink  # eight orientations + one probe; the blend ran
