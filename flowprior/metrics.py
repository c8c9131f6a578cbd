"""Full-reference image quality: PSNR, SSIM and MS-SSIM, with the conventions stated once, here.

Conventions (all three metrics):

* Inputs are float tensors (B, C, H, W) with values in [0, 1]; data range 1.0. They are not clipped or
  quantized here: pass what you would save (``flowprior.io`` quantizes on write, so metrics on files read back
  measure exactly what was written).
* Computed on the channels given: RGB for colour images (no conversion to luma Y), the single channel for
  grayscale. Reference and test must have the same shape. Alpha is not part of the comparison.
* ``border`` removes that many pixels from *each* side before measuring (as super-resolution papers do for the
  scale factor).
* Computed in float64 on the input's device; results have shape (B,), one value per image.

PSNR is ``10 log10(1 / MSE)`` with the MSE over all channels and pixels of an image; identical images give +inf.

SSIM follows Wang et al. (2004): Gaussian window of 11 taps with sigma 1.5, K1 = 0.01, K2 = 0.03, means and
(population) variances from the window, the SSIM map averaged over the valid region (no padding: 5 pixels are
lost on each side) and then over channels. This equals ``skimage.metrics.structural_similarity(...,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` (checked in the tests).

MS-SSIM follows Wang et al. (2003) with the standard five scales and weights (0.0448, 0.2856, 0.3001, 0.2363,
0.1333): contrast-structure terms (negative values clipped to 0) at the four finer scales, SSIM at the coarsest,
2x2 average pooling between scales. As in ``pytorch_msssim``, an odd side is zero-padded by one pixel on both
sides before pooling (the padding counts in the average); sides divisible by 16 never need it. Five scales need
both sides larger than 160 pixels (after the border crop); smaller images raise ``ValueError`` rather than
silently using fewer scales, whose values would not be comparable with published numbers.

SSIM and MS-SSIM are computed by ``pytorch_msssim`` with a float64 Gaussian window built here.
"""

from __future__ import annotations

import os

import torch
from pytorch_msssim import ms_ssim as _ms_ssim
from pytorch_msssim import ssim as _ssim
from torch import Tensor

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
MS_SSIM_MIN_SIDE = (WINDOW_SIZE - 1) * 2**4 + 1  # 161: the coarsest of 5 scales must still fit one window


def _prepare(reference: Tensor, test: Tensor, border: int) -> tuple[Tensor, Tensor]:
    if reference.shape != test.shape:
        raise ValueError(
            f"reference and test differ in shape: {tuple(reference.shape)} vs {tuple(test.shape)}"
        )
    if reference.dim() != 4:
        raise ValueError(f"expected (B, C, H, W) images, got shape {tuple(reference.shape)}")
    h, w = reference.shape[-2:]
    if border < 0 or 2 * border >= min(h, w):
        raise ValueError(f"border {border} must be >= 0 and leave pixels of a {h}x{w} image")
    if border:
        reference = reference[..., border : h - border, border : w - border]
        test = test[..., border : h - border, border : w - border]
    return reference.to(torch.float64), test.to(torch.float64)


def _window(x: Tensor) -> Tensor:
    # Built here in float64: pytorch_msssim's own window is float32, which alone moves SSIM by ~5e-6.
    offsets = torch.arange(WINDOW_SIZE, dtype=torch.float64, device=x.device) - WINDOW_SIZE // 2
    taps = torch.exp(-(offsets**2) / (2 * WINDOW_SIGMA**2))
    return (taps / taps.sum()).view(1, 1, 1, WINDOW_SIZE).repeat(x.shape[1], 1, 1, 1)


def psnr(reference: Tensor, test: Tensor, *, border: int = 0) -> Tensor:
    """Peak signal-to-noise ratio in dB, data range 1.

    Args:
        reference: (B, C, H, W) in [0, 1].
        test: same shape.
        border: pixels removed from each side first.

    Returns:
        (B,) float64; +inf where the images are identical.

    Example:
        >>> round(psnr(torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)).item(), 4)
        6.0206
    """
    x, y = _prepare(reference, test, border)
    mse = (x - y).square().flatten(1).mean(1)
    return -10.0 * torch.log10(mse)


def ssim(reference: Tensor, test: Tensor, *, border: int = 0) -> Tensor:
    """Structural similarity (Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03), data range 1.

    Args:
        reference: (B, C, H, W) in [0, 1]; both sides at least 11 pixels after the border crop.
        test: same shape.
        border: pixels removed from each side first.

    Returns:
        (B,) float64, the mean over the valid region and the channels.
    """
    x, y = _prepare(reference, test, border)
    if min(x.shape[-2:]) < WINDOW_SIZE:
        size = f"{x.shape[-2]}x{x.shape[-1]}"
        raise ValueError(f"SSIM needs images of at least {WINDOW_SIZE}x{WINDOW_SIZE} pixels, got {size}")
    return _ssim(x, y, data_range=1.0, size_average=False, win=_window(x), K=(K1, K2))


def ms_ssim(reference: Tensor, test: Tensor, *, border: int = 0) -> Tensor:
    """Multi-scale SSIM with the standard 5 scales and weights, data range 1.

    Args:
        reference: (B, C, H, W) in [0, 1]; both sides at least 161 pixels after the border crop.
        test: same shape.
        border: pixels removed from each side first.

    Returns:
        (B,) float64.

    Raises:
        ValueError: for images too small for five scales (see the module docstring).
    """
    x, y = _prepare(reference, test, border)
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIDE:
        size = f"{x.shape[-2]}x{x.shape[-1]}"
        raise ValueError(f"MS-SSIM (5 scales) needs both sides >= {MS_SSIM_MIN_SIDE} pixels, got {size}")
    return _ms_ssim(x, y, data_range=1.0, size_average=False, win=_window(x), K=(K1, K2))


def compare_files(reference: str | os.PathLike, test: str | os.PathLike, *, border: int = 0) -> dict:
    """PSNR, SSIM and MS-SSIM between two image files (colour channels only; alpha ignored).

    Returns:
        ``{"psnr": float, "ssim": float, "ms_ssim": float | None, "ms_ssim_note": str | None, "border": int,
        "shape": [C, H, W]}``; ``ms_ssim`` is None (with the reason in ``ms_ssim_note``) for images too small for
        five scales. PSNR may be ``math.inf``.

    Raises:
        ImageReadError: a file cannot be read.
        ValueError: the images differ in size or channels, or the border is too large.
    """
    from flowprior.io import read_image

    ref, out = read_image(reference).pixels, read_image(test).pixels
    if ref.shape != out.shape:
        raise ValueError(
            f"{os.fspath(reference)} is {_describe(ref)} but {os.fspath(test)} is {_describe(out)}"
        )
    result = {
        "psnr": float(psnr(ref, out, border=border)[0]),
        "ssim": float(ssim(ref, out, border=border)[0]),
        "ms_ssim": None,
        "ms_ssim_note": None,
        "border": border,
        "shape": list(ref.shape[1:]),
    }
    try:
        result["ms_ssim"] = float(ms_ssim(ref, out, border=border)[0])
    except ValueError as error:
        result["ms_ssim_note"] = str(error)
    return result


def _describe(pixels: Tensor) -> str:
    kind = "grayscale" if pixels.shape[1] == 1 else "RGB"
    return f"{pixels.shape[-1]}x{pixels.shape[-2]} {kind}"
