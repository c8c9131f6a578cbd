"""``--degradation auto`` (issue 15 item 4): the estimate becomes the restore's operator, parameters and mask."""

from __future__ import annotations

import json

import pytest
import torch

from degradations import parse
from flowprior.auto_degradation import FoundDegradation, with_user_values
from flowprior.io import write_image
from flowprior.restoration import auto_recipe_name
from tests.cli_helpers import run
from tests.conftest import natural_crop


def noisy_jpeg_astronaut(tmp_path, sigma=15, quality=40):
    """An astronaut crop with noise σ then JPEG q, saved as a JPEG file by Pillow's codec."""
    clean = natural_crop(128, 128)
    noisy = parse("noise", {"noise.sigma": sigma}).apply(
        clean, parse("noise", {"noise.sigma": sigma}).sample_params(tuple(clean.shape), torch.Generator().manual_seed(0)))
    path = tmp_path / "scan.jpg"
    write_image(path, noisy.clamp(0, 1), quality=quality)
    return clean, path


def test_user_values_win_over_the_estimate():
    found = FoundDegradation("mask+noise+jpeg", {"noise.sigma": 9.0, "jpeg.quality": 40},
                             torch.ones(1, 1, 8, 8), {"noise": {}})
    mine = with_user_values(found, {"noise.sigma": 5}, mask_given=True)
    assert mine.spec == "noise+jpeg"  # the given mask replaces the detected one
    assert mine.params == {"noise.sigma": 5, "jpeg.quality": 40}
    assert mine.mask is None


def test_auto_takes_the_fast_recipe():
    assert auto_recipe_name("auto") == "fast"


def test_cli_auto_reads_the_jpeg_file_and_records_every_estimate(tmp_path, capsys):
    _, source = noisy_jpeg_astronaut(tmp_path)
    target = tmp_path / "out.png"
    code, _, err = run(capsys, "restore", source, "-o", target, "--degradation", "auto", "--threads", "1")
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out.png.json").read_text())
    assert "jpeg" in sidecar["degradation"] and "noise" in sidecar["degradation"]
    assert sidecar["recipe"]["params"]["jpeg.quality"] == 40  # read from the file's own tables
    assert 8 <= sidecar["recipe"]["params"]["noise.sigma"] <= 25
    assert sidecar["estimated"]["jpeg"]["confidence"] == pytest.approx(1.0)
    if "mask" in sidecar["degradation"]:  # a detected mask is written where the replay finds it
        assert sidecar["mask"]["path"].endswith("out.mask.png")


def test_cli_auto_replays_bit_for_bit(tmp_path, capsys):
    _, source = noisy_jpeg_astronaut(tmp_path)
    first, again = tmp_path / "a.png", tmp_path / "b.png"
    assert run(capsys, "restore", source, "-o", first, "--degradation", "auto", "--threads", "1")[0] == 0
    code, _, err = run(capsys, "restore", source, "-o", again, "--params-from", f"{first}.json")
    assert code == 0, err
    assert first.read_bytes() == again.read_bytes()
