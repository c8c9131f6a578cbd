"""Samples ↔ floats: ``q = round(clip(x, 0, 1) * (2**b - 1))`` with ties to even (in float64), ``x = q / (2**b - 1)``."""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor


def to_uint(pixels: Tensor, bit_depth: int = 8) -> np.ndarray:
    """Quantize [0, 1] floats to uint8/uint16: ``round(clip(x, 0, 1) * (2**bit_depth - 1))``, ties to even.

    Args:
        pixels: any shape; values outside [0, 1] are clipped.
        bit_depth: 8 or 16.

    Returns:
        A numpy array of the same shape, dtype uint8 or uint16.

    Raises:
        ValueError: for another bit depth or NaN values.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16, got {bit_depth}")
    x = pixels.detach().to("cpu", torch.float64, copy=True).numpy()
    if np.isnan(x).any():
        raise ValueError("cannot quantize pixels that contain NaN")
    np.clip(x, 0.0, 1.0, out=x)  # in place: one float64 copy of the pixels, not four
    x *= float(2**bit_depth - 1)
    return np.rint(x, out=x).astype(np.uint8 if bit_depth == 8 else np.uint16)


def from_uint(array: np.ndarray) -> Tensor:
    """uint8/uint16 array → float32 tensor ``q / (2**b - 1)`` (b from the dtype), same shape. Inverse of to_uint."""
    if array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 array, got {array.dtype}")
    return torch.from_numpy(_levels(array.dtype)[array])  # a table of q / (2**b - 1): no float64 copy


@functools.cache
def _levels(dtype: np.dtype) -> np.ndarray:
    """float32 ``q / (2**b - 1)`` (divided in float64, then rounded) for every level q of the dtype."""
    top = np.iinfo(dtype).max
    return (np.arange(top + 1, dtype=np.float64) / float(top)).astype(np.float32)


def to_hwc(pixels: Tensor, alpha: Tensor | None, bit_depth: int) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) pixels [+ (1, 1, H, W) alpha] in [0, 1] -> (H, W, C [+ 1]) uint samples."""
    pixels = pixels[0] if pixels.dim() == 4 and pixels.shape[0] == 1 else pixels
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise ValueError(
            f"pixels must be (1, C, H, W) or (C, H, W) with C = 1 or 3, got {tuple(pixels.shape)}"
        )
    planes = [pixels]
    if alpha is not None:
        alpha = alpha[0] if alpha.dim() == 4 and alpha.shape[0] == 1 else alpha
        if tuple(alpha.shape) != (1, *pixels.shape[1:]):
            raise ValueError(f"alpha must be (1, 1, H, W) matching the pixels, got {tuple(alpha.shape)}")
        planes.append(alpha.to(pixels.device))
    return np.ascontiguousarray(to_uint(torch.cat(planes), bit_depth).transpose(1, 2, 0))
