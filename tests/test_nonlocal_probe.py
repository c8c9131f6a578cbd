"""The non-local experiment's filter (benchmarks/nonlocal_probe.py): its SURE reading rests on the centre weight being
the step's divergence once the matches are fixed, and on averaging truly repeated patches."""

from __future__ import annotations

import torch

from benchmarks.nonlocal_probe import pilot_matched_mean
from flowprior.metrics import psnr


def _stripes(size: int = 48) -> torch.Tensor:
    """Vertical stripes of period 4 (every row repeats, every 4th column repeats): many exact matches."""
    column = torch.tensor([0.3, 0.5, 0.7, 0.5]).repeat(size // 4)
    return column.expand(3, size, size).unsqueeze(0).clone()


def test_with_a_clean_pilot_repeated_structure_is_averaged_and_the_noise_falls():
    clean = _stripes()
    y = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))
    estimate, own = pilot_matched_mean(y, clean, k=8)
    assert float(psnr(clean, estimate)) > float(psnr(clean, y)) + 8.0  # 8 matches: about 9 dB less noise
    assert torch.allclose(own.mean(), torch.tensor(1 / 8), atol=0.02)


def test_the_centre_weight_is_the_divergence_with_the_matches_fixed():
    """The step is linear in y for a fixed pilot: a probe along a random direction reads the summed centre weight."""
    clean = _stripes(32)
    y = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))
    direction = torch.randn(clean.shape, generator=torch.Generator().manual_seed(2))
    at_y, own = pilot_matched_mean(y, clean)
    moved, _ = pilot_matched_mean(y + direction, clean)
    probe = float(((moved - at_y) * direction).sum())
    exact = float(own.expand_as(y).sum())
    assert abs(probe - exact) < 0.15 * exact
