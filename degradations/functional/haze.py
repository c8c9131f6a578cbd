"""Haze by the atmospheric scattering model ``I = J·t + A·(1 − t)``, ``t = exp(−β·d)``.

Without a depth sensor the depth ``d`` is a smooth proxy: a vertical gradient (the top of a photo is usually
farther away than the bottom) perturbed by low-frequency noise, normalized to [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def depth_proxy(
    height: int, width: int, generator: torch.Generator | None = None, roughness: float = 0.35, cells: int = 4
) -> Tensor:
    """Smooth pseudo-depth in [0, 1], far (1) at the top, near (0) at the bottom.

    Args:
        height, width: size of the map.
        generator: source of the low-frequency noise.
        roughness: weight of the noise against the vertical gradient.
        cells: the noise is bicubic-upsampled from a ``cells × cells`` grid (fewer = smoother).

    Returns:
        (H, W) float64.
    """
    ramp = torch.linspace(1.0, 0.0, height, dtype=torch.float64)[:, None].expand(height, width)
    grid = torch.rand(1, 1, cells, cells, generator=generator, dtype=torch.float64)
    noise = F.interpolate(grid, size=(height, width), mode="bicubic", align_corners=True)[0, 0]
    d = ramp + roughness * (noise - 0.5)
    d = d - d.min()
    return d / d.max().clamp(min=1e-12)


def transmission(depth: Tensor, beta: Tensor) -> Tensor:
    """``t = exp(−β·d)`` for (B, 1, H, W) depth and (B,) scattering coefficients."""
    return torch.exp(-beta.view(-1, 1, 1, 1).to(depth) * depth)


def add_haze(x: Tensor, depth: Tensor, beta: Tensor, airlight: Tensor) -> Tensor:
    """Apply ``I = J·t + A·(1 − t)``; affine in ``x`` and in [0, 1] whenever ``x`` and ``A`` are.

    Args:
        x: clean images (B, C, H, W) in [0, 1].
        depth: (B, 1, H, W) depth in [0, 1].
        beta: (B,) scattering coefficients (larger = thicker haze).
        airlight: (B,) gray atmospheric light in [0, 1].
    """
    t = transmission(depth.to(dtype=x.dtype, device=x.device), beta.to(x.device))
    a = airlight.to(dtype=x.dtype, device=x.device).view(-1, 1, 1, 1)
    return x * t + a * (1.0 - t)
