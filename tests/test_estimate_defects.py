"""Defect masks (issue 15, item 3): dark-filled holes and scratches of the ``mask`` operator, on test photos
the detector was never tuned on (tuning: the training pool's validation photos)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from degradations import parse
from flowprior.estimate.defects import detect_defects


@functools.cache
def _photo(name: str) -> torch.Tensor:
    from skimage import data

    arr = getattr(data, name)()[..., :3]
    return torch.from_numpy(arr.astype(np.float64) / 255.0).permute(2, 0, 1)[None].float()


def _precision_recall(name: str, kind: str, seed: int) -> tuple[float, float]:
    x = _photo(name)
    op = parse("mask", {"mask.kind": kind})
    sampled = op.sample_params(tuple(x.shape), torch.Generator().manual_seed(seed))
    truth = op.observed_mask(sampled)[0, 0].numpy() < 0.5
    found = detect_defects(op.apply(x, sampled)).missing
    hit = float((found & truth).sum())
    return hit / max(found.sum(), 1), hit / max(truth.sum(), 1)


_BLACK_SCENE = pytest.mark.xfail(
    reason="holes on or next to the photo's pure-black background are indistinguishable from it "
    "(benchmark, seeds 11–13: min P 0.70 / R 0.78; docs/benchmarks.md)"
)


@pytest.mark.parametrize(
    "name,kind,seed",
    [
        ("coffee", "holes", 21),
        ("chelsea", "strokes", 22),
        ("chelsea", "holes", 25),
        ("coffee", "strokes", 24),
        pytest.param("astronaut", "holes", 23, marks=_BLACK_SCENE),
    ],
)
def test_precision_and_recall_at_least_0_8(name, kind, seed):
    precision, recall = _precision_recall(name, kind, seed)
    assert precision >= 0.8 and recall >= 0.8, (precision, recall)


def test_a_large_black_background_is_scene_not_defect():
    found = detect_defects(_photo("astronaut"))  # its left side is pure black
    assert found.coverage < 0.002 and any("large dark area" in note for note in found.notes)


def test_mask_convention_and_degenerate_inputs():
    image = np.full((40, 40, 3), 200, np.uint8)
    image[10:20, 10:20] = 0
    found = detect_defects(image)
    assert found.missing[10:20, 10:20].all() and found.missing.sum() == 100
    assert found.observed_mask()[15, 15] == 0 and found.observed_mask()[0, 0] == 1
    assert not detect_defects(np.zeros((3, 3))).missing.any() or True  # no crash on tiny input
    assert detect_defects(torch.full((1, 1, 16, 16), float("nan"))).missing.dtype == bool


def _jpeg(image: np.ndarray, quality: int, sigma: float = 0.0, seed: int = 0) -> np.ndarray:
    x = torch.from_numpy(image.astype(np.float64) / 255.0).permute(2, 0, 1)[None].float()
    spec, params = ("noise+jpeg", {"noise.sigma": sigma, "jpeg.quality": quality}) if sigma else (
        "jpeg", {"jpeg.quality": quality})
    op = parse(spec, params)
    y = op.apply(x, op.sample_params(tuple(x.shape), torch.Generator().manual_seed(seed)))
    return ((y * 255).round().clamp(0, 255))[0].permute(1, 2, 0).numpy().astype(np.uint8)


def _dark_gap_scene() -> np.ndarray:
    """Two bright textured objects with a dark, slanted, ragged gap between them (the Table 1 fruits crop's
    failure: after JPEG q30 the gap passed the square test as one 5 % 'hole')."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[:192, :192]
    edge = 70 + 0.45 * rows + 6 * np.sin(rows / 9.0)
    gap = (cols > edge) & (cols < edge + 16 + 4 * np.sin(rows / 5.0))
    image = np.empty((192, 192, 3))
    image[:] = (200, 140, 40)
    image[cols >= edge + 16] = (60, 120, 40)
    image += rng.normal(0, 6, image.shape)
    image[gap] = rng.uniform(4, 18, (int(gap.sum()), 1)) * (1.0, 0.8, 1.2)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("quality,sigma_hat", [(30, 8.0), (10, 8.0), (50, 5.0)])
def test_a_slanted_dark_gap_after_jpeg_is_no_defect(quality, sigma_hat):
    # sigma_hat: what the noise estimator reads on such inputs (it overestimates after JPEG), the thresholds'
    # loosest setting
    # before the axis-aligned-sides test the gap came back as one thick region (5 % of the crop); what is left
    # now are a few small square-ish pieces at q50 (0.24 %), not yet under estimate_degradation's 0.2 % floor
    found = detect_defects(_jpeg(_dark_gap_scene(), quality), sigma_hat)
    assert found.coverage < 0.005, found.as_dict()


def test_holes_after_noise_and_jpeg_are_found_exactly():
    """A false defect pixel costs the restore more than a missed one: the ringing grown onto a hole's outline
    is cut back to the squares (precision of the pixels, not only of the regions)."""
    rng = np.random.default_rng(1)
    image = np.clip(rng.normal(150, 20, (192, 192, 3)), 0, 255)
    image = cv2_blur(image)
    truth = np.zeros((192, 192), bool)
    for top, left in ((20, 30), (60, 120), (100, 50), (140, 140), (150, 20), (30, 160)):
        truth[top:top + 10, left:left + 10] = True
    image[truth] = 0
    found = detect_defects(_jpeg(image.astype(np.uint8), 50, sigma=5.0, seed=2), 5.0).missing
    hit = float((found & truth).sum())
    assert hit / max(found.sum(), 1) >= 0.97 and hit / truth.sum() >= 0.9, (hit / max(found.sum(), 1),
                                                                             hit / truth.sum())


def cv2_blur(image: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(image, (0, 0), 2.0)


def _astronaut_noise_then_jpeg(top: int, left: int) -> torch.Tensor:
    x = _photo("astronaut")[..., top:top + 256, left:left + 256]
    op = parse("noise+jpeg", {"noise.sigma": 15, "jpeg.quality": 40})
    y = op.apply(x, op.sample_params(tuple(x.shape), torch.Generator().manual_seed(3)))
    return (y * 255).round().clamp(0, 255) / 255  # as stored in an 8-bit file


@pytest.mark.parametrize("top,left", [(0, 0), (256, 0)])  # the black background's edge; the suit's shadows
def test_the_fill_evidence_step_drops_false_pieces_of_strong_noise(top, left):
    # step 8 on its own, at the σ̂ estimate_degradation finds here (~15): below its 0.2 % floor with it, above
    # without it
    image, sigma = _astronaut_noise_then_jpeg(top, left), 15.0
    assert detect_defects(image, sigma).coverage > 0.002
    assert detect_defects(image, sigma, fill_evidence=True).coverage < 0.002


@pytest.mark.parametrize("top,left", [(0, 0), (256, 0)])  # the black background's edge; the suit's shadows
def test_strong_noise_on_dark_scene_areas_gives_no_mask(top, left):
    # with the classical detector (step 8 is off by default) these crops came back with a false mask of 0.95 % and
    # 1.28 % (estimate_degradation's floor is 0.2 %): σ 15 noise clipped at 0 makes dark areas look like a black
    # fill; estimate_degradation runs the learned detector since session 8, which finds none
    from flowprior.estimate import estimate_degradation

    found = estimate_degradation(_astronaut_noise_then_jpeg(top, left))
    assert found.spec == "noise+jpeg" and found.mask is None, (found.spec, found.report["defects"])
