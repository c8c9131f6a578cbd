"""Shared plumbing of the estimators: images as float64 planes on the 0–255 scale, luma, and 8×8 block DCTs.

Every estimator takes what :func:`as_planes` accepts — a (1, C, H, W) or (C, H, W) tensor in [0, 1]
(flowprior's convention, 16-bit files included: they are already scaled to [0, 1]) or an (H, W[, C]) numpy
array (uint8, uint16 or float in [0, 1]) — so the 8-bit JPEG lattice and the noise scale are the same
whatever the source.
"""

from __future__ import annotations

import math

import numpy as np
import torch

#: ITU-R BT.601 / JFIF luma weights (the JPEG encoder's Y).
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114])
#: std of the luma of iid per-channel noise, relative to the per-channel std: ‖LUMA_WEIGHTS‖₂.
LUMA_NOISE_GAIN = float(np.linalg.norm(LUMA_WEIGHTS))
BLOCK = 8


def as_planes(image: object) -> np.ndarray:
    """(H, W, C) float64 on the 0–255 scale with C = 1 (gray) or 3 (RGB); alpha is dropped; NaN/inf become 0.

    Raises:
        ValueError: for shapes that are not an image, channel counts other than 1–4, or an empty image.
    """
    if isinstance(image, torch.Tensor):
        arr = image.detach().to("cpu", torch.float64).numpy()
        if arr.ndim == 4:
            if arr.shape[0] != 1:
                raise ValueError(f"expected one image (1, C, H, W), got a batch of shape {arr.shape}")
            arr = arr[0]
        if arr.ndim != 3:
            raise ValueError(f"expected a (C, H, W) or (1, C, H, W) tensor, got shape {tuple(image.shape)}")
        arr = np.moveaxis(arr, 0, -1) * 255.0
    else:
        raw = np.asarray(image)
        if raw.dtype == np.uint16:
            arr = raw.astype(np.float64) * (255.0 / 65535.0)
        elif raw.dtype == np.uint8 or raw.dtype.kind in "iu":
            arr = raw.astype(np.float64)
        else:
            arr = raw.astype(np.float64) * 255.0
        if arr.ndim == 2:
            arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected a gray, gray+alpha, RGB or RGBA image, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"the image is empty (shape {arr.shape})")
    colour = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., :1]
    return np.nan_to_num(colour, nan=0.0, posinf=255.0, neginf=0.0).clip(0.0, 255.0)


def luma(planes: np.ndarray) -> np.ndarray:
    """(H, W) luma of (H, W, C) planes: the JFIF Y for RGB, the plane itself for gray."""
    return planes[..., 0] if planes.shape[-1] == 1 else planes @ LUMA_WEIGHTS


def dct_matrix() -> np.ndarray:
    """Orthonormal 8-point DCT-II (JPEG's FDCT normalization): block coefficients are ``D @ X @ D.T``."""
    k = np.arange(BLOCK)
    d = np.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * BLOCK)) * math.sqrt(2.0 / BLOCK)
    d[0] /= math.sqrt(2.0)
    return d


_DCT = dct_matrix()


def block_dct(plane: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """DCT of the whole 8×8 blocks of ``plane`` on the grid starting at ``offset`` (row, col).

    Returns:
        (rows, cols, 8, 8) coefficients of ``plane − 128`` (JPEG's level shift); empty when no block fits.
    """
    oy, ox = offset
    h = (plane.shape[0] - oy) // BLOCK * BLOCK
    w = (plane.shape[1] - ox) // BLOCK * BLOCK
    if h <= 0 or w <= 0:
        return np.zeros((0, 0, BLOCK, BLOCK))
    crop = plane[oy : oy + h, ox : ox + w] - 128.0
    blocks = crop.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(0, 2, 1, 3)
    return _DCT @ blocks @ _DCT.T


def block_means(planes: np.ndarray, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(rows, cols, C) mean of each channel over the blocks :func:`block_dct` uses."""
    oy, ox = offset
    h = (planes.shape[0] - oy) // BLOCK * BLOCK
    w = (planes.shape[1] - ox) // BLOCK * BLOCK
    crop = planes[oy : oy + h, ox : ox + w]
    return crop.reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, -1).mean(axis=(1, 3))
