"""Periodic tilings for training (flowprior.repeated_patches)."""

from __future__ import annotations

import pytest
import torch

from flowprior.repeated_patches import repeat_some, tile_periodically
from flowprior.train_warmstart import WarmstartDataSection, WarmstartTrainRecipe


def test_a_tiling_repeats_its_tile_with_the_drawn_period_and_phase():
    patch = torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(0))
    tiled = tile_periodically(patch, 7, 11, top=5, left=9, phase_y=3, phase_x=4)
    assert tiled.shape == patch.shape
    assert torch.equal(tiled[:, :-7], tiled[:, 7:]) and torch.equal(tiled[..., :-11], tiled[..., 11:])
    assert torch.equal(tiled[:, 0, 0], patch[:, 5 + 3, 9 + 4])


def test_the_share_of_tiled_patches_follows_the_setting_and_the_input_is_kept():
    hq = torch.rand(400, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    before = hq.clone()
    out = repeat_some(hq, 0.25, torch.Generator().manual_seed(2))
    changed = (out != hq).flatten(1).any(1).float().mean()
    assert 0.18 < float(changed) < 0.32
    assert torch.equal(hq, before)
    assert repeat_some(hq, 0.0, torch.Generator()) is hq  # off: no draw, the run's random stream is unchanged


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="data.repeated"):
        WarmstartTrainRecipe(data=WarmstartDataSection(repeated=1.5))
