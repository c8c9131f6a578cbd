"""``flowprior inspect`` and ``estimate_degradation`` (issue 15, item 4, the inspect part)."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from degradations import parse
from flowprior.cli import main
from flowprior.estimate.report import estimate_degradation


def _degraded(tmp_path, suffix=".png", **save):
    from skimage import data

    x = torch.from_numpy(data.chelsea()[:160, :224].astype(np.float64) / 255).permute(2, 0, 1)[None].float()
    op = parse("mask+noise", {"mask.kind": "holes", "noise.sigma": 8})
    y = op.apply(x, op.sample_params(tuple(x.shape), torch.Generator().manual_seed(5)))
    path = tmp_path / f"photo{suffix}"
    Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path, **save)
    return path


def test_estimate_degradation_composes_an_operator(tmp_path):
    from flowprior.io import read_image

    path = _degraded(tmp_path)
    found = estimate_degradation(read_image(path).pixels, path=path)
    assert found.spec == "mask+noise" and abs(found.params["noise.sigma"] - 8) <= 1.0
    assert set(found.params) == {"noise.sigma"}  # the mask travels as a tensor, not as parameters
    parse(found.spec, found.params)  # the operator parser accepts what was found
    assert found.mask.shape == (1, 1, 160, 224) and 0.02 < 1 - found.mask.mean() < 0.08
    assert set(found.confidence) == {"noise", "jpeg", "mask"} and found.confidence["mask"] > 0.5


def test_inspect_json_and_mask(tmp_path, capsys):
    path = _degraded(tmp_path, ".jpg", quality=40)
    assert main(["inspect", str(path), "--json", "--save-mask", str(tmp_path / "masks")]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["jpeg"]["source"] == "file" and found["jpeg"]["quality"] == 40 and found["jpeg"]["exact_ijg"]
    assert found["spec"] == "mask+noise+jpeg" and found["params"]["mask.path"] == found["mask_file"]
    mask = np.asarray(Image.open(found["mask_file"]))
    assert mask.shape == (160, 224) and set(np.unique(mask)) <= {0, 255}


def test_inspect_text_and_bad_input(tmp_path, capsys):
    path = _degraded(tmp_path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "noise sigma" in out and "JPEG          not detected" in out and "--degradation mask+noise" in out
    (tmp_path / "bad.png").write_bytes(b"not an image")
    assert main(["inspect", str(tmp_path / "bad.png")]) == 2
    assert "error" in capsys.readouterr().err
