"""Binary observation masks: 1 = observed, 0 = missing, float tensors of shape (H, W) or (B, 1, H, W).

Random masks are drawn from an explicit generator on the CPU in float64 (``sample_params`` stores them, so
``apply`` never draws anything).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor


def random_holes(
    height: int, width: int, coverage: float, size: int, generator: torch.Generator | None = None
) -> Tensor:
    """Square ``size × size`` holes at uniform random positions until ``coverage`` of the pixels is missing.

    Holes may overlap, so they are placed in rounds until the missing fraction reaches ``coverage`` (it can
    overshoot by at most one round of holes; a hole never leaves the image).

    Returns:
        (H, W) float64 mask, 1 = observed.
    """
    mask = torch.ones(height, width, dtype=torch.float64)
    if coverage <= 0:
        return mask
    size = max(1, min(size, height, width))
    target = coverage * height * width
    missing = 0.0
    for _ in range(1000):  # bounded: each round removes >= 1 hole's worth of pixels until the target is met
        need = max(1, math.ceil((target - missing) / (size * size)))
        tops = torch.randint(0, height - size + 1, (need,), generator=generator).tolist()
        lefts = torch.randint(0, width - size + 1, (need,), generator=generator).tolist()
        for t, l in zip(tops, lefts):
            mask[t : t + size, l : l + size] = 0.0
        missing = float((1.0 - mask).sum())
        if missing >= target - 0.5 or missing >= height * width:
            break
    return mask


def _bezier(p0: Tensor, p1: Tensor, p2: Tensor, n: int) -> Tensor:
    t = torch.linspace(0.0, 1.0, n, dtype=torch.float64)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2


def _stamp_disks(missing: Tensor, points: Tensor, radius: float, r: int) -> None:
    """Set ``missing`` where a pixel center lies within ``radius`` of one of ``points`` ((N, 2) rows, cols).

    All disks at once: each point's window of pixels ``int(p) - r .. int(p) + r + 1`` (int truncates toward zero,
    as Python's does), in chunks that bound the memory of a long stroke on a large image.
    """
    height, width = missing.shape
    offsets = torch.arange(-r, r + 2)
    for chunk in points.split(4096):
        base = chunk.to(torch.int64)  # truncation toward zero
        rows = (base[:, 0, None] + offsets)[:, :, None]  # (N, K, 1)
        cols = (base[:, 1, None] + offsets)[:, None, :]  # (N, 1, K)
        d2 = (rows - chunk[:, 0, None, None]) ** 2 + (cols - chunk[:, 1, None, None]) ** 2
        hit = (d2 <= radius * radius) & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        n, k = hit.shape[0], offsets.numel()
        missing[rows.expand(n, k, k)[hit], cols.expand(n, k, k)[hit]] = True


def random_strokes(
    height: int,
    width: int,
    count: int,
    width_px: float,
    generator: torch.Generator | None = None,
    length: float = 0.3,
) -> Tensor:
    """Thin curved strokes (scratches on a print): ``count`` quadratic Bézier curves of ``width_px`` thickness.

    Each stroke starts at a uniform random point, heads in a random direction for about ``length`` times the
    image diagonal and bends through a random control point. A pixel is missing when its center lies within
    ``width_px / 2`` of the curve.

    Returns:
        (H, W) float64 mask, 1 = observed.
    """
    diag = math.hypot(height, width)
    missing = torch.zeros(height, width, dtype=torch.bool)
    radius = max(width_px / 2.0, 0.5)
    r = math.ceil(radius)
    for _ in range(count):
        u = torch.rand(6, generator=generator, dtype=torch.float64)
        p0 = torch.stack([u[0] * (height - 1), u[1] * (width - 1)])
        angle = 2 * math.pi * float(u[2])
        span = length * diag * (0.5 + float(u[3]))
        direction = torch.tensor([math.sin(angle), math.cos(angle)], dtype=torch.float64)
        p2 = p0 + span * direction
        normal = torch.tensor([-direction[1], direction[0]], dtype=torch.float64)
        p1 = (p0 + p2) / 2 + (float(u[4]) - 0.5) * span * 0.8 * normal
        # Points no further apart than the radius, so stamped disks leave no gaps.
        _stamp_disks(missing, _bezier(p0, p1, p2, max(2, int(2 * span / radius) + 1)), radius, r)
    return (~missing).to(torch.float64)


def load_mask(path: str | Path, height: int, width: int, invert: bool = False) -> Tensor:
    """Read a mask image: nonzero = observed, 0 = missing (``invert=True`` flips that).

    The first channel of the grayscale conversion is used; the mask is resized to ``height × width`` with
    nearest-neighbour sampling so it stays binary.

    Returns:
        (H, W) float64 mask, 1 = observed.

    Raises:
        FileNotFoundError: when ``path`` does not exist.
    """
    with Image.open(path) as img:
        arr = np.asarray(img.convert("L"), dtype=np.float64)
    m = torch.from_numpy(arr > 0).to(torch.float64)[None, None]
    if m.shape[-2:] != (height, width):
        m = F.interpolate(m, size=(height, width), mode="nearest-exact")
    m = m[0, 0]
    return 1.0 - m if invert else m


def fill_missing(x: Tensor, mask: Tensor, fill: float) -> Tensor:
    """``x`` where observed, ``fill`` where missing; ``mask`` broadcasts over channels."""
    m = mask.to(dtype=x.dtype, device=x.device)
    return x * m + fill * (1.0 - m)
