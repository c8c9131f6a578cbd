"""What reading gives: a decoded :class:`Image` with the metadata to write it back, or a :class:`Header`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from flowprior.io.quantize import from_uint


class ImageReadError(ValueError):
    """A file that is missing, empty, truncated or not a supported image. The message names the path."""


@dataclass
class Image:
    """A decoded image and the metadata needed to write it back faithfully.

    Attributes:
        pixels: float32 (1, C, H, W) in [0, 1], C = 1 (grayscale) or 3 (RGB), upright (EXIF orientation applied);
            None when read with ``lazy=True`` (use :meth:`rows`).
        alpha: float32 (1, 1, H, W) in [0, 1], or None (also when lazy: see :attr:`has_alpha`, :meth:`alpha_rows`).
        bit_depth: 8 or 16, the sample depth of the file.
        mode: the Pillow mode of the file as stored (e.g. ``"RGB"``, ``"I;16"``, ``"P"``, ``"CMYK"``).
        icc_profile: the embedded ICC profile bytes, or None.
        exif: EXIF bytes (``b"Exif\\0\\0"`` + TIFF blob, orientation reset to 1), or None.
        format: the Pillow format name (``"PNG"``, ``"JPEG"``, ``"MPO"``, ``"TIFF"``, ``"WEBP"``, ``"BMP"``).
        path: where it was read from.
        samples: lazy reads only: the decoded (H, W, C [+ 1 alpha]) uint8/uint16 samples, upright.
        dpi: (horizontal, vertical) pixels per inch as stored (PNG pHYs, JFIF/EXIF, TIFF resolution), or None.
        truncated: the file's data ended early and was read anyway (``accept_truncated``); missing rows are black.
    """

    pixels: Tensor | None
    alpha: Tensor | None
    bit_depth: int
    mode: str
    icc_profile: bytes | None
    exif: bytes | None
    format: str
    path: Path
    samples: np.ndarray | None = None
    dpi: tuple[float, float] | None = None
    truncated: bool = False

    @property
    def channels(self) -> int:
        """Colour channels: 1 or 3."""
        return self.pixels.shape[1] if self.pixels is not None else self.samples.shape[2] - self.has_alpha

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return tuple(self.pixels.shape[-2:]) if self.pixels is not None else self.samples.shape[:2]

    @property
    def has_alpha(self) -> bool:
        if self.samples is not None:
            return self.samples.shape[2] in (2, 4)
        return self.alpha is not None

    def rows(self, start: int, stop: int) -> Tensor:
        """float32 (1, C, stop - start, W): the same values as ``pixels[..., start:stop, :]``."""
        if self.pixels is not None:
            return self.pixels[..., start:stop, :]
        return float_planes(self.samples[start:stop, :, : self.channels])

    def alpha_rows(self, start: int, stop: int) -> Tensor | None:
        """float32 (1, 1, stop - start, W) or None: the same values as ``alpha[..., start:stop, :]``."""
        if self.samples is None:
            return None if self.alpha is None else self.alpha[..., start:stop, :]
        return float_planes(self.samples[start:stop, :, self.channels :]) if self.has_alpha else None


def float_planes(samples: np.ndarray) -> Tensor:
    """(h, W, c) uint samples -> float32 (1, c, h, W) in [0, 1]."""
    return from_uint(samples).permute(2, 0, 1).unsqueeze(0).contiguous()


@dataclass(frozen=True)
class Header:
    """What a file's header says, before decoding: the upright size, the channels the decode gives, bit depth."""

    height: int
    width: int
    channels: int  # colour channels, 1 or 3
    alpha: bool
    bit_depth: int
