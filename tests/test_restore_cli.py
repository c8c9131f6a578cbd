"""flowprior restore end to end: files in, files out, sidecar, masks, the embedded-model guard, errors."""

from __future__ import annotations

import json

import pytest
import torch

from flowprior import io
from flowprior.cli import main
from flowprior.prior.checkpoint import save_checkpoint
from flowprior.recipe import find_recipe
from flowprior.restoration import RestoreRecipe, build_recipe, restore_tensor, split_settings, with_total_steps
from tests.test_solver import tiny_prior


@pytest.fixture
def model(tmp_path):
    prior = tiny_prior(patch=32, levels=2)
    save_checkpoint(tmp_path / "tiny.pt", prior.config_dict(), prior.state_dict())
    return tmp_path / "tiny.pt"


@pytest.fixture
def degraded(tmp_path, make_natural_image):
    clean = make_natural_image(45, 70)
    path = io.write_image(tmp_path / "in.png", clean)
    mask = torch.ones(1, 1, 45, 70)
    mask[..., 10:20, 30:40] = 0
    io.write_image(tmp_path / "mask.png", mask)
    return path, tmp_path / "mask.png"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_restore_writes_image_and_sidecar(tmp_path, model, degraded, capsys):
    source, mask = degraded
    out = tmp_path / "out.png"
    code, stdout, stderr = run(capsys, "restore", source, "-o", out, "-d", "jpeg+noise+mask", "--mask", mask,
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
    import flowprior.weights as weights

    monkeypatch.setitem(weights.EMBEDDED, "default", ("no-such-file.pt", None))
    source, _ = degraded
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "o.png", "-d", "noise", "--quiet")
    assert code == 2 and "not installed" in stderr


def test_an_embedded_model_with_a_wrong_sha256_is_refused(tmp_path, model, degraded, capsys, monkeypatch):
    import flowprior.weights as weights

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

    assert auto_recipe_name(spec) == name
    assert find_recipe(name, "restore").is_file()
