"""Colour of toned prints: YCbCr (BT.601 full range), the toning curve, and luminance-only restoration.

A toned or monochrome print (sepia, selenium, cyanotype, a gray scan saved as RGB) has a hue that depends on its
luminance alone; :func:`chroma_residual` measures how far an image is from that, and :func:`recombine_chroma`
rebuilds RGB from a restored luminance and the input's chroma. ``restore_file`` (``chroma``) uses both.
"""

from __future__ import annotations

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


def _toning_fit(rgb: Tensor, mask: Tensor | None, block: int = 8, bins: int = 32):
    """Block-mean Y, Cb, Cr of observed pixels, and the mean (Cb, Cr) per luminance bin (the toning curve)."""
    weight = torch.ones_like(rgb[:, :1]) if mask is None else mask.to(rgb.dtype)
    k = min(block, rgb.shape[-2], rgb.shape[-1])
    pooled = torch.nn.functional.avg_pool2d(torch.cat([rgb * weight, weight], 1), k)  # noise averages out
    known = pooled[:, 3] > 1e-6
    ycc = rgb_to_ycbcr(pooled[:, :3] / pooled[:, 3:].clamp(min=1e-6)).permute(0, 2, 3, 1)[known]  # (N, 3)
    index = (ycc[:, 0].clamp(0, 1) * (bins - 1)).round().long()
    counts = torch.bincount(index, minlength=bins).double()
    curve = torch.stack([torch.bincount(index, ycc[:, c], minlength=bins) for c in (1, 2)], 1)
    curve = curve / counts.clamp(min=1)[:, None]
    return ycc, index, curve, counts > 0


def chroma_residual(rgb: Tensor, mask: Tensor | None = None) -> float:
    """How far an RGB image is from a toned monochrome: RMS distance of its chroma from its toning curve.

    The image is averaged over 8x8 blocks first (so noise and JPEG chroma artefacts weigh little), converted to
    YCbCr, and each block's (Cb, Cr) is compared with the mean (Cb, Cr) of its luminance bin (32 bins). A sepia or
    gray print, whose hue depends on luminance alone, scores near 0; colour photos score well above
    :data:`TONED_THRESHOLD`.

    Args:
        rgb: (1, 3, H, W) in [0, 1].
        mask: (1, 1, H, W), 1 = observed, or None.
    """
    ycc, index, curve, _ = _toning_fit(rgb, mask)
    if ycc.shape[0] == 0:
        return 0.0
    return float((ycc[:, 1:] - curve[index]).pow(2).sum(1).mean().sqrt())


def recombine_chroma(y_restored: Tensor, rgb_in: Tensor, mask: Tensor | None) -> Tensor:
    """RGB from a restored luminance (1, 1, H, W) and the input's chroma; masked pixels use the toning curve."""
    ycc = rgb_to_ycbcr(rgb_in)
    if mask is not None and bool((mask < 0.5).any()):
        _, _, curve, filled = _toning_fit(rgb_in, mask)
        centres = torch.linspace(0, 1, curve.shape[0], dtype=torch.float64)[filled]
        y = y_restored[0, 0].double().clamp(0, 1).flatten().numpy()
        for c in (1, 2):
            from_curve = torch.from_numpy(np.interp(y, centres.numpy(), curve[filled, c - 1].numpy()))
            ycc[0, c] = torch.where(mask[0, 0] > 0.5, ycc[0, c], from_curve.reshape(ycc.shape[-2:]))
    ycc[:, :1] = y_restored.double()
    return ycbcr_to_rgb(ycc).clamp(0, 1).to(y_restored.dtype)
