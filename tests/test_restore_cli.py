"""flowprior restore end to end: files in, files out, sidecar, masks, the embedded-model guard, errors."""

from __future__ import annotations

import json

import pytest
import torch

from flowprior import io
from flowprior.errors import UsageError
from flowprior.prior.checkpoint import save_checkpoint
from flowprior.recipe import find_recipe
from flowprior.restoration import (
    RestoreRecipe,
    build_recipe,
    restore_tensor,
    split_settings,
    with_total_steps,
)
from tests.cli_helpers import run, save_tiny_prior
from tests.test_solver import tiny_prior


@pytest.fixture
def model(tmp_path):
    return save_tiny_prior(tmp_path)


@pytest.fixture
def degraded(tmp_path, make_natural_image):
    clean = make_natural_image(45, 70)
    path = io.write_image(tmp_path / "in.png", clean)
    mask = torch.ones(1, 1, 45, 70)
    mask[..., 10:20, 30:40] = 0
    io.write_image(tmp_path / "mask.png", mask)
    return path, tmp_path / "mask.png"


def test_restore_writes_image_and_sidecar(tmp_path, model, degraded, capsys):
    source, mask = degraded
    out = tmp_path / "out.png"
    code, _, stderr = run(capsys, "restore", source, "-o", out, "-d", "jpeg+noise+mask", "--mask", mask,
                               "--set", "jpeg.quality=30", "--set", "noise.sigma=5", "--set", "solver.weight=77",
                               "--steps", "6", "--model", model, "--quiet")
    assert code == 0, stderr
    restored = io.read_image(out)
    assert restored.pixels.shape == (1, 3, 45, 70) and restored.bit_depth == 8
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert sidecar["recipe"]["solver"]["weight"] == 77.0
    assert sidecar["params"]["jpeg.quality"] == [30]
    assert sum(stage["steps"] for stage in sidecar["stage_energies"]) == 6
    assert sidecar["input"]["sha256"] != sidecar["output"]["sha256"]
    assert sidecar["mask"]["path"] == str(mask) and len(sidecar["model"]["sha256"]) == 64


def test_restore_refuses_to_overwrite_its_input(model, degraded, capsys):
    source, _ = degraded
    before = source.read_bytes()
    code, _, stderr = run(capsys, "restore", source, "-o", source, "-d", "noise", "--model", model, "--quiet")
    assert code == 2 and "refusing to write over the input" in stderr
    assert source.read_bytes() == before


@pytest.mark.parametrize("argv,expected", [
    (["-d", "noise+mask"], "--mask"),
    (["-d", "noize"], "valid names"),
    (["-d", "noise", "--set", "solver.weight=heavy"], "solver.weight: expected a number"),
    (["-d", "noise", "--set", "solver.wieght=3"], "unknown recipe key solver.wieght"),
    (["-d", "noise", "--recipe", "nonexistent"], "recipe not found"),
])
def test_restore_user_errors_are_one_line(tmp_path, model, degraded, capsys, argv, expected):
    source, _ = degraded
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "o.png", "--model", model, "--quiet", *argv)
    assert code == 2, stderr
    assert expected in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_a_missing_embedded_model_is_reported_clearly(tmp_path, degraded, capsys, monkeypatch):
    from flowprior import weights

    monkeypatch.setitem(weights.EMBEDDED, "default", ("no-such-file.pt", None))
    source, _ = degraded
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "o.png", "-d", "noise", "--quiet")
    assert code == 2 and "not installed" in stderr


def test_an_embedded_model_with_a_wrong_sha256_is_refused(tmp_path, model, degraded, capsys, monkeypatch):
    from flowprior import weights

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(weights.EMBEDDED, "default", ("tiny.pt", "0" * 64))
    source, _ = degraded
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "o.png", "-d", "noise", "--quiet")
    assert code == 2 and "sha256" in stderr


def test_settings_split_between_recipe_and_operator():
    recipe, operator = split_settings({"solver.weight": 3, "jpeg.quality": 30, "tiling.overlap": 16, "seed": 2})
    assert recipe == {"solver.weight": 3, "tiling.overlap": 16, "seed": 2} and operator == {"jpeg.quality": 30}


def test_total_steps_keep_the_paper_proportions():
    recipe = with_total_steps(RestoreRecipe(), 250, num_levels=3)
    assert (recipe.solver.steps_per_stage, recipe.solver.final_steps) == (50, 150)


def test_shipped_restore_recipes_are_found_by_name():
    for name in ("default", "paper"):
        recipe = build_recipe(find_recipe(name, "restore"), {}, {})
        assert isinstance(recipe, RestoreRecipe)
    assert build_recipe(find_recipe("paper", "restore"), {}, {}).solver.lr == 1.0


def test_several_images_restore_as_one_batch_like_one_at_a_time(make_natural_image):
    prior = tiny_prior(patch=32, levels=2)
    images = torch.cat([make_natural_image(40, 40, top=0), make_natural_image(40, 40, top=100)])
    recipe = build_recipe(None, {"degradation": "noise", "solver.steps_per_stage": 2, "solver.final_steps": 2},
                          {"noise.sigma": 5})
    together = restore_tensor(images, recipe, prior=prior).image
    alone = restore_tensor(images[1:], recipe, prior=prior).image
    assert torch.allclose(together[1:], alone, atol=1e-5)


@pytest.mark.parametrize("spec,name", [("noise", "noise"), ("jpeg(quality=10)", "jpeg"), ("mask", "inpaint"),
                                       ("jpeg+noise+mask", "default"), ("noise+noise", "noise")])
def test_auto_recipe_follows_the_degradation(spec, name):
    from flowprior.restoration import auto_recipe_name

    assert auto_recipe_name(spec, warm_start=False) == name
    assert auto_recipe_name(spec, init="identity") == name  # a cold start asked for: the cold recipe
    assert find_recipe(name, "restore").is_file()


@pytest.mark.parametrize("spec,fast", [("noise", True), ("jpeg+noise+mask", True), ("blur", False),
                                       ("jpeg+blur", False)])
def test_auto_takes_the_fast_recipe_only_for_what_the_warm_start_learned(spec, fast, monkeypatch):
    from flowprior import weights
    from flowprior.restoration import auto_recipe_name

    monkeypatch.setitem(weights.EMBEDDED, "warmstart-irflow", ("warmstart-irflow.pt", None))
    assert (auto_recipe_name(spec) == "fast") == fast
    assert (auto_recipe_name(spec, init="resflow") == "fast") == fast
    monkeypatch.delitem(weights.EMBEDDED, "warmstart-irflow")
    assert auto_recipe_name(spec) != "fast"  # nothing embedded: never the fast recipe


def _whole_image_restore(y, recipe, prior):
    """What restore_tensor did before it streamed: all tiles cut from the whole image and its warm start, solved
    ``max_tiles`` at a time, merged at once."""
    from flowprior import tiling
    from flowprior.restoration import _build_operator, initial_latents, make_initializer
    from flowprior.solver import Energy, LatentMAPSolver
    from tests.tiling_reference import merge, split, split_params

    op, params = _build_operator(recipe, tuple(y.shape), None)
    x0 = make_initializer(recipe)(y, op, params)
    grid = tiling.make_grid(*y.shape[-2:], tile=prior.patch_size, overlap=recipe.tiling.overlap, align=op.block_size())
    y_tiles, x0_tiles, tile_params = split(y, grid), split(x0, grid), split_params(params, grid, 1)
    outputs = []
    for rows in tiling.iter_chunks(grid.num_tiles, recipe.tiling.max_tiles or grid.num_tiles):
        chunk = {k: v[rows.start : rows.stop] for k, v in tile_params.items()}
        energy = Energy(observed=y_tiles[rows.start : rows.stop], mask=None,
                        forward=lambda x, p=chunk: op.forward_model(x, p), weight=recipe.solver.weight,
                        prior_term=recipe.solver.prior_term)
        latents = initial_latents(prior, x0_tiles[rows.start : rows.stop], recipe.solver.init_latent)
        outputs.append(LatentMAPSolver(prior).solve(energy, latents, recipe.stages(prior.num_levels)).image)
    return merge(torch.cat(outputs), grid, batch=1).clamp(0, 1)


@pytest.mark.parametrize("spec,params", [("noise", {"noise.sigma": 5}), ("jpeg+noise", {"jpeg.quality": 30})])
def test_a_streamed_restore_is_bit_identical_to_the_whole_image_one(tmp_path, make_natural_image, spec, params):
    from flowprior.restoration import ImageRows, restore_rows
    from flowprior.restore_file import restore_file

    prior = tiny_prior(patch=32, levels=2)  # 32-px tiles, stride 24: 6 x 9 = 54 tiles on 150 x 210
    settings = {"degradation": spec, "solver.steps_per_stage": 2, "solver.final_steps": 3, "tiling.max_tiles": 7}
    recipe = build_recipe(None, settings, params)
    y = make_natural_image(150, 210)
    reference = _whole_image_restore(y, recipe, prior)

    reads, out = [], torch.full_like(y, float("nan"))

    def read(b, y0, y1):
        reads.append((y0, y1))
        return y[..., y0:y1, :]

    def emit(b, y0, y1, rows):
        out[..., y0:y1, :] = rows

    info = restore_rows(ImageRows(1, 3, 150, 210, read), recipe, prior=prior, emit=emit)
    assert info["tiles"]["streamed"] and torch.equal(out, reference)
    assert max(y1 - y0 for y0, y1 in reads) <= 24 + 32  # 7 tiles span two tile rows: never the whole image

    # The same through files: rows decoded from the PNG's samples, quantized into the output array, PNG streamed.
    source = io.write_image(tmp_path / "in.png", y)
    save_checkpoint(tmp_path / "tiny.pt", prior.config_dict(), prior.state_dict())
    restore_file(source, tmp_path / "streamed.png", model=str(tmp_path / "tiny.pt"), degradation=spec,
                 operator_params=params, settings={k: v for k, v in settings.items() if k != "degradation"},
                 chroma="restore", progress=False)
    whole = _whole_image_restore(io.read_image(source).pixels, recipe, prior)
    io.write_image(tmp_path / "whole.png", whole)
    assert (tmp_path / "streamed.png").read_bytes() == (tmp_path / "whole.png").read_bytes()


def test_a_gray_prior_restores_gray_images_in_one_channel_and_refuses_colour(make_natural_image):
    from flowprior.prior.glow import Glow, GlowConfig

    prior = Glow(GlowConfig(in_channels=1, levels=2, steps=1, width=8, patch_size=16))
    prior.initialize(torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    prior.eval().requires_grad_(False)
    clean = make_natural_image(24, 40, channels=1)
    recipe = build_recipe(None, {"degradation": "noise", "solver.steps_per_stage": 2, "solver.final_steps": 4},
                          {"noise.sigma": 10})
    y = (clean + 0.04 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    out = restore_tensor(y, recipe, prior=prior).image
    assert out.shape == clean.shape and torch.isfinite(out).all()
    assert float((out - y).abs().max()) > 1e-4  # the solver ran in the prior's one channel
    with pytest.raises(UsageError, match="gray"):
        restore_tensor(make_natural_image(24, 40), recipe, prior=prior)
