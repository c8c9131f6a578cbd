"""Issue 17 follow-up: a degradation that changes the size (``downsample``, restored by super-resolution) is planned
on its output, the clean grid, in ``--dry-run`` and in the Ray driver, with the single-file restore's plan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import flowprior.batch.dry_run as dry_run_module
from flowprior import io
from flowprior.batch import WorkItem
from flowprior.batch.memory import memory_planner, tile_count
from flowprior.batch.ray_backend import _planned
from flowprior.restoration import RestoreRecipe, load_model
from tests.cli_helpers import run, save_tiny_prior
from tests.conftest import natural_crop

SUPER_RESOLUTION = ["-d", "downsample", "--set", "downsample.factor=2", "--steps", "4"]


@pytest.fixture
def model(tmp_path):
    return save_tiny_prior(tmp_path)


def recording(planner, sizes: list):
    """``planner`` that also notes the (height, width) it was asked to plan."""
    def record(height, width, *args, **kwargs):
        sizes.append((height, width))
        return planner(height, width, *args, **kwargs)

    record.default, record.budget = planner.default, planner.budget
    return record


def test_dry_run_plans_a_super_resolution_on_its_output_grid(tmp_path, model, capsys, monkeypatch):
    (tmp_path / "in").mkdir()
    io.write_image(tmp_path / "in" / "small.png", natural_crop(40, 40))
    sizes: list = []
    monkeypatch.setattr(dry_run_module, "memory_planner", lambda *a: recording(memory_planner(*a), sizes))
    code, stdout, stderr = run(capsys, "restore", tmp_path / "in", "-o", tmp_path / "out", "--model", model,
                               *SUPER_RESOLUTION, "--dry-run", "--progress", "json", "--max-memory", "8GiB")
    assert code == 0, stderr
    row = json.loads(stdout.splitlines()[0])
    assert row["size"] == [40, 40] and row["output_size"] == [80, 80]
    assert sizes == [(80, 80)]  # the memory plan: the 80 x 80 output's buffers and tiles, not the 40 x 40 header's
    recipe = RestoreRecipe(degradation="downsample", params={"downsample.factor": 2})
    patch = load_model(str(model)).patch_size
    assert row["tiles"] == tile_count(80, 80, recipe, patch) > tile_count(40, 40, recipe, patch)


def test_the_ray_driver_plans_a_super_resolution_on_its_output_grid(tmp_path, model):
    (tmp_path / "in").mkdir()
    io.write_image(tmp_path / "in" / "small.png", natural_crop(40, 40))
    item = WorkItem(tmp_path / "in" / "small.png", Path("small.png"), tmp_path / "out" / "small.png", "restore")
    recipe = RestoreRecipe(degradation="downsample", params={"downsample.factor": 2})
    recipe.solver.steps_per_stage, recipe.solver.final_steps = 1, 1
    sizes: list = []
    planned, kwargs = _planned(item, recipe, load_model(str(model)), recording(memory_planner(), sizes),
                               {"compare": False})
    assert sizes == [(80, 80)] and kwargs["keep_tiling"] and planned.tiling.max_tiles >= 1
