"""Restores never invent the random part of a degradation (issue 14 item 3).

Haze estimates its transmission and airlight from the photo (dark-channel prior); rain and snow, which cannot
estimate their layer yet, are refused with exit 2 before any work.
"""

from __future__ import annotations

import pytest
import torch

from degradations import parse
from degradations.functional.dehaze import estimate_airlight, estimate_transmission, remove_haze
from flowprior.errors import UsageError
from flowprior.metrics import psnr
from flowprior.restoration import RestoreRecipe, restore_tensor
from tests.cli_helpers import run, save_tiny_prior
from tests.conftest import natural_crop


def hazy_astronaut(seed: int = 3, size: int = 128, top: int = 200, left: int = 40
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(clean, hazy) astronaut crop, the haze drawn from ``seed`` and stored at 8 bits."""
    clean = natural_crop(size, size, top=top, left=left)
    op = parse("haze(beta=1.2,airlight=0.85)")
    hazy = op.apply(clean, op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed)))
    return clean, (hazy.clamp(0, 1) * 255).round() / 255


def test_dark_channel_prior_removes_most_of_the_haze():
    clean, hazy = hazy_astronaut()
    airlight = estimate_airlight(hazy.double())
    assert abs(float(airlight) - 0.85) < 0.15
    dehazed = remove_haze(hazy.double(), estimate_transmission(hazy, airlight), airlight).float()
    assert float(psnr(clean, dehazed)) > float(psnr(clean, hazy)) + 4.0


def test_haze_restore_models_the_photos_haze_not_the_seeds():
    """The old path drew the depth from the restore seed: the output swung with it and could fall below input."""
    clean, hazy = hazy_astronaut(size=64)
    outputs = []
    for seed in (0, 11):
        recipe = RestoreRecipe(degradation="haze", seed=seed, init="identity")
        recipe.solver.steps_per_stage, recipe.solver.final_steps = 0, 0
        outputs.append(restore_tensor(hazy, recipe).image)
    assert torch.equal(outputs[0], outputs[1])
    assert float(psnr(clean, outputs[0])) > float(psnr(clean, hazy)) + 3.0


def test_a_bright_pale_scene_is_not_dehazed_below_its_input():
    """The pale background above the astronaut has a bright dark channel of its own: removing 0.95 of what the
    prior reads as haze (He et al.'s fraction) darkens it below the hazy input (18.5 -> 15.9 dB); the default
    fraction (``HAZE_FRACTION``, chosen on validation photos) gains on it, in the restore's warm start too."""
    clean, hazy = hazy_astronaut(top=0, left=256)
    airlight = estimate_airlight(hazy.double())
    full = remove_haze(hazy.double(), estimate_transmission(hazy, airlight, omega=0.95), airlight).float()
    assert float(psnr(clean, full)) < float(psnr(clean, hazy)) - 1.0  # the case the fraction guards against
    recipe = RestoreRecipe(degradation="haze", seed=0, init="identity")
    recipe.solver.steps_per_stage, recipe.solver.final_steps = 0, 0
    assert float(psnr(clean, restore_tensor(hazy, recipe).image)) > float(psnr(clean, hazy)) + 3.0


def test_chain_names_each_members_realization():
    chain = parse("mask+haze+rain")
    assert chain.realization == ("haze.depth", "rain.layer")
    assert chain.unestimable() == ("rain.layer",)  # haze estimates its depth, rain cannot
    params = chain.sample_params((1, 3, 16, 16), torch.Generator().manual_seed(0))
    with pytest.raises(NotImplementedError, match="rain"):
        chain.estimate_params(torch.full((1, 3, 16, 16), 0.5), params)


@pytest.mark.parametrize("spec", ["rain", "snow", "noise+rain"])
def test_rain_and_snow_are_refused_before_any_work(spec):
    with pytest.raises(UsageError, match="cannot estimate"):
        restore_tensor(torch.full((1, 3, 32, 32), 0.5), RestoreRecipe(degradation=spec))


def test_cli_refuses_rain_with_exit_2(tmp_path, capsys):
    from flowprior.io import write_image

    source = tmp_path / "rainy.png"
    write_image(source, natural_crop(32, 32))
    code, _, err = run(capsys, "restore", source, "-o", tmp_path / "out.png", "--degradation", "rain",
                       "--model", save_tiny_prior(tmp_path))
    assert code == 2
    assert "cannot estimate the rain.layer" in err
    assert not (tmp_path / "out.png").exists()
