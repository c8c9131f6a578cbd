"""Procedural rain streaks and snow flakes, and the screen blend that lays them over an image.

Layers are (H, W) float64 opacity maps in [0, 1] drawn from an explicit generator on the CPU. They are composited
as white light with :func:`screen`, ``y = x + L·(1 − x)``, which is affine in ``x`` and keeps [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from degradations.functional.blur import blur, gaussian_kernel


def _splat(height: int, width: int, ys: Tensor, xs: Tensor, weights: Tensor) -> Tensor:
    """Bilinearly accumulate point weights into an (H, W) grid; points outside are dropped."""
    y0, x0 = torch.floor(ys), torch.floor(xs)
    fy, fx = ys - y0, xs - x0
    grid = torch.zeros(height * width, dtype=torch.float64)
    for dy, dx, w in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        yy, xx = (y0 + dy).long(), (x0 + dx).long()
        ok = (yy >= 0) & (yy < height) & (xx >= 0) & (xx < width)
        grid.index_add_(0, (yy * width + xx)[ok], (w * weights)[ok])
    return grid.view(height, width)


def rain_layer(
    height: int,
    width: int,
    density: float,
    length: float,
    angle: float,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Rain streaks: thin slanted line segments of varying length and opacity, slightly blurred.

    Args:
        height, width: layer size.
        density: streaks per pixel (e.g. 0.002 → about 130 streaks on 256×256).
        length: mean streak length in pixels (each streak: 0.6–1.4× that).
        angle: fall direction in degrees from vertical (positive leans right at the bottom).
        generator: randomness source.

    Returns:
        (H, W) float64 opacity in [0, 1].
    """
    n = max(1, round(density * height * width))
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    lengths = length * (0.6 + 0.8 * u[:, 0])
    # Centers range over a margin around the image so streaks can enter from its edges.
    cy = -length + u[:, 1] * (height + 2 * length)
    cx = -length + u[:, 2] * (width + 2 * length)
    opacity = 0.5 + 0.5 * u[:, 3]
    steps = max(2, math.ceil(1.5 * 1.4 * length) + 1)  # >= 1.5 points per pixel on the longest streak
    t = torch.linspace(-0.5, 0.5, steps, dtype=torch.float64)[None, :]
    theta = math.radians(angle)
    ys = cy[:, None] + t * lengths[:, None] * math.cos(theta)
    xs = cx[:, None] + t * lengths[:, None] * math.sin(theta)
    # Each point deposits (spacing in px) so a straight streak accumulates to ~its opacity per pixel.
    spacing = lengths / (steps - 1)
    w = (opacity * spacing)[:, None].expand(n, steps)
    layer = _splat(height, width, ys.reshape(-1), xs.reshape(-1), w.reshape(-1))
    layer = blur(layer[None, None], gaussian_kernel(0.6)[None])[0, 0]
    return layer.clamp(0.0, 1.0)


def snow_layer(
    height: int, width: int, density: float, size: float, generator: torch.Generator | None = None
) -> Tensor:
    """Snow flakes: soft-edged disks of radius 0.5–1.5× ``size`` pixels and opacity 0.6–1.

    Args:
        height, width: layer size.
        density: flakes per pixel.
        size: mean flake radius in pixels.
        generator: randomness source.

    Returns:
        (H, W) float64 opacity in [0, 1] (overlapping flakes take the maximum).
    """
    n = max(1, round(density * height * width))
    u = torch.rand(n, 4, generator=generator, dtype=torch.float64)
    layer = torch.zeros(height, width, dtype=torch.float64)
    ys_all = torch.arange(height, dtype=torch.float64)[:, None]
    xs_all = torch.arange(width, dtype=torch.float64)[None, :]
    for cy, cx, r, a in zip(
        (u[:, 0] * height).tolist(),
        (u[:, 1] * width).tolist(),
        (size * (0.5 + u[:, 2])).tolist(),
        (0.6 + 0.4 * u[:, 3]).tolist(),
    ):
        y0, y1 = max(0, int(cy - r - 1)), min(height, int(cy + r + 2))
        x0, x1 = max(0, int(cx - r - 1)), min(width, int(cx + r + 2))
        if y0 >= y1 or x0 >= x1:
            continue
        dist = torch.sqrt((ys_all[y0:y1] - cy) ** 2 + (xs_all[:, x0:x1] - cx) ** 2)
        # Opaque core with a one-pixel linear falloff: antialiased edge.
        flake = a * (r + 0.5 - dist).clamp(0.0, 1.0)
        layer[y0:y1, x0:x1] = torch.maximum(layer[y0:y1, x0:x1], flake)
    return layer


def screen(x: Tensor, layer: Tensor) -> Tensor:
    """Lay white light of opacity ``layer`` (B, 1, H, W) over ``x``: ``x + layer·(1 − x)``."""
    lay = layer.to(dtype=x.dtype, device=x.device)
    return x + lay * (1.0 - x)
