"""Colour of toned prints: YCbCr (BT.601 full range), the toning curve, and luminance-only restoration.

A toned or monochrome print (sepia, selenium, cyanotype, a gray scan saved as RGB) has a hue that depends on its
luminance alone; :func:`chroma_residual` measures how far an image is from that, and :func:`recombine_chroma`
rebuilds RGB from a restored luminance and the input's chroma. ``restore_file`` (``chroma``) uses both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

CHROMA_MODES = ("auto", "keep", "restore")
#: ``auto`` keeps chroma below this RMS distance of 8x8-block chroma from the toning curve ([0, 1] units). Measured
#: (docs/batch.md): sepia versions of six scikit-image photos 0.003, with noise sigma 10 0.006, sigma 25 <= 0.0115;
#: the colour originals >= 0.015 (a mostly black deep-field image), 0.03-0.08 for ordinary photos.
TONED_THRESHOLD = 0.0125


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) RGB -> (B, 3, H, W) Y, Cb, Cr, BT.601 full range with Cb, Cr centred on 0 (float64)."""
    r, g, b = rgb.double().unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    return torch.stack([y, (b - y) / 1.772, (r - y) / 1.402], 1)


def ycbcr_to_rgb(ycc: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (float64, not clamped)."""
    y, cb, cr = ycc.double().unbind(1)
    r, b = y + 1.402 * cr, y + 1.772 * cb
    return torch.stack([r, (y - 0.299 * r - 0.114 * b) / 0.587, b], 1)


#: ``read(y0, y1)`` -> (1, 3, y1 - y0, W): rows of an RGB image (a tensor's slices, or rows decoded on demand).
RowReader = Callable[[int, int], Tensor]


@dataclass
class ToningFit:
    """Block-mean Y, Cb, Cr of the observed 8x8 blocks, each block's luminance bin, and the toning curve (mean Cb, Cr
    per bin; ``filled``: bins with blocks)."""

    ycc: Tensor
    index: Tensor
    curve: Tensor
    filled: Tensor

    def residual(self) -> float:
        """RMS distance of the blocks' (Cb, Cr) from the curve (see :func:`chroma_residual`)."""
        if self.ycc.shape[0] == 0:
            return 0.0
        return float((self.ycc[:, 1:] - self.curve[self.index]).pow(2).sum(1).mean().sqrt())


def toning_fit(rgb: Tensor | RowReader, mask: Tensor | None = None, size: tuple[int, int] | None = None,
               block: int = 8, bins: int = 32) -> ToningFit:
    """Fit the toning curve of an RGB image: a (1, 3, H, W) tensor, or ``read(y0, y1)`` rows of one of ``size``.

    The 8x8 block means are taken in bands of whole blocks, so a reader never needs the whole image as floats; the
    result is the same as on the whole tensor.
    """
    if isinstance(rgb, Tensor):
        size, image = tuple(rgb.shape[-2:]), rgb
        rgb = lambda y0, y1: image[..., y0:y1, :]
    height, width = size
    k = min(block, height, width)
    band = k * max(1, (1 << 20) // (k * width))  # about 1 M pixels per band
    pooled = []
    for y0 in range(0, height // k * k, band):
        y1 = min(y0 + band, height // k * k)
        rows = rgb(y0, y1)
        weight = torch.ones_like(rows[:, :1]) if mask is None else mask[..., y0:y1, :].to(rows.dtype)
        pooled.append(torch.nn.functional.avg_pool2d(torch.cat([rows * weight, weight], 1), k))  # noise averages out
    pooled = torch.cat(pooled, 2)
    known = pooled[:, 3] > 1e-6
    ycc = rgb_to_ycbcr(pooled[:, :3] / pooled[:, 3:].clamp(min=1e-6)).permute(0, 2, 3, 1)[known]  # (N, 3)
    index = (ycc[:, 0].clamp(0, 1) * (bins - 1)).round().long()
    counts = torch.bincount(index, minlength=bins).double()
    curve = torch.stack([torch.bincount(index, ycc[:, c], minlength=bins) for c in (1, 2)], 1)
    curve = curve / counts.clamp(min=1)[:, None]
    return ToningFit(ycc, index, curve, counts > 0)


def chroma_residual(rgb: Tensor | RowReader, mask: Tensor | None = None, size: tuple[int, int] | None = None) -> float:
    """How far an RGB image is from a toned monochrome: RMS distance of its chroma from its toning curve.

    The image is averaged over 8x8 blocks first (so noise and JPEG chroma artefacts weigh little), converted to
    YCbCr, and each block's (Cb, Cr) is compared with the mean (Cb, Cr) of its luminance bin (32 bins). A sepia or
    gray print, whose hue depends on luminance alone, scores near 0; colour photos score well above
    :data:`TONED_THRESHOLD`.

    Args:
        rgb: (1, 3, H, W) in [0, 1], or a row reader of an image of ``size`` (H, W).
        mask: (1, 1, H, W), 1 = observed, or None.
    """
    return toning_fit(rgb, mask, size).residual()


def recombine_chroma(y_restored: Tensor, rgb_in: Tensor, mask: Tensor | None, fit: ToningFit | None = None) -> Tensor:
    """RGB from a restored luminance (1, 1, H, W) and the input's chroma; masked pixels use the toning curve.

    ``fit``: the toning curve of the whole image when ``rgb_in`` is a band of its rows (default: fitted on
    ``rgb_in``). Per pixel otherwise, so bands of rows give the same result as the whole image.
    """
    ycc = rgb_to_ycbcr(rgb_in)
    if mask is not None and bool((mask < 0.5).any()):
        fit = fit or toning_fit(rgb_in, mask)
        centres = torch.linspace(0, 1, fit.curve.shape[0], dtype=torch.float64)[fit.filled]
        y = y_restored[0, 0].double().clamp(0, 1).flatten().numpy()
        for c in (1, 2):
            from_curve = torch.from_numpy(np.interp(y, centres.numpy(), fit.curve[fit.filled, c - 1].numpy()))
            ycc[0, c] = torch.where(mask[0, 0] > 0.5, ycc[0, c], from_curve.reshape(ycc.shape[-2:]))
    ycc[:, :1] = y_restored.double()
    return ycbcr_to_rgb(ycc).clamp(0, 1).to(y_restored.dtype)
