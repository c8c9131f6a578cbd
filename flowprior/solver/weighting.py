"""The data-term weight λ matched to the noise the degradation declares.

A Gaussian likelihood with noise std σ (on the [0, 1] scale) puts ``1 / (2σ²)`` in front of the squared error, so
the right λ moves by 25× between σ = 5 and σ = 25 (0–255 scale). A fixed λ tuned for one noise level is badly off
for another; ``λ = t / (2σ²)`` with one tuned temperature ``t`` carries across levels (on the validation photos
the best fixed λ for σ = 5 and σ = 25 gave t ≈ 0.23 and t ≈ 0.1–0.2, docs/benchmarks.md). ``t < 1`` says the
prior's log-density is sharper than a calibrated one, which is expected of a small flow.
"""

from __future__ import annotations

import torch
from torch import Tensor


def noise_matched_weight(sigma: Tensor | None, temperature: float | None, fallback: float,
                         min_sigma: float = 0.5 / 255) -> Tensor | float:
    """λ per image: ``temperature / (2σ²)`` where noise is declared, ``fallback`` where it is not.

    Args:
        sigma: (B,) noise std on the [0, 1] scale from ``Degradation.noise_std``, or None (noise-free operator).
        temperature: t; None turns matching off (always ``fallback``).
        fallback: the recipe's fixed λ.
        min_sigma: σ is floored here so a near-zero declared noise cannot make λ explode.

    Returns:
        ``fallback`` (a float) when nothing is matched, else a (B,) float64 tensor.
    """
    if temperature is None or sigma is None:
        return fallback
    if temperature <= 0:
        raise ValueError(f"solver.noise_temperature must be positive, not {temperature}")
    sigma = sigma.to(torch.float64)
    matched = temperature / (2 * sigma.clamp(min=min_sigma) ** 2)
    return torch.where(sigma > 0, matched, torch.full_like(matched, fallback))
