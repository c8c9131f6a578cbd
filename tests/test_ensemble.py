"""Self-ensemble of the learned warm start (flowprior/warmstart/ensemble.py)."""

from __future__ import annotations

import pytest
import torch

from degradations import parse
from flowprior.metrics import psnr
from flowprior.warmstart import get_initializer
from flowprior.warmstart.ensemble import ORDER, _pad_to_grid, orient, self_ensemble, unorient
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
