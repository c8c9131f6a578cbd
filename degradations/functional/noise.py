"""Additive noise draws, replayable from per-sample seeds.

Levels are given on the 0–255 scale (as papers state them) and converted here. Every draw happens on the CPU in
float64 from a ``torch.Generator`` seeded with the sample's own seed, then is cast to the image's dtype and device,
so the same seed gives the same noise on any device and in any batch position.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _per_sample(seeds: Tensor, shape: tuple[int, ...], draw) -> Tensor:
    out = []
    for seed in seeds.tolist():
        g = torch.Generator().manual_seed(int(seed))
        out.append(draw(shape, g))
    return torch.stack(out)


def gaussian_noise(shape: tuple[int, ...], sigma: Tensor, seeds: Tensor) -> Tensor:
    """Zero-mean Gaussian noise of per-sample std ``sigma`` (0–255 scale), returned on the [0, 1] scale.

    Args:
        shape: (B, C, H, W).
        sigma: (B,) standard deviations on the 0–255 scale.
        seeds: (B,) int64 seeds.

    Returns:
        (B, C, H, W) float64 on the CPU.
    """
    z = _per_sample(seeds, tuple(shape[1:]), lambda s, g: torch.randn(s, generator=g, dtype=torch.float64))
    return z * (sigma.to(torch.float64).cpu() / 255.0).view(-1, 1, 1, 1)


def uniform_noise(shape: tuple[int, ...], low: Tensor, high: Tensor, seeds: Tensor) -> Tensor:
    """Noise uniform on ``[low, high]`` (0–255 scale, per sample), returned on the [0, 1] scale, float64 CPU."""
    u = _per_sample(seeds, tuple(shape[1:]), lambda s, g: torch.rand(s, generator=g, dtype=torch.float64))
    lo = low.to(torch.float64).cpu().view(-1, 1, 1, 1) / 255.0
    hi = high.to(torch.float64).cpu().view(-1, 1, 1, 1) / 255.0
    return lo + u * (hi - lo)


def poisson_gaussian(x: Tensor, peak: Tensor, sigma: Tensor, seeds: Tensor) -> Tensor:
    """Shot noise plus read noise: ``Poisson(peak·x) / peak + N(0, (sigma/255)²)``.

    Args:
        x: clean images in [0, 1], (B, C, H, W).
        peak: (B,) photon count of a white pixel (smaller = noisier).
        sigma: (B,) read-noise std on the 0–255 scale.
        seeds: (B,) int64 seeds.

    Returns:
        The noisy images (not clamped), dtype and device of ``x``.
    """
    rate = x.detach().to(torch.float64).cpu().clamp(min=0) * peak.to(torch.float64).cpu().view(-1, 1, 1, 1)
    out = []
    for i, seed in enumerate(seeds.tolist()):
        g = torch.Generator().manual_seed(int(seed))
        counts = torch.poisson(rate[i], generator=g)
        read = torch.randn(rate[i].shape, generator=g, dtype=torch.float64) * float(sigma[i]) / 255.0
        out.append(counts / float(peak[i]) + read)
    return torch.stack(out).to(dtype=x.dtype, device=x.device)


def poisson_gaussian_std(peak: Tensor, sigma: Tensor, level: float = 0.5) -> Tensor:
    """Std of Poisson-Gaussian noise at intensity ``level``: ``sqrt(level/peak + (sigma/255)²)``, shape (B,)."""
    return torch.sqrt(level / peak.to(torch.float64) + (sigma.to(torch.float64) / 255.0) ** 2)


def uniform_std(low: Tensor, high: Tensor) -> Tensor:
    """Std of U(low, high) given on the 0–255 scale, on the [0, 1] scale: ``(high − low) / sqrt(12) / 255``."""
    return (high.to(torch.float64) - low.to(torch.float64)) / math.sqrt(12.0) / 255.0
