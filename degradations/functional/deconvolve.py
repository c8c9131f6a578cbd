"""Closed-form inverses of the linear operators, for warm starts: Wiener deconvolution of a known blur and
back-projection onto the observation of a downsampling.

Wiener (:func:`wiener_deconvolve`). The blur of :mod:`degradations.functional.blur` extends the image by symmetric
reflection (``dcb|abcd|dcb``). Reflecting the observation the same way in both axes gives a periodic image of
period ``2n - 2`` whose DFT diagonalizes that blur exactly for kernels that are symmetric under each axis flip
(Gaussian, disk) and nearly for the others (a slanted motion segment): no wrap-around seam, so no ringing from the
borders and no taper is needed. Natural images have a power spectrum close to ``A / |ω|²``, so the Wiener filter's
regularizer is ``σ² |D(ω)|² / A`` with ``D`` the finite-difference gradient: a Tikhonov deconvolution on the
gradient whose weight follows the declared noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from degradations.functional.resize import upsample

#: the std of 8-bit rounding on the [0, 1] scale: a stored observation carries it even when declared noise-free
ROUNDING_STD = (1.0 / 12.0) ** 0.5 / 255.0


def mirror_extend(x: Tensor) -> Tensor:
    """(..., H, W) -> (..., 2H - 2, 2W - 2): the even periodic extension that the blur's reflect boundary implies
    (an axis of length 1 is kept as it is)."""
    for dim in (-2, -1):
        n = x.shape[dim]
        if n > 2:
            x = torch.cat([x, x.flip(dim).narrow(dim, 1, n - 2)], dim=dim)
    return x


def kernel_spectrum(kernel: Tensor, height: int, width: int) -> Tensor:
    """(B, k, k) kernels -> (B, height, width // 2 + 1) complex DFT of the kernel centred at the origin."""
    b, k = kernel.shape[0], kernel.shape[-1]
    if k > height or k > width:  # a kernel wider than the periodic image wraps onto itself; crop it (tiny images)
        keep = min(height, width) // 2 * 2 - 1
        cut = (k - keep) // 2
        kernel, k = kernel[:, cut : cut + keep, cut : cut + keep], keep
    padded = kernel.new_zeros(b, height, width)
    padded[:, :k, :k] = kernel
    padded = padded.roll((-(k // 2), -(k // 2)), dims=(-2, -1))
    return torch.fft.rfft2(padded)


def gradient_spectrum(height: int, width: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """(height, width // 2 + 1) ``|D(ω)|²`` of the forward-difference gradient (sum over both axes)."""
    fy = torch.fft.fftfreq(height, dtype=dtype)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=dtype)[None, :]
    return 4 * torch.sin(math.pi * fy) ** 2 + 4 * torch.sin(math.pi * fx) ** 2


def wiener_filter(kernel: Tensor, noise_std: Tensor, height: int, width: int, signal: float) -> Tensor:
    """(B, height, width // 2 + 1) complex filter ``conj(K) / (|K|² + σ² |D|² / signal)`` per image.

    Args:
        kernel: (B, k, k) blur kernels.
        noise_std: (B,) noise std on the [0, 1] scale (floored at the 8-bit rounding's).
        height, width: the size of the (extended) image the filter is applied to.
        signal: ``A`` of the image prior's spectrum ``A / |ω|²``, the mean squared gradient of a natural image.
    """
    spectrum = kernel_spectrum(kernel.to(torch.float64), height, width)
    sigma = noise_std.to(torch.float64).reshape(-1, 1, 1).clamp(min=ROUNDING_STD)
    regularizer = sigma**2 / signal * gradient_spectrum(height, width)
    return spectrum.conj() / (spectrum.abs() ** 2 + regularizer)


def wiener_deconvolve(y: Tensor, kernel: Tensor, noise_std: Tensor, signal: float = 2e-3) -> Tensor:
    """Undo a known blur (reflect boundary) under additive noise of ``noise_std``: the Wiener estimate of x.

    Args:
        y: (B, C, H, W) blurred, noisy images.
        kernel: (B, k, k) the blur's kernels (``params["kernel"]`` of :class:`degradations.blur.Blur`).
        noise_std: (B,) noise std on the [0, 1] scale.
        signal: ``A`` of the natural-image spectrum ``A / |ω|²`` (chosen on validation crops, see the caller).

    Returns:
        (B, C, H, W) in y's dtype, not clamped.
    """
    h, w = y.shape[-2:]
    extended = mirror_extend(y.to(torch.float64))
    eh, ew = extended.shape[-2:]
    filt = wiener_filter(kernel, noise_std, eh, ew, signal)[:, None]
    x = torch.fft.irfft2(torch.fft.rfft2(extended) * filt, s=(eh, ew))
    return x[..., :h, :w].to(y.dtype)


def back_project(x: Tensor, y: Tensor, forward: Callable[[Tensor], Tensor], factor: int, steps: int,
                 step_size: float = 1.0) -> Tensor:
    """Iterative back-projection (Irani & Peleg): ``x ← x + step · up(y − forward(x))``, ``steps`` times.

    Each step moves ``x`` towards an image whose downsampling is the observation ``y`` while the bicubic
    back-projection keeps the correction smooth; with noise in ``y`` the steps fit the noise too, so the caller
    takes fewer.

    Args:
        x: (B, C, H, W) the estimate on the clean grid (H = h·factor).
        y: (B, C, h, w) the observation.
        forward: the downsampling (the operator's ``forward_model``).
    """
    for _ in range(steps):
        x = x + step_size * upsample(y - forward(x), factor)
    return x
