"""Starting a warm start from another one's trained network (flowprior/warmstart/transplant.py): ResFlow and
FlowIE from IR-Flow, a wider network from a narrower one, and the run that records where it started."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from flowprior.errors import UsageError
from flowprior.prior.checkpoint import read_checkpoint
from flowprior.train_warmstart import WarmstartTrainRecipe, train_warmstart
from flowprior.warmstart import build_warmstart, save_warmstart
from flowprior.warmstart.leannet import LeanUNet
from flowprior.warmstart.transplant import transplant
from flowprior.warmstart.unet import UNetConfig
from tests.conftest import natural_crop
from tests.flow_checks import randomize

LEAN = {"arch": "lean", "width": 8, "depth": 1, "unshuffle": 2, "top_width": 4, "cond_channels": 7}
IRFLOW = {"method": "irflow", **LEAN, "steps": 1, "t1_fraction": 1.0, "consistency_weight": 0.0}


def _trained_irflow():
    """A small IR-Flow whose every weight is nonzero (a fresh one's output layers are zero)."""
    torch.manual_seed(0)
    model = build_warmstart(IRFLOW)
    randomize(model, scale=0.2)
    return model


def _photo_and_maps(height: int = 24, width: int = 40):
    photo = natural_crop(height, width)
    maps = torch.rand((1, 7, height, width), generator=torch.Generator().manual_seed(1))
    return photo, maps


def test_resflow_from_irflow_moves_x_exactly_as_irflow_at_t1_and_y_not_at_all():
    irflow = _trained_irflow()
    resflow = build_warmstart({"method": "resflow", **LEAN, "augmented": True})
    filled = transplant(irflow.state_dict(), resflow)
    assert len(filled) == len(irflow.state_dict())
    photo, maps = (x.double() for x in _photo_and_maps())  # float64: no kernel-choice rounding in the comparison
    irflow, resflow = irflow.double(), resflow.double()
    y = torch.randn(photo.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    with torch.no_grad():
        displacement = irflow.displacement(photo, torch.ones(1), maps)
        velocity = resflow.velocity(torch.cat([photo, y], 1), torch.ones(1), maps)
    assert displacement.abs().max() > 1e-3  # the comparison below is not 0 == 0
    torch.testing.assert_close(velocity[:, :3], displacement, rtol=0, atol=1e-10)
    assert velocity[:, 3:].abs().max() == 0  # y's velocity starts at the fresh output layer's zero


def test_flowie_with_irflow_as_its_initial_stage_returns_that_estimate_before_the_flow_trains():
    irflow = _trained_irflow()
    flowie = build_warmstart({"method": "flowie", **LEAN, "top_width": 0, "initial_fraction": 0.0,
                              "predict": "estimate", "initial_config": irflow.config_dict()})
    transplant(irflow.state_dict(), flowie, prefix="initial.")
    photo, maps = _photo_and_maps()
    noisy = (photo + 0.1 * torch.randn(photo.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    with torch.no_grad():
        expected = irflow.restore(noisy, torch.Generator(), maps).clamp(0, 1)
        for seed in (0, 1):  # the noise start drops out exactly
            got = flowie.restore(noisy, torch.Generator().manual_seed(seed), maps)
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        flowie.net.out.bias.fill_(0.1)  # a trained correction moves the estimate: the flow is wired in
        moved = flowie.restore(noisy, torch.Generator().manual_seed(0), maps)
    assert (moved - expected).abs().mean() > 0.01


def test_a_wider_network_computes_what_the_narrow_one_did():
    config = UNetConfig(width=8, depth=1, unshuffle=2, cond_channels=7)
    torch.manual_seed(0)
    narrow, wide = LeanUNet(config), LeanUNet(UNetConfig(width=12, depth=1, unshuffle=2, cond_channels=7))
    randomize(narrow, scale=0.2)
    randomize(wide, scale=0.2)  # new channels nonzero everywhere: only the cut blocks keep the old outputs
    transplant(narrow.state_dict(), wide)
    photo, maps = (x.double() for x in _photo_and_maps())
    narrow, wide = narrow.double(), wide.double()
    with torch.no_grad():
        torch.testing.assert_close(wide(photo, 0.7, cond=maps), narrow(photo, 0.7, cond=maps), rtol=0, atol=1e-10)


def test_a_smaller_or_different_network_is_refused():
    irflow = _trained_irflow()
    with pytest.raises(UsageError, match="does not fit"):
        transplant(irflow.state_dict(), build_warmstart({**IRFLOW, "width": 4}))
    with pytest.raises(UsageError, match="no parameter"):
        transplant(irflow.state_dict(), build_warmstart({**IRFLOW, "top_width": 0}))


def test_a_run_started_from_a_trained_network_records_it_and_begins_there(tmp_path):
    source = tmp_path / "irflow.pt"
    irflow = _trained_irflow()
    save_warmstart(source, irflow)
    recipe = WarmstartTrainRecipe(method="resflow", output=str(tmp_path / "run"))
    for key, value in LEAN.items():
        setattr(recipe.resflow, key, value)
    recipe.data.mixture, recipe.data.params = [], {"noise.sigma": "5:10"}
    recipe.data.degradation = "noise"
    o = recipe.optim
    o.batch_size, o.steps, o.warmup_steps, o.val_every, o.val_patches, o.threads, o.lr = 2, 1, 1, 1, 2, 1, 1e-12
    o.init_from = str(source)
    patches = natural_crop(64, 64).unfold(2, 32, 32).unfold(3, 32, 32).permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, 32, 32)
    sources = tuple(_Patches(patches) for _ in range(2))
    train_warmstart(recipe, progress=False, sources=sources)
    payload = read_checkpoint(tmp_path / "run" / "last.pt")
    started = payload["meta"]["train_state"]["init_from"]
    assert started["path"] == str(source) and started["method"] == "irflow"
    assert started["tensors"] == len(irflow.state_dict())
    stem = payload["state_dict"]["net.stem.weight"]  # lr 1e-12: still the trained weights, new inputs cut
    torch.testing.assert_close(stem[:, :40].float(), irflow.state_dict()["net.stem.weight"], rtol=0, atol=1e-3)
    assert stem[:, 40:].abs().max() < 1e-6


class _Patches:
    def __init__(self, patches):
        self.patches = patches

    def sample(self, batch, generator):
        return self.patches[torch.randint(0, len(self.patches), (batch,), generator=generator)]


def test_the_conditioned_recipes_start_from_the_embedded_irflow_and_train_on_its_data():
    from flowprior.recipe import find_recipe, load_recipe
    from flowprior.weights import embedded_path

    irflow = load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-irflow-cond", "train"))
    embedded, _ = embedded_path("warmstart-irflow")
    embedded_config = read_checkpoint(embedded)["config"]
    for name, prefix in (("warmstart-resflow-cond", ""), ("warmstart-flowie-cond", "initial.")):
        recipe = load_recipe(WarmstartTrainRecipe, find_recipe(name, "train"))
        assert recipe.data == irflow.data
        assert (recipe.optim.init_from, recipe.optim.init_prefix) == ("flowprior/weights/warmstart-irflow.pt", prefix)
        transplant(read_checkpoint(embedded)["state_dict"], recipe.build_model(), prefix)  # it fits
    assert load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-flowie-cond", "train")).flowie.initial_config \
        == embedded_config


def test_the_widened_irflow_recipe_starts_from_the_embedded_model_on_its_data():
    from flowprior.recipe import find_recipe, load_recipe

    base = load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-irflow-cond", "train"))
    wide = load_recipe(WarmstartTrainRecipe, find_recipe("warmstart-irflow-top32", "train"))
    assert wide.data == base.data and wide.irflow.top_width == 2 * base.irflow.top_width
    assert {k: v for k, v in vars(wide.irflow).items() if k != "top_width"} == \
        {k: v for k, v in vars(base.irflow).items() if k != "top_width"}
    assert wide.optim.init_from == "flowprior/weights/warmstart-irflow.pt"


@pytest.mark.parametrize("name,start,data_of,repeated", [
    ("warmstart-irflow-noise", "warmstart-irflow", "warmstart-irflow-noise", 0.0),
    ("warmstart-irflow-jpeg", "warmstart-irflow", "warmstart-irflow-jpeg", 0.0),
    ("warmstart-irflow-noise-top32", "warmstart-irflow-noise", "warmstart-irflow-noise", 0.0),
    ("warmstart-irflow-noise-repeated", "warmstart-irflow-noise", "warmstart-irflow-noise-spread", 0.25),
    ("warmstart-irflow-noise-fast", "warmstart-irflow-noise", "warmstart-irflow-noise-spread", 0.0),
])
def test_the_specialist_recipes_start_from_an_embedded_model_that_fits(name, start, data_of, repeated):
    """A specialist fine-tunes an embedded model: its weights must load into the recipe's network (same shapes, or
    widened), and the widened noise run must train on the noise specialist's own data."""
    from flowprior.recipe import find_recipe, load_recipe
    from flowprior.weights import embedded_path

    recipe = load_recipe(WarmstartTrainRecipe, find_recipe(name, "train"))
    path, _ = embedded_path(start)
    assert recipe.optim.init_from == f"flowprior/weights/{path.name}"
    base = load_recipe(WarmstartTrainRecipe, find_recipe(data_of, "train")).data
    assert recipe.data == dataclasses.replace(base, repeated=repeated)  # the periodic tilings: the one change allowed
    assert all(m.degradation.split("(")[0] in ("noise", "jpeg") for m in recipe.data.mixture)
    transplant(read_checkpoint(path)["state_dict"], recipe.build_model(), "")
