"""The JPEG quantization constraint: the clean image's DCT coefficients lie in the bins the decoded file names.

A decoded JPEG ``y`` says, for every 8x8 block and frequency, ``round(c / Q) = k``: the original coefficient ``c``
lay in ``[(k − ½)Q, (k + ½)Q]``. Those bins are a box in coefficient space that contains the original image, so
clipping an estimate's coefficients into it (a projection onto a convex set that holds the truth) can only bring
the estimate closer to the original in that space: a restoration consistent with the file, and one that cannot
drift from it (light JPEG damage is never made worse).

``k`` is re-derived from the decoded pixels (their DCT divided by the table, rounded). The decoder's integer
rounding and libjpeg's integer DCT put the re-derived coefficient up to about one unit off ``kQ``, so every bin is
widened by ``margin`` (0–255 scale) to keep the original inside it. With 4:2:0 chroma the constraint holds on the
2x2-averaged chroma grid: the correction found there is upsampled (bilinear) and added at full resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from degradations.functional.jpeg import dct_matrix, rgb_to_ycbcr, ycbcr_to_rgb


def _blocks(plane: Tensor) -> Tensor:
    """(B, H, W) with H, W multiples of 8 -> (B, H/8, W/8, 8, 8) DCT coefficients."""
    b, h, w = plane.shape
    d = dct_matrix(8, plane.dtype, plane.device)
    return d @ plane.reshape(b, h // 8, 8, w // 8, 8).transpose(2, 3) @ d.T


def _unblocks(coef: Tensor) -> Tensor:
    b, nh, nw = coef.shape[:3]
    d = dct_matrix(8, coef.dtype, coef.device)
    return (d.T @ coef @ d).transpose(2, 3).reshape(b, nh * 8, nw * 8)


def clip_plane_to_bins(estimate: Tensor, observed: Tensor, table: Tensor, margin: float) -> Tensor:
    """Clip the DCT coefficients of (B, H, W) ``estimate`` into the bins of ``observed`` (edge-padded to 8)."""
    h, w = estimate.shape[-2:]
    pad = (0, -w % 8, 0, -h % 8)
    est = F.pad(estimate[:, None], pad, mode="replicate")[:, 0]
    obs = F.pad(observed[:, None], pad, mode="replicate")[:, 0]
    q = table.to(estimate.dtype).reshape(-1, 1, 1, 8, 8)
    k = torch.round(_blocks(obs) / q)
    coef = torch.minimum(torch.maximum(_blocks(est), (k - 0.5) * q - margin), (k + 0.5) * q + margin)
    return _unblocks(coef)[:, :h, :w]


def project_to_bins(estimate: Tensor, observed: Tensor, luma_table: Tensor, chroma_table: Tensor,
                    subsampling: str = "420", margin: float = 1.0) -> Tensor:
    """The estimate made consistent with the decoded JPEG ``observed``.

    Args:
        estimate, observed: (B, 3, H, W) RGB or (B, 1, H, W) gray in [0, 1].
        luma_table, chroma_table: (B, 8, 8) quantization tables (the file's own, or a quality's).
        subsampling: ``"420"`` or ``"444"``, as the file was coded.
        margin: widening of every bin on the 0–255 scale (see the module docstring).

    Returns:
        A new tensor shaped like ``estimate`` (the inputs are not modified), clamped to [0, 1].
    """
    est, obs = estimate.double() * 255.0, observed.double() * 255.0
    if est.shape[1] == 1:
        out = clip_plane_to_bins(est[:, 0] - 128, obs[:, 0] - 128, luma_table, margin)[:, None] + 128
        return (out / 255.0).clamp(0, 1).to(estimate.dtype)
    e, o = rgb_to_ycbcr(est) - 128.0, rgb_to_ycbcr(obs) - 128.0
    luma = clip_plane_to_bins(e[:, 0], o[:, 0], luma_table, margin)
    chroma_e, chroma_o = e[:, 1:], o[:, 1:]
    if subsampling == "420":
        chroma_e, chroma_o = F.avg_pool2d(chroma_e, 2, ceil_mode=True), F.avg_pool2d(chroma_o, 2, ceil_mode=True)
    b, _, ch, cw = chroma_e.shape
    tables = chroma_table.repeat_interleave(2, 0)
    clipped = clip_plane_to_bins(chroma_e.reshape(b * 2, ch, cw), chroma_o.reshape(b * 2, ch, cw), tables, margin)
    correction = clipped.reshape(b, 2, ch, cw) - chroma_e
    if subsampling == "420":
        correction = F.interpolate(correction, scale_factor=2, mode="bilinear", align_corners=False)
    chroma = e[:, 1:] + correction[..., : e.shape[-2], : e.shape[-1]]
    out = ycbcr_to_rgb(torch.cat([luma[:, None], chroma], dim=1) + 128.0)
    return (out / 255.0).clamp(0, 1).to(estimate.dtype)
