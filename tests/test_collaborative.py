"""Collaborative filtering of similar blocks (flowprior.warmstart.collaborative): the transforms are orthonormal, the
matching finds repeated blocks, the estimate denoises a real photo crop as BM3D does, and the default path's blend
with the warm start gains where the photo repeats itself and costs nothing where it does not."""

from __future__ import annotations

import json

import pytest
import torch

from degradations import parse
from flowprior.metrics import psnr
from flowprior.warmstart import collaborative, get_initializer
from flowprior.warmstart.collaborative import collaborative_blend, collaborative_estimate, match_blocks
from flowprior.warmstart.sure import away_from_the_bounds
from tests.conftest import natural_crop


@pytest.fixture(scope="module")
def crop():
    return natural_crop(96, 96, top=100, left=150).float()


@pytest.fixture(scope="module")
def repeated():
    """A 96² image tiled from one 7x6 piece of the astronaut: every block has copies inside its search window."""
    tile = natural_crop(7, 6, top=250, left=180).float()
    return tile.repeat(1, 1, 14, 16)[..., :96, :96]


def noisy(clean, sigma, seed=3):
    op = parse("noise", {"noise.sigma": sigma})
    params = op.sample_params(tuple(clean.shape), torch.Generator().manual_seed(seed))
    return (op.apply(clean, params) * 255).round() / 255, op, params


def test_matching_finds_the_copies_of_a_repeated_block(repeated):
    """On a tiling with periods 7 (rows) and 6 (columns) the best matches of a block are its exact copies, at
    offsets that are multiples of the periods, and the reference comes first."""
    luma = repeated[0].mean(0)
    starts, sizes = match_blocks(luma, 4, threshold=1e-9)
    grid_w = luma.shape[1] - collaborative.BLOCK + 1
    ref = starts[:, :1]
    dy, dx = (starts - ref) // grid_w, (starts - ref) % grid_w
    dy = torch.where(dx > grid_w // 2, dy + 1, dy)  # a negative column offset borrows a row in the flat index
    dx = torch.where(dx > grid_w // 2, dx - grid_w, dx)
    assert bool((sizes == 4).all())
    assert bool((dy % 7 == 0).all() and (dx % 6 == 0).all())
    assert bool(((dy[:, 1:] != 0) | (dx[:, 1:] != 0)).all())


@pytest.mark.parametrize("n", [8, 11, 12, 13, 250])
def test_block_sums_match_direct_sums_on_and_off_the_stride(n):
    """The matching's box sums at every reference position, the last one off the stride included (n − 8 not a
    multiple of 4), equal sums taken directly, along either dimension."""
    x = torch.rand(2, n, n + 3, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    for dim in (1, 2):
        positions = collaborative._reference_positions(x.shape[dim])
        direct = torch.stack([x.narrow(dim, int(p), collaborative.BLOCK).sum(dim) for p in positions], dim)
        assert torch.allclose(collaborative._block_sums(x, dim), direct, atol=1e-12)


def test_with_no_noise_or_a_tiny_image_the_input_comes_back(crop):
    assert torch.equal(collaborative_estimate(crop[0], 0.0), crop[0])
    assert torch.equal(collaborative_estimate(crop[0, :, :6, :6], 0.01), crop[0, :, :6, :6])
    with pytest.raises(ValueError, match="one \\(3, H, W\\) image"):
        collaborative_estimate(crop, 0.01)


def test_the_estimate_denoises_a_photo_crop_and_leaves_its_input_alone(crop):
    """σ 25 on this astronaut crop: 20.7 dB in, 30.2 out (session 15's 15² window and groups of 16: 30.1; the BM3D
    package: 30.5; the hard-thresholding step alone 29.2, the hard threshold at 1 σ instead of 2.7 σ 24.9)."""
    y, _, _ = noisy(crop, 25)
    before = y.clone()
    out = collaborative_estimate(y[0], (25 / 255) ** 2)
    assert torch.equal(y, before)
    assert float(psnr(crop, out[None].clamp(0, 1))) > 30.0


def test_strips_give_the_whole_image_result(monkeypatch):
    """Tall images are filtered in strips (bounded memory); with 32-row strips and 48 rows of context a 160x128
    crop keeps its values within 0.01 (most within 10⁻⁴: a strip's last reference row is not the image's) and its
    PSNR within 0.005 dB."""
    clean = natural_crop(160, 128, top=100, left=150).float()
    y, _, _ = noisy(clean, 25)
    whole = collaborative_estimate(y[0], (25 / 255) ** 2)
    monkeypatch.setattr(collaborative, "STRIP", 32)
    strips = collaborative_estimate(y[0], (25 / 255) ** 2)
    assert float((whole - strips).abs().max()) < 0.01 and float((whole - strips).abs().mean()) < 1e-4
    assert abs(float(psnr(clean, whole[None].clamp(0, 1))) - float(psnr(clean, strips[None].clamp(0, 1)))) < 0.005


def test_grouping_is_what_denoises_a_repeated_image(repeated, crop, monkeypatch):
    """Groups of one block (no grouping) lose 6.7 dB on the tiling at σ 25 (32.2 → 25.5) and 0.8 on the photo."""
    def score(clean):
        y, _, _ = noisy(clean, 25)
        return float(psnr(clean, collaborative_estimate(y[0], (25 / 255) ** 2)[None].clamp(0, 1)))

    grouped = [score(repeated), score(crop)]
    monkeypatch.setattr(collaborative, "GROUP_HT", 1)
    monkeypatch.setattr(collaborative, "GROUP_WIENER", 1)
    alone = [score(repeated), score(crop)]
    assert grouped[0] > alone[0] + 5.0 and grouped[1] > alone[1] + 0.5


def test_the_blend_weight_follows_the_best_one(repeated, crop):
    """SURE's β with the matches probed at 0.15 σ: near 1 on the tiling (where the collaborative estimate is far
    better than a poor warm start, here the noisy image smoothed by a 3x3 box), and the blend never lands more than
    0.3 dB below the best β on a grid, on either image."""
    for clean in (repeated, crop):
        y, _, _ = noisy(clean, 25)
        variance = torch.tensor([(25 / 255) ** 2])
        x0 = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(y, [1] * 4, mode="reflect"), 3, stride=1)
        inside = away_from_the_bounds(x0, variance)
        divergence = inside.sum() / 9  # a 3x3 box keeps 1/9 of each value
        out, beta = collaborative_blend(x0, y, variance, divergence.reshape(1), inside)
        estimate = collaborative_estimate(y[0], float(variance))[None]
        best = max(float(psnr(clean, (x0 + b * (estimate - x0)).clamp(0, 1))) for b in torch.linspace(0, 1, 21))
        assert float(psnr(clean, out.clamp(0, 1))) > best - 0.3
        if clean is repeated:
            assert float(beta) > 0.8


def test_images_the_step_does_not_keep_are_not_filtered(repeated, crop, monkeypatch):
    """In a batch where only the first image runs the step, the filter runs twice (the estimate and its probe) and
    only on it; the second comes back as it was with β 0, and the first as it does alone."""
    y = torch.cat([noisy(repeated, 25)[0], noisy(crop, 25)[0]])
    variance = torch.full((2,), (25 / 255) ** 2)
    x0 = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(y, [1] * 4, mode="reflect"), 3, stride=1)
    inside = away_from_the_bounds(x0, variance)
    divergence = inside.flatten(1).sum(1) / 9
    alone, beta_alone = collaborative_blend(x0[:1], y[:1], variance[:1], divergence[:1], inside[:1])
    calls = []
    monkeypatch.setattr(collaborative, "collaborative_estimate",
                        lambda image, v, run=collaborative_estimate: calls.append(1) or run(image, v))
    out, beta = collaborative_blend(x0, y, variance, divergence, inside, torch.tensor([True, False]))
    assert len(calls) == 2 and float(beta[1]) == 0.0 and torch.equal(out[1], x0[1])
    assert torch.allclose(out[:1], alone) and float(beta[0]) == float(beta_alone[0])


def test_the_default_path_runs_the_step_after_the_full_ensemble(crop, monkeypatch):
    """With the step on, a σ 25 image runs all 8 orientations and one probe pass (the filters run no network pass)
    and records β; a σ above the limit runs the same passes and records 0."""
    calls = []
    for sigma, passes, ran in ((25, 8 + 1, True), (40, 8 + 1, False)):
        y, op, params = noisy(crop[..., :64, :64], sigma)
        initializer = get_initializer("irflow", seed=0, ensemble=8, wiener=25.0, collaborative=30.0)
        model = initializer.model_for(op, params)
        monkeypatch.setattr(model, "restore", lambda *a, restore=model.restore: calls.append(1) or restore(*a))
        calls.clear()
        initializer(y, op, params)
        monkeypatch.undo()
        assert len(calls) == passes and len(initializer.last_collaborative) == 1
        if ran:
            assert initializer.last_collaborative[0] > 0
        else:
            assert initializer.last_collaborative == [0.0]


def test_the_step_gains_on_a_repeated_image_and_the_sidecar_records_it(repeated, tmp_path):
    """On the tiling at σ 25 the network (which sees ~40 px) trails the grouping: the step gains ≥ 1 dB over the
    path without it; a default restore writes β in the sidecar."""
    import numpy as np
    from PIL import Image

    from flowprior.cli import main
    from flowprior.restore_file import sidecar_path

    y, op, params = noisy(repeated, 25)
    with_step = get_initializer("irflow", seed=0, ensemble=8, wiener=25.0, collaborative=30.0)
    without = get_initializer("irflow", seed=0, ensemble=8, wiener=25.0)
    gained = float(psnr(repeated, with_step(y, op, params))) - float(psnr(repeated, without(y, op, params)))
    assert gained > 1.0
    source, target = tmp_path / "noisy.png", tmp_path / "out.png"
    Image.fromarray((y[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(source)
    assert main(["restore", str(source), "-o", str(target), "--degradation", "noise", "--set", "noise.sigma=25",
                 "--quiet"]) == 0
    beta = json.loads(sidecar_path(target).read_text())["warm_start_collaborative"]
    assert len(beta) == 1 and 0 < beta[0] <= 1


def test_a_negative_limit_is_refused():
    from flowprior.errors import UsageError
    from flowprior.pipeline.recipe import RestoreRecipe
    from flowprior.pipeline.warm_start import make_initializer

    with pytest.raises(UsageError, match="init_collaborative"):
        make_initializer(RestoreRecipe(init="irflow", init_collaborative=-1.0))
