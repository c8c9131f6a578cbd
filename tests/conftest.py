"""Shared, generic test fixtures: small natural images and seeded generators (CPU, fast).

``natural_image`` is a (1, 3, 64, 64) float32 crop of ``skimage.data.astronaut()`` (public domain, NASA) in
[0, 1]; ``make_natural_image(h, w, channels=3, dtype=torch.float32)`` gives other sizes (cropped from the
512 x 512 photo, grayscale as ITU-R BT.601 luma). Fixtures return fresh tensors, so tests may modify them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest
import torch


@functools.lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # (512, 512, 3) uint8


def natural_crop(
    height: int,
    width: int,
    channels: int = 3,
    dtype: torch.dtype = torch.float32,
    top: int = 40,
    left: int = 160,
) -> torch.Tensor:
    """A (1, C, H, W) crop of the astronaut photo in [0, 1] (C = 3 RGB or 1 luma), starting at (top, left)."""
    photo = _astronaut()
    if top + height > photo.shape[0] or left + width > photo.shape[1]:
        raise ValueError(f"a {height}x{width} crop at ({top}, {left}) does not fit the 512x512 photo")
    crop = torch.from_numpy(photo[top : top + height, left : left + width].astype(np.float64) / 255.0)
    crop = crop.permute(2, 0, 1).unsqueeze(0)
    if channels == 1:
        crop = (crop * torch.tensor([0.299, 0.587, 0.114], dtype=torch.float64).view(1, 3, 1, 1)).sum(1, True)
    elif channels != 3:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return crop.to(dtype).contiguous()


@pytest.fixture
def natural_image() -> torch.Tensor:
    """(1, 3, 64, 64) float32 crop of the astronaut photo (face and helmet: edges and texture) in [0, 1]."""
    return natural_crop(64, 64)


@pytest.fixture
def make_natural_image() -> Callable[..., torch.Tensor]:
    """Factory: ``make_natural_image(h, w, channels=3, dtype=torch.float32, top=40, left=160)``."""
    return natural_crop


@pytest.fixture
def generator() -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with 0."""
    return torch.Generator().manual_seed(0)
