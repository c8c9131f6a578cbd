"""Blur kernels and a per-sample convolution with an explicit adjoint.

Boundary convention: the image is extended by *symmetric reflection* (``dcb|abcd|dcb``, no edge repetition, as
``torch``'s ``"reflect"`` padding, but valid for any pad width), then convolved "valid", so the output has the input's
size and borders are not darkened. Both steps are linear; :func:`blur_adjoint` is their exact adjoint (transposed
convolution, then folding the padded border back onto the pixels it was reflected from).

Kernels are (B, k, k) float64 with odd ``k``, sum to 1 and are applied as a true convolution (flipped).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def reflect_indices(n: int, pad: int, device: torch.device | None = None) -> Tensor:
    """Indices into a length-``n`` axis for reflect padding by ``pad`` on both sides (any ``pad``, ``n >= 1``)."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i < n, i, period - i)


def _pad(x: Tensor, pad: int) -> Tensor:
    h, w = x.shape[-2:]
    x = x.index_select(-2, reflect_indices(h, pad, x.device))
    return x.index_select(-1, reflect_indices(w, pad, x.device))


def _pad_adjoint(y: Tensor, pad: int) -> Tensor:
    hp, wp = y.shape[-2:]
    h, w = hp - 2 * pad, wp - 2 * pad
    out = y.new_zeros(*y.shape[:-1], w).index_add(-1, reflect_indices(w, pad, y.device), y)
    return out.new_zeros(*y.shape[:-2], h, w).index_add(-2, reflect_indices(h, pad, y.device), out)


def _weights(kernel: Tensor, channels: int, like: Tensor) -> Tensor:
    # conv2d correlates; flip the kernel so the operation is a convolution.
    k = kernel.to(dtype=like.dtype, device=like.device).flip(-1, -2)
    return k.repeat_interleave(channels, dim=0)[:, None]


def blur(x: Tensor, kernel: Tensor) -> Tensor:
    """Convolve each image with its own kernel, reflect boundary, same output size.

    Args:
        x: (B, C, H, W).
        kernel: (B, k, k) with odd ``k``.

    Returns:
        (B, C, H, W).
    """
    b, c, h, w = x.shape
    pad = kernel.shape[-1] // 2
    xp = _pad(x, pad).reshape(1, b * c, h + 2 * pad, w + 2 * pad)
    return F.conv2d(xp, _weights(kernel, c, x), groups=b * c).reshape(b, c, h, w)


def blur_adjoint(y: Tensor, kernel: Tensor) -> Tensor:
    """Exact adjoint of :func:`blur` for the same kernels: ``<blur(x), y> == <x, blur_adjoint(y)>``."""
    b, c, h, w = y.shape
    pad = kernel.shape[-1] // 2
    full = F.conv_transpose2d(y.reshape(1, b * c, h, w), _weights(kernel, c, y), groups=b * c)
    return _pad_adjoint(full.reshape(b, c, h + 2 * pad, w + 2 * pad), pad)


def gaussian_kernel(sigma: float, size: int | None = None) -> Tensor:
    """Isotropic Gaussian sampled at pixel centers, normalized; default size ``2·ceil(3σ) + 1``; σ=0 → delta."""
    size = size or 2 * math.ceil(3 * sigma) + 1
    r = torch.arange(size, dtype=torch.float64) - size // 2
    if sigma <= 0:
        g = (r == 0).to(torch.float64)
    else:
        g = torch.exp(-(r**2) / (2 * sigma**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


def _supersampled(size: int, inside, factor: int = 8) -> Tensor:
    # Average an indicator over factor x factor sub-pixel positions: antialiased, exact in the limit.
    offs = (torch.arange(factor, dtype=torch.float64) + 0.5) / factor - 0.5
    c = torch.arange(size, dtype=torch.float64) - size // 2
    fine = (c[:, None] + offs[None, :]).reshape(-1)
    cover = inside(fine[:, None], fine[None, :]).to(torch.float64)
    return cover.reshape(size, factor, size, factor).mean(dim=(1, 3))


def disk_kernel(radius: float) -> Tensor:
    """Uniform disk (defocus) of the given radius in pixels, antialiased by supersampling, normalized."""
    size = 2 * math.ceil(radius) + 1
    k = _supersampled(size, lambda yy, xx: yy**2 + xx**2 <= max(radius, 1e-6) ** 2)
    if k.sum() == 0:
        k[size // 2, size // 2] = 1.0
    return k / k.sum()


def motion_kernel(length: float, angle: float) -> Tensor:
    """Linear motion blur: a segment of ``length`` pixels at ``angle`` degrees (counter-clockwise from +x).

    The segment is centered on the kernel center and rasterized one pixel thick by supersampling,
    normalized; ``length <= 1`` gives (nearly) a delta.
    """
    half = max(length, 1.0) / 2.0
    size = 2 * math.ceil(half) + 1
    theta = math.radians(angle)
    dx, dy = math.cos(theta), -math.sin(theta)  # image rows grow downwards

    def inside(yy: Tensor, xx: Tensor) -> Tensor:
        along = xx * dx + yy * dy
        across = -xx * dy + yy * dx
        return (along.abs() <= half) & (across.abs() <= 0.5)

    k = _supersampled(size, inside)
    return k / k.sum()


def stack_kernels(kernels: list[Tensor]) -> Tensor:
    """Zero-pad kernels of different odd sizes to the largest and stack them: (B, k, k)."""
    size = max(k.shape[-1] for k in kernels)
    out = []
    for k in kernels:
        p = (size - k.shape[-1]) // 2
        out.append(F.pad(k, (p, p, p, p)))
    return torch.stack(out)
