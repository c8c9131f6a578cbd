"""Downsampling by an integer factor, the standard super-resolution degradation.

Convention ("mod crop"): the image is first cropped at the bottom/right to a multiple of the factor, so every
low-resolution pixel covers exactly ``factor × factor`` high-resolution pixels and the output size is
``(H // factor, W // factor)``. ``"bicubic"`` is antialiased bicubic (Keys a = −0.5, kernel stretched by the
factor), the usual "bicubic ×s" of SR benchmarks; ``"area"`` is the box average. Both are linear in x.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

MODES = ("bicubic", "area")


def downsample(x: Tensor, factor: int, mode: str = "bicubic") -> Tensor:
    """Downsample (B, C, H, W) by an integer factor.

    Args:
        x: images, any floating dtype.
        factor: integer >= 1.
        mode: ``"bicubic"`` (antialiased) or ``"area"``.

    Returns:
        (B, C, H // factor, W // factor); bicubic may leave [0, 1] slightly (ringing), it is not clamped here.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    h, w = x.shape[-2] // factor, x.shape[-1] // factor
    if h < 1 or w < 1:
        raise ValueError(f"image {tuple(x.shape[-2:])} is smaller than the downsampling factor {factor}")
    if factor == 1:
        return x
    x = x[..., : h * factor, : w * factor]
    if mode == "area":
        return F.avg_pool2d(x, factor)
    return F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)


def upsample(y: Tensor, factor: int) -> Tensor:
    """(B, C, h, w) -> (B, C, h·factor, w·factor) by bicubic interpolation (Keys a = −0.75, torch's), pixel
    centres aligned as :func:`downsample` averages them: the classical inverse that super-resolution starts from.
    Not clamped."""
    if factor == 1:
        return y
    return F.interpolate(y, scale_factor=factor, mode="bicubic", align_corners=False)
