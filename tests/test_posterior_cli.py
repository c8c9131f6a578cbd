"""Issue 16, use: ``flowprior restore --samples N`` (and ``--save-samples``, ``--compare``, folders, the memory plan,
the Python API) on small astronaut crops with the tiny prior and a few steps, so that each run takes seconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flowprior import io
from flowprior.errors import UsageError
from flowprior.recipe import from_dict
from tests.cli_helpers import run, save_tiny_prior
from tests.conftest import natural_crop

SCALE = 131070  # the std map's documented scale: std = value / 131070
FEW = ["--steps", "4", "--quiet", "--init", "identity", "--set", "posterior.burn_in=3", "--set", "posterior.probes=1"]
#: holes with the observed pixels pinned hard (λ 10⁴): what is uncertain is what the holes hide
HOLES = ["-d", "mask", "--set", "solver.weight=10000", *FEW]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def std_of(path: Path) -> torch.Tensor:
    """The std map's values, as the sidecar says to read them (16-bit samples / 131070)."""
    image = io.read_image(path)
    assert image.bit_depth == 16
    return io.read_image(path).pixels.double() * 65535 / SCALE


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    with torch.random.fork_rng():  # a fixed tiny prior, whatever ran before
        torch.manual_seed(0)
        return save_tiny_prior(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="module")
def holes(tmp_path_factory, model):
    """One restore of a 48x48 crop with a hole: --samples 3 --save-samples --compare, the posterior mean written."""
    root = tmp_path_factory.mktemp("holes")
    mask = torch.ones(1, 1, 48, 48)
    mask[..., 12:30, 14:34] = 0
    source = io.write_image(root / "in.png", natural_crop(48, 48) * mask)
    io.write_image(root / "mask.png", mask)
    out = root / "out.png"
    code = _restore(source, out, model, "--mask", root / "mask.png", *HOLES, "--samples", "3", "--save-samples",
                    "--compare", "--set", "posterior.output=mean")
    assert code == 0
    return {"root": root, "source": source, "mask": mask, "out": out,
            "sidecar": json.loads((root / "out.png.json").read_text())}


def _restore(source, out, model, *argv) -> int:
    from flowprior.cli import main

    return main(["restore", str(source), "-o", str(out), "--model", str(model), *map(str, argv)])


def test_the_std_map_is_the_samplers_std_at_the_scale_the_sidecar_records(tmp_path, model, capsys):
    # a noise-only restore streams: 3 tile rows, one tile's chains at a time, read a band at a time
    from flowprior.pipeline.recipe import RestoreRecipe, load_model
    from flowprior.posterior import sample_restoration

    source = io.write_image(tmp_path / "in.png", natural_crop(72, 48))
    out = tmp_path / "out.png"
    code, stdout, stderr = run(capsys, "restore", source, "-o", out, "--model", model, "-d", "noise", "--set",
                               "noise.sigma=10", "--set", "tiling.max_tiles=2", *FEW, "--samples", "2")
    assert code == 0, stderr
    assert str(tmp_path / "out.std.png") in stdout
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert sidecar["tiles"]["streamed"] and sidecar["recipe"]["tiling"]["max_tiles"] == 2
    record = sidecar["posterior"]["std"]
    assert record["scale"] == SCALE and "131070" in record["meaning"] and record["bit_depth"] == 16
    assert record["sha256"] == digest(tmp_path / "out.std.png") and sidecar["posterior"]["saved_samples"] is None
    # the same numbers from the library: the recorded recipe, its seed, the MAP it restores from the same pixels
    recipe = from_dict(RestoreRecipe, sidecar["recipe"])
    expected = sample_restoration(io.read_image(source).pixels, recipe, None, load_model(str(model)),
                                  generator=torch.Generator().manual_seed(recipe.posterior.seed))
    written = io.read_image(tmp_path / "out.std.png").pixels.double() * 65535
    assert float(expected.std.max()) > 1e-3  # a map with something in it
    assert (written - (expected.std.double() * SCALE).round()).abs().max() <= 1
    assert io.read_image(out).pixels.shape == (1, 3, 72, 48)


def test_the_std_is_larger_inside_the_hole_than_outside(holes):
    std = std_of(holes["out"].with_name("out.std.png")).mean(1)[0]
    hole = holes["mask"][0, 0] < 0.5
    assert std[hole].mean() > 3 * std[~hole].mean(), (float(std[hole].mean()), float(std[~hole].mean()))


def test_save_samples_writes_n_files_and_the_mean_output_is_their_average(holes):
    root, sidecar = holes["root"], holes["sidecar"]
    names = sorted(p.name for p in root.iterdir() if ".sample-" in p.name)
    assert names == ["out.sample-00.png", "out.sample-01.png", "out.sample-02.png"]
    assert [Path(s["path"]).name for s in sidecar["posterior"]["saved_samples"]] == names
    samples = torch.cat([io.read_image(root / name).pixels for name in names])
    assert not torch.equal(samples[0], samples[1]) and not torch.equal(samples[1], samples[2])
    # posterior.output=mean: the restoration is the samples' mean (blending is linear), up to 8-bit rounding
    assert sidecar["posterior"]["output"] == "mean"
    restored = io.read_image(holes["out"]).pixels
    assert (restored - samples.mean(0, keepdim=True)).abs().max() <= 1 / 255 + 1e-6
    hole = holes["mask"].expand_as(restored) < 0.5
    assert (samples[0] - restored)[hole].abs().mean() > 5 / 255  # the samples do differ where it is unsure


def test_compare_has_the_std_map_as_one_more_panel(holes):
    review = io.read_image(holes["out"].with_name("out.compare.png")).pixels
    assert review.shape == (1, 3, 48, 3 * 48 + 2 * 8)  # input | restoration | std, two dividers
    panel = review[..., 2 * (48 + 8):]
    std = std_of(holes["out"].with_name("out.std.png")).mean(1, keepdim=True)
    expected = ((std / 0.1).clamp(0, 1) * 255).round() / 255  # the documented white = std 0.1
    assert torch.allclose(panel.double(), expected.expand_as(panel), atol=1.01 / 255)  # float32 decoding
    assert float(panel.max()) > 0.2  # the hole shows


def test_the_same_seed_gives_the_same_bytes_and_a_replay_too(tmp_path, model, capsys, holes):
    source, mask, first = holes["source"], holes["root"] / "mask.png", holes["out"]
    argv = ["--mask", mask, *HOLES, "--samples", "3", "--save-samples", "--set", "posterior.output=mean"]
    assert _restore(source, tmp_path / "again.png", model, *argv) == 0
    for suffix in (".png", ".std.png", ".sample-00.png", ".sample-02.png"):
        assert digest(tmp_path / f"again{suffix}") == digest(first.with_name(f"out{suffix}")), suffix
    assert _restore(source, tmp_path / "seed1.png", model, *argv, "--set", "posterior.seed=1") == 0
    assert digest(tmp_path / "seed1.std.png") != digest(first.with_name("out.std.png"))
    # a replay of the sidecar samples again, with the same chains
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "replay.png", "--params-from",
                          first.with_name("out.png.json"), "--quiet")
    assert code == 0, stderr
    assert digest(tmp_path / "replay.std.png") == digest(first.with_name("out.std.png"))
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "r2.png", "--params-from",
                          first.with_name("out.png.json"), "--samples", "2", "--quiet")
    assert code == 2 and "samples" in stderr


def test_an_existing_std_map_or_sample_is_refused_without_overwrite(tmp_path, model, capsys):
    source = io.write_image(tmp_path / "in.png", natural_crop(40, 40))
    noise = ["-d", "noise", "--set", "noise.sigma=5", *FEW]
    for existing in ("out.std.png", "out.sample-01.png"):
        blocker = tmp_path / existing
        blocker.write_bytes(b"not ours")
        code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "out.png", "--model", model, *noise,
                              "--samples", "2", "--save-samples")
        assert code == 2 and "refusing to replace" in stderr and existing in stderr, stderr
        assert blocker.read_bytes() == b"not ours" and not (tmp_path / "out.png").exists()
        blocker.unlink()
    (tmp_path / "out.std.png").write_bytes(b"old")
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "out.png", "--model", model, *noise,
                          "--samples", "2", "--overwrite")
    assert code == 0, stderr
    assert io.read_image(tmp_path / "out.std.png").bit_depth == 16
    # the std map is never written over an input, --overwrite or not
    plate = io.write_image(tmp_path / "plate.std.png", natural_crop(40, 40))
    before = digest(plate)
    code, _, stderr = run(capsys, "restore", plate, "-o", tmp_path / "plate.png", "--model", model, *noise,
                          "--samples", "2", "--overwrite")
    assert code == 2 and "refusing to write over the input" in stderr and digest(plate) == before
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "x.png", "--model", model, *noise,
                          "--save-samples")
    assert code == 2 and "--samples" in stderr and not (tmp_path / "x.png").exists()


def test_folder_mode_passes_samples_and_save_samples_to_each_file(tmp_path, model, capsys):
    root = tmp_path / "scans"
    root.mkdir()
    io.write_image(root / "a.png", natural_crop(40, 40))
    io.write_image(root / "b.png", natural_crop(40, 40, channels=1, top=120))
    code, _, stderr = run(capsys, "restore", root, "-o", tmp_path / "out", "--model", model, "-d", "noise",
                          "--set", "noise.sigma=5", *FEW, "--samples", "2", "--save-samples")
    assert code == 0, stderr
    for stem, channels in (("a", 3), ("b", 1)):
        sidecar = json.loads((tmp_path / "out" / f"{stem}.png.json").read_text())
        assert sidecar["posterior"]["samples"] == 2 and len(sidecar["posterior"]["saved_samples"]) == 2
        std = io.read_image(tmp_path / "out" / f"{stem}.std.png")
        assert std.pixels.shape == (1, channels, 40, 40)  # a gray scan's std is one channel
        assert (tmp_path / "out" / f"{stem}.sample-01.png").is_file()
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # no temporaries left


def test_the_memory_plan_counts_the_ensemble_and_refuses_what_cannot_fit():
    from flowprior.batch.memory import TileCost, estimate, image_buffers, plan_memory
    from flowprior.pipeline.recipe import RestoreRecipe

    recipe, cost = RestoreRecipe(degradation="noise"), TileCost(bytes_per_tile=100_000_000, seconds_per_tile_step=0.1)
    plain = image_buffers(3)
    sampled = image_buffers(3, samples=8, save_samples=True, chains=8)
    assert sampled.posterior == 6 * 3 + 8 * 3 and sampled.chains == 8
    peak = estimate(256, 256, recipe, 64, cost, 0, 2, sampled)
    assert peak["sample_bytes"] >= 8 * cost.bytes_per_tile + 256 * 256 * sampled.posterior
    assert peak["estimated_peak"] >= peak["sample_bytes"] and "sample_bytes" not in estimate(
        256, 256, recipe, 64, cost, 0, 2, plain)
    budget = 500_000_000  # four tiles, not eight chains
    assert plan_memory(256, 256, recipe, 64, cost, budget, 0, plain)["max_tiles"] >= 1
    with pytest.raises(UsageError, match="--samples"):
        plan_memory(256, 256, recipe, 64, cost, budget, 0, sampled)
    one_chain = image_buffers(3, samples=8, save_samples=False, chains=1)  # posterior.start=map
    assert plan_memory(256, 256, recipe, 64, cost, budget, 0, one_chain)["max_tiles"] >= 1


def test_an_output_kept_on_disk_gives_the_same_std_bytes(tmp_path, model):
    from flowprior.batch.memory import TileCost
    from flowprior.batch.memory import estimate as estimate_peak
    from flowprior.restore_file import restore_file

    source = io.write_image(tmp_path / "in.png", natural_crop(40, 48), bit_depth=16)

    def planner(output):
        def plan(height, width, recipe, prior, buffers):
            return estimate_peak(height, width, recipe, prior.patch_size, TileCost(1, 0.0), 0, 3, buffers,
                                 output == "disk")
        return plan

    options = {"model": str(model), "degradation": "noise", "init": "identity", "steps": 4, "progress": False,
               "samples": 2, "save_samples": True, "settings": {"posterior.burn_in": 2, "posterior.probes": 1}}
    for output in ("memory", "disk"):
        restore_file(source, tmp_path / f"{output}.png", memory_planner=planner(output), **options)
    for suffix in (".png", ".std.png", ".sample-01.png"):
        assert digest(tmp_path / f"memory{suffix}") == digest(tmp_path / f"disk{suffix}"), suffix
    assert io.read_image(tmp_path / "disk.sample-01.png").bit_depth == 16  # as the 16-bit output
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # the stores' files are gone


def test_the_python_api_returns_the_std_in_the_callers_layout(model):
    import flowprior

    mask = np.ones((40, 40), np.float32)  # float: 1 = observed (a uint8 mask would be read as 1/255)
    mask[8:24, 10:30] = 0
    image = (natural_crop(40, 40)[0].permute(1, 2, 0).numpy() * mask[..., None] * 255).round().astype(np.uint8)
    out = flowprior.restore(image, "mask", mask=mask, recipe=None, model=str(model), samples=2, keep_samples=True,
                            solver__weight=1e4, solver__final_steps=2, solver__steps_per_stage=1,
                            posterior__burn_in=3, posterior__probes=1)
    assert out.image.dtype == np.uint8 and out.image.shape == (40, 40, 3)
    assert out.std.dtype == np.float32 and out.std.shape == (40, 40, 3) and len(out.samples) == 2
    assert out.std[mask == 0].mean() > 3 * out.std[mask == 1].mean()
    with pytest.raises(UsageError, match="samples"):
        flowprior.restore(image, "mask", mask=mask, recipe=None, model=str(model), keep_samples=True)


def test_the_sampler_targets_the_maps_energy_with_the_realization_the_map_estimated():
    # a haze depth is estimated from the photo for the MAP (warm_start); the chains must use that one too, not
    # the seed's draw that binding the operator alone gives
    from flowprior.pipeline.image_rows import ImageRows
    from flowprior.pipeline.operator import bind_operator
    from flowprior.pipeline.recipe import RestoreRecipe
    from flowprior.pipeline.warm_start import warm_start
    from flowprior.posterior.sampling import _as_model_channels, _map_params
    from tests.test_solver import tiny_prior

    source = ImageRows.of(natural_crop(48, 48) * 0.6 + 0.3)
    recipe = RestoreRecipe(degradation="haze")
    bound = bind_operator(source, recipe, None, tiny_prior(patch=32))
    used = warm_start(source, recipe, bound).params
    sampled = _map_params(bound, _as_model_channels(source.read, bound.channels), source)
    assert sorted(used) == sorted(sampled) and all(torch.equal(used[k], sampled[k]) for k in used)
    assert any(not torch.equal(bound.params[k], used[k]) for k in used)  # the estimate is not the draw


def test_a_size_changing_degradation_is_refused_before_any_work(tmp_path, model, capsys):
    # the sampler cuts the observation's tiles on the restoration's grid: a downsampling would compare two sizes
    source = io.write_image(tmp_path / "in.png", natural_crop(40, 40))
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "out.png", "--model", model,
                          "-d", "downsample", *FEW, "--samples", "2")
    assert code == 2 and "--samples" in stderr and "image size" in stderr, stderr
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.std.png").exists()


def test_side_outputs_of_a_restore_are_never_batch_inputs(tmp_path):
    # a batch pointed at an earlier output folder must restore the photos only, not their std maps or samples
    from flowprior.batch.plan import _list_inputs

    for name in ("photo.png", "photo.std.png", "photo.sample-03.png", "photo.mask.png", "photo.compare.png",
                 "standard.png", "sample-1.png"):
        (tmp_path / name).write_bytes(b"")
    found, _ = _list_inputs(tmp_path, recursive=False)
    assert sorted(p.name for p in found) == ["photo.png", "sample-1.png", "standard.png"]
