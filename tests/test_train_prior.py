import json

import pytest
import torch
import torch.nn.functional as F

from flowprior.prior.checkpoint import load_prior, read_checkpoint
from flowprior.prior.glow import Glow, GlowConfig
from flowprior.recipe import load_recipe
from flowprior.train_prior import (
    LossSection,
    OptimSection,
    PriorTrainRecipe,
    learning_rate,
    prior_loss_terms,
    train_prior,
)
from flowprior.training import guarded_step


class FixedPatches:
    """A tiny fixed data set: smooth random fields, drawn from in a fixed order by the generator."""

    def __init__(self, count=16, size=16, seed=0):
        coarse = torch.rand(count, 3, size // 4, size // 4, generator=torch.Generator().manual_seed(seed))
        self.images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)

    def sample(self, batch, generator):
        index = torch.randint(0, len(self.images), (batch,), generator=generator)
        return self.images[index]


TERMS = {  # term -> loss weights that train it (alone, so the test says which term is broken)
    "bpd": {"nll": 1.0, "latent_noise": 0.0, "autoencoder": 0.0, "image_noise": 0.0},
    "ln": {"nll": 0.0, "latent_noise": 100.0, "autoencoder": 0.0, "image_noise": 0.0},
    "ae": {"nll": 0.0, "latent_noise": 0.0, "autoencoder": 1.0, "image_noise": 0.0},
    "in": {"nll": 0.0, "latent_noise": 0.0, "autoencoder": 0.0, "image_noise": 100.0},
}


@pytest.mark.parametrize("term", TERMS)
def test_every_loss_term_decreases_over_50_steps(term):
    torch.manual_seed(0)
    prior = Glow(GlowConfig(levels=2, steps=2, width=16, patch_size=16))
    data = FixedPatches()
    prior.initialize(data.images)
    losses = LossSection(**TERMS[term])

    def evaluate() -> float:  # the same random draws before and after training
        return float(prior_loss_terms(prior, data.images, losses, torch.Generator().manual_seed(5))[term].detach())

    before = evaluate()
    optimizer = torch.optim.Adam(prior.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(1)
    for _ in range(50):
        terms = prior_loss_terms(prior, data.images, losses, generator)
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.9 * before, (term, before, after)


def test_training_run_writes_resumable_self_describing_checkpoints(tmp_path):
    recipe = load_recipe(PriorTrainRecipe, None, {
        "model.levels": 2, "model.steps": 1, "model.width": 8, "model.patch_size": 16,
        "optim.batch_size": 4, "optim.steps": 6, "optim.init_batch": 8, "optim.checkpoint_every": 3,
        "optim.val_every": 3, "optim.val_patches": 4, "optim.warmup_steps": 2, "output": str(tmp_path),
    })
    sources = (FixedPatches(), FixedPatches(seed=9))
    first = train_prior(recipe, progress=False, sources=sources)
    assert first["step"] == 6 and first["skipped"] == 0
    payload = read_checkpoint(tmp_path / "last.pt")
    assert payload["config"]["levels"] == 2 and "optimizer" in payload
    recipe.optim.steps = 9
    resumed = train_prior(recipe, resume=True, progress=False, sources=sources)
    assert resumed["step"] == 9
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert any("val_bpd" in row for row in log)
    prior = load_prior(tmp_path / "prior.pt")
    assert prior.config.levels == 2 and not prior.training


def test_init_from_starts_from_the_given_weights_with_a_fresh_optimizer(tmp_path):
    small = {"model.levels": 2, "model.steps": 1, "model.width": 8, "model.patch_size": 16,
             "optim.batch_size": 4, "optim.init_batch": 8, "optim.val_patches": 4, "optim.warmup_steps": 2}
    sources = (FixedPatches(), FixedPatches(seed=9))
    train_prior(load_recipe(PriorTrainRecipe, None, {**small, "optim.steps": 3, "output": str(tmp_path / "a")}),
                progress=False, sources=sources)
    start = read_checkpoint(tmp_path / "a" / "prior.pt")
    recipe = load_recipe(PriorTrainRecipe, None, {**small, "optim.steps": 0, "output": str(tmp_path / "b"),
                                                  "optim.init_from": str(tmp_path / "a" / "prior.pt")})
    state = train_prior(recipe, progress=False, sources=sources)
    after = read_checkpoint(tmp_path / "b" / "prior.pt")
    assert all(torch.equal(start["state_dict"][k], after["state_dict"][k]) for k in start["state_dict"])
    assert state["step"] == 0 and state["init_from"]["train_state"]["step"] == 3
    recipe.model.width = 16  # another architecture must be refused, not silently half-loaded
    recipe.output = str(tmp_path / "c")
    with pytest.raises(ValueError, match="different architecture"):
        train_prior(recipe, progress=False, sources=sources)


def test_learning_rate_warms_up_then_follows_the_cosine():
    optim = OptimSection(lr=1e-3, warmup_steps=10, steps=110, lr_schedule="cosine", min_lr=1e-4)
    assert learning_rate(optim, 0) == pytest.approx(1e-4)  # (0 + 1) / 10 of the cosine's start
    assert learning_rate(optim, 10) == pytest.approx(1e-3)
    assert learning_rate(optim, 60) == pytest.approx(1e-4 + 0.5 * 9e-4)  # half way: the mean
    assert learning_rate(optim, 110) == pytest.approx(1e-4)
    assert learning_rate(OptimSection(lr=1e-3, warmup_steps=10), 500) == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="lr_schedule"):
        learning_rate(OptimSection(lr_schedule="step"), 0)


def test_guarded_step_skips_non_finite_losses_and_stops_a_diverged_run():
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    state = {"step": 0, "skipped": 0}
    assert guarded_step([weight], optimizer, (weight * float("nan")).sum(), 1.0, state) is None
    assert state == {"step": 0, "skipped": 1, "consecutive_skips": 1} and torch.equal(weight, torch.ones(3))
    assert guarded_step([weight], optimizer, (weight * 2).sum(), 1.0, state) == pytest.approx(2 * 3 ** 0.5)
    assert state["step"] == 1 and state["consecutive_skips"] == 0 and weight[0] < 1
    with pytest.raises(FloatingPointError, match="consecutive"):
        for _ in range(60):
            guarded_step([weight], optimizer, torch.tensor(float("inf")), 1.0, state)


def test_recipe_overrides_are_checked():
    with pytest.raises(ValueError, match="model.widht"):
        load_recipe(PriorTrainRecipe, None, {"model.widht": 3})
    with pytest.raises(ValueError, match="optim.batch_size: expected an integer"):
        load_recipe(PriorTrainRecipe, None, ["optim.batch_size=big"])
    recipe = load_recipe(PriorTrainRecipe, None, ["optim.lr=3e-4", "loss.image_noise=100"])
    assert recipe.optim.lr == 3e-4 and recipe.loss.image_noise == 100.0


@pytest.mark.parametrize("name", ["cpu-default", "div2k", "sprites-like", "mnist"])
def test_shipped_training_recipes_load(name):
    from pathlib import Path

    recipe = load_recipe(PriorTrainRecipe, Path("recipes/train") / f"{name}.yaml")
    assert recipe.model.patch_size % 2**recipe.model.levels == 0


def test_train_prior_command_runs_from_a_photo_folder(tmp_path, make_natural_image, capsys):
    from flowprior import io
    from flowprior.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        io.write_image(photos / f"p{i}.png", make_natural_image(80, 96, top=40 * i))
    argv = ["train", "prior", "--recipe", "cpu-default", "--quiet", "--set", f"data.root={photos}",
            "--set", f"output={tmp_path / 'run'}"]
    for item in ["model.width=8", "model.steps=1", "optim.steps=2", "optim.batch_size=2", "optim.init_batch=4",
                 "optim.val_patches=2", "optim.threads=1"]:
        argv += ["--set", item]
    assert main(argv) == 0, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["step"] == 2 and summary["val_bpd"] > 0
    assert (tmp_path / "run" / "prior.pt").is_file() and (tmp_path / "run" / "best.pt").is_file()
