"""Issue 17: a restore never replaces a file silently, never writes an input, and answers bad input with a usage
error (exit 2, one line), not a traceback. Real files in tmp_path, the tiny prior."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from flowprior import io
from tests.cli_helpers import run, save_tiny_prior
from tests.conftest import natural_crop

FAST = ["-d", "noise", "--set", "noise.sigma=5", "--steps", "4", "--quiet"]


@pytest.fixture
def model(tmp_path):
    return save_tiny_prior(tmp_path)


@pytest.fixture
def master(tmp_path) -> Path:
    return io.write_image(tmp_path / "master.png", natural_crop(40, 48))


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------ 1. no silent replacement


def test_an_existing_output_is_replaced_only_with_overwrite(tmp_path, model, master, capsys):
    other = io.write_image(tmp_path / "other_master.png", natural_crop(40, 48, top=100))
    before = digest(other)
    code, _, stderr = run(capsys, "restore", master, "-o", other, "--model", model, *FAST)
    assert code == 2 and "refusing to replace the existing" in stderr and "--overwrite" in stderr
    assert "Traceback" not in stderr and digest(other) == before and not (tmp_path / "other_master.png.json").exists()
    code, _, stderr = run(capsys, "restore", master, "-o", other, "--model", model, *FAST, "--overwrite")
    assert code == 0, stderr
    assert digest(other) != before and (tmp_path / "other_master.png.json").is_file()


def test_an_existing_sidecar_alone_is_not_replaced_either(tmp_path, model, master, capsys):
    (tmp_path / "out.png.json").write_text("{}")
    code, _, stderr = run(capsys, "restore", master, "-o", tmp_path / "out.png", "--model", model, *FAST)
    assert code == 2 and "out.png.json" in stderr and not (tmp_path / "out.png").exists()


def test_the_mask_is_never_written_even_with_overwrite(tmp_path, model, master, capsys):
    mask = io.write_image(tmp_path / "holes.png", torch.ones(1, 1, 40, 48))
    before = digest(mask)
    code, _, stderr = run(capsys, "restore", master, "-o", mask, "--mask", mask, "--model", model, *FAST,
                          "--overwrite")
    assert code == 2 and "refusing to write over the input" in stderr and digest(mask) == before


def test_an_input_reached_through_the_sidecar_name_is_never_written(tmp_path, model, master, capsys):
    before = digest(master)
    os.symlink(master, tmp_path / "restored.png.json")  # OUT.json is a link to the master
    code, _, stderr = run(capsys, "restore", master, "-o", tmp_path / "restored.png", "--model", model, *FAST,
                          "--overwrite")
    assert code == 2 and "is the input" in stderr and digest(master) == before
    assert not (tmp_path / "restored.png").exists()


def test_a_replay_never_writes_over_the_sidecar_it_replays(tmp_path, model, master, capsys):
    out = tmp_path / "out.png"
    assert run(capsys, "restore", master, "-o", out, "--model", model, *FAST)[0] == 0
    recorded = (tmp_path / "out.png.json").read_bytes()
    code, _, stderr = run(capsys, "restore", master, "-o", out, "--params-from", tmp_path / "out.png.json",
                          "--quiet", "--overwrite")
    assert code == 2 and "is the input" in stderr and (tmp_path / "out.png.json").read_bytes() == recorded


def test_the_compare_image_is_guarded_like_the_output(tmp_path, model, capsys):
    source = io.write_image(tmp_path / "plate.compare.png", natural_crop(40, 48))  # -o plate.png --compare hits it
    before = digest(source)
    code, _, stderr = run(capsys, "restore", source, "-o", tmp_path / "plate.png", "--compare", "--model", model,
                          *FAST, "--overwrite")
    assert code == 2 and "is the input" in stderr and digest(source) == before


# ----------------------------------------------------------------------------------------------- 2. manifest


def test_the_manifest_may_not_be_an_input(tmp_path, model, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    photo = io.write_image(folder / "photo.png", natural_crop(40, 40))
    before = digest(photo)
    code, _, stderr = run(capsys, "restore", folder, "-o", tmp_path / "out", "--manifest", photo, "--model", model,
                          *FAST)
    assert code == 2 and "refusing to write the manifest" in stderr and digest(photo) == before
    assert not (tmp_path / "out").exists()


def test_a_manifest_linked_into_the_input_tree_is_refused(tmp_path, model, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    photo = io.write_image(folder / "photo.png", natural_crop(40, 40))
    before = digest(photo)
    os.symlink(photo, out / "flowprior-manifest.jsonl")
    code, _, stderr = run(capsys, "restore", folder, "-o", out, "--model", model, *FAST)
    assert code == 2 and "is the input" in stderr and digest(photo) == before


def test_a_sidecar_linked_to_an_input_fails_that_file_only(tmp_path, model, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    first = io.write_image(folder / "a.png", natural_crop(40, 40))
    io.write_image(folder / "b.png", natural_crop(40, 40, top=50))
    before = digest(first)
    os.symlink(first, out / "a.png.json")
    code, stdout, stderr = run(capsys, "restore", folder, "-o", out, "--model", model, *FAST)
    assert code == 1 and "restored 1" in stdout and "a.png.json would be inside the input tree" in stderr
    assert digest(first) == before and (out / "b.png.json").is_file()


# -------------------------------------------------------------------------------- 7. usage errors, not tracebacks


def test_a_mask_of_the_wrong_size_is_a_usage_error(tmp_path, model, master, capsys):
    mask = io.write_image(tmp_path / "small.png", torch.ones(1, 1, 20, 20))
    code, _, stderr = run(capsys, "restore", master, "-o", tmp_path / "out.png", "--mask", mask, "--model", model,
                          *FAST)
    assert code == 2 and "is 20x20 pixels but the image" in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_a_malformed_yaml_recipe_is_a_usage_error(tmp_path, model, master, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("solver:\n  weight: [1, 2\n  lr: 0.1\n")
    code, _, stderr = run(capsys, "restore", master, "-o", tmp_path / "out.png", "--recipe", recipe, "--model",
                          model, *FAST)
    assert code == 2 and "is not a plain YAML recipe" in stderr and "Traceback" not in stderr


def test_a_yaml_recipe_with_python_tags_is_refused_and_nothing_in_it_runs(tmp_path, model, master, capsys):
    marker = tmp_path / "ran"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"solver: !!python/object/apply:os.system ['touch {marker}']\n"
                      f"seed: !!python/object/apply:pathlib.Path.touch [!!python/object/apply:pathlib.Path "
                      f"['{marker}']]\n")
    code, _, stderr = run(capsys, "restore", master, "-o", tmp_path / "out.png", "--recipe", recipe, "--model",
                          model, *FAST)
    assert code == 2 and "is not a plain YAML recipe" in stderr and "python/object" in stderr
    assert not marker.exists() and not (tmp_path / "out.png").exists()


def test_replaying_onto_a_changed_input_warns(tmp_path, model, master, capsys):
    out = tmp_path / "out.png"
    assert run(capsys, "restore", master, "-o", out, "--model", model, *FAST)[0] == 0
    changed = io.write_image(tmp_path / "changed.png", natural_crop(40, 48, top=90))
    code, _, stderr = run(capsys, "restore", changed, "-o", tmp_path / "again.png", "--params-from",
                          tmp_path / "out.png.json", "--quiet")
    assert code == 0 and "warning: replay:" in stderr and "is not the input the sidecar" in stderr
    warnings = json.loads((tmp_path / "again.png.json").read_text())["warnings"]
    assert any(w.startswith("replay:") for w in warnings)
    code, _, stderr = run(capsys, "restore", master, "-o", tmp_path / "same.png", "--params-from",
                          tmp_path / "out.png.json", "--quiet")
    assert code == 0 and "replay:" not in stderr
