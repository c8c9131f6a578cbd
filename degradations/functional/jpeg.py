"""JPEG: the real codec (Pillow/libjpeg) and a differentiable DCT-domain surrogate of it.

The surrogate follows the baseline JPEG pipeline step by step, on the 0–255 scale:

1. edge-replicate the image to a whole number of MCUs (8×8 for 4:4:4, 16×16 for 4:2:0), as the encoder does;
2. RGB → YCbCr with the JFIF full-range matrix, level shift by −128;
3. 4:2:0 only: average each 2×2 chroma cell (libjpeg's ``h2v2_downsample``);
4. 8×8 block DCT-II (orthonormal, which is exactly JPEG's FDCT normalization);
5. divide by the quantization table libjpeg builds for the quality (IJG base tables of ITU-T T.81 Annex K scaled
   by the IJG quality formula, clamped to [1, 255] as with ``force_baseline``), :func:`soft_round`, multiply back;
6. inverse DCT; 4:2:0 only: crop chroma to ``ceil(H/2) × ceil(W/2)`` and upsample it ×2 with the triangle filter
   of libjpeg's "fancy upsampling" (= bilinear, ``align_corners=False``, edge-replicated);
7. YCbCr → RGB, crop to the input size, divide by 255.

Known gaps to the codec, all small (see ``tests/test_jpeg.py`` for the measured mean gap): the codec rounds to
integers after color conversion, after the IDCT and after upsampling, clamps to [0, 255] and uses an integer DCT;
the surrogate does none of these (it is clamp-free, so outputs may leave [0, 1] slightly), and its rounding is
smooth rather than hard.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

# ITU-T T.81 Annex K tables (natural row-major order), the IJG base tables.
LUMA_BASE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_BASE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
) + ((99,) * 8,) * 4

# JFIF full-range RGB → YCbCr (offsets applied separately).
_RGB_TO_YCBCR = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)

#: Pillow's ``subsampling`` codes.
_PIL_SUBSAMPLING = {"444": 0, "420": 2}

DEFAULT_HARDNESS = 8.0


def quantization_tables(quality: Tensor) -> tuple[Tensor, Tensor]:
    """Luma and chroma tables libjpeg uses at each quality (``jpeg_set_quality(q, force_baseline=TRUE)``).

    Args:
        quality: integer qualities in [1, 100], shape (B,).

    Returns:
        ``(luma, chroma)``, each int64 of shape (B, 8, 8) in natural (row-major) order.
    """
    q = quality.to(torch.int64).clamp(1, 100)
    # IJG integer formula: scale = 5000 / q below 50, 200 - 2q otherwise; entry = (base * scale + 50) / 100.
    scale = torch.where(q < 50, 5000 // q, 200 - 2 * q)[:, None, None]
    tables = []
    for base in (LUMA_BASE, CHROMA_BASE):
        b = torch.tensor(base, dtype=torch.int64, device=quality.device)
        tables.append(((b * scale + 50) // 100).clamp(1, 255))
    return tables[0], tables[1]


def dct_matrix(n: int = 8, dtype: torch.dtype = torch.float64, device: torch.device | None = None) -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (rows = frequencies): coefficients of a block ``X`` are ``D X Dᵀ``."""
    k = torch.arange(n, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def soft_round(x: Tensor, hardness: float = DEFAULT_HARDNESS) -> Tensor:
    """Smooth staircase approximation of ``round`` (the tanh "soft round" of Agustsson & Theis, 2020).

    ``soft_round(x) = m + tanh(a·r) / (2·tanh(a/2))`` with ``m = floor(x) + 1/2`` and ``r = x − m``. It equals
    ``round`` at integers and half-integers, is continuously differentiable everywhere (the pieces meet with equal
    value and slope), tends to the identity as ``a → 0`` and to ``round`` as ``a → ∞``. Unlike the cubic
    ``r + (x − r)³`` it has no jump at half-integers, so finite differences (and ``gradcheck``) agree with autograd.
    """
    if math.isinf(hardness):  # the limit, with a straight-through gradient (see the JPEG operator's docstring)
        return x + (torch.round(x) - x).detach()
    m = torch.floor(x).detach() + 0.5
    r = x - m
    return m + torch.tanh(hardness * r) / (2.0 * math.tanh(hardness / 2.0))


def rgb_to_ycbcr(x: Tensor) -> Tensor:
    """(B, 3, H, W) RGB on 0–255 → YCbCr on 0–255 (JFIF)."""
    m = torch.tensor(_RGB_TO_YCBCR, dtype=x.dtype, device=x.device)
    offset = torch.tensor([0.0, 128.0, 128.0], dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x) + offset[None, :, None, None]


def ycbcr_to_rgb(x: Tensor) -> Tensor:
    """Exact inverse of :func:`rgb_to_ycbcr`."""
    m = torch.linalg.inv(torch.tensor(_RGB_TO_YCBCR, dtype=torch.float64)).to(dtype=x.dtype, device=x.device)
    offset = torch.tensor([0.0, 128.0, 128.0], dtype=x.dtype, device=x.device)
    return torch.einsum("ij,bjhw->bihw", m, x - offset[None, :, None, None])


def _quantize_plane(plane: Tensor, table: Tensor, hardness: float) -> Tensor:
    """DCT-quantize-dequantize-IDCT of (B, H, W) planes (H, W multiples of 8) with per-sample (B, 8, 8) tables."""
    b, h, w = plane.shape
    d = dct_matrix(8, plane.dtype, plane.device)
    blocks = plane.reshape(b, h // 8, 8, w // 8, 8).transpose(2, 3)
    coef = d @ blocks @ d.T
    q = table.to(plane.dtype)[:, None, None]
    coef = soft_round(coef / q, hardness) * q
    blocks = d.T @ coef @ d
    return blocks.transpose(2, 3).reshape(b, h, w)


def jpeg_surrogate(
    x: Tensor, quality: Tensor, subsampling: str = "420", hardness: float = DEFAULT_HARDNESS
) -> Tensor:
    """Differentiable model of a JPEG round trip (see the module docstring for the exact pipeline).

    Args:
        x: RGB images in [0, 1], shape (B, 3, H, W), any floating dtype; (B, 1, H, W) is coded as gray JPEG.
        quality: integer qualities in [1, 100], shape (B,).
        subsampling: ``"420"`` (chroma halved in both directions) or ``"444"``; ignored for gray images.
        hardness: sharpness of :func:`soft_round` (larger = closer to hard rounding, steeper gradients).

    Returns:
        (B, 3, H, W), approximately the decoded JPEG in [0, 1] (not clamped).
    """
    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg_surrogate expects RGB or gray input (B, 3|1, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    mcu = 16 if subsampling == "420" and c == 3 else 8
    pad_h, pad_w = -h % mcu, -w % mcu
    p = F.pad(x * 255.0, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else x * 255.0
    luma_t, chroma_t = quantization_tables(quality.to(x.device))
    if c == 1:  # grayscale JPEG: a single luma component
        return (_quantize_plane(p[:, 0] - 128.0, luma_t, hardness)[:, None, :h, :w] + 128.0) / 255.0
    ycc = rgb_to_ycbcr(p) - 128.0
    y = _quantize_plane(ycc[:, 0], luma_t, hardness)[:, :h, :w]
    chroma = ycc[:, 1:]
    if subsampling == "420":
        chroma = F.avg_pool2d(chroma, 2)
    ch, cw = chroma.shape[-2:]
    chroma = _quantize_plane(chroma.reshape(b * 2, ch, cw), chroma_t.repeat_interleave(2, 0), hardness)
    chroma = chroma.reshape(b, 2, ch, cw)
    if subsampling == "420":
        # The decoder only sees ceil(H/2) x ceil(W/2) chroma samples and replicates the last one at the edge.
        chroma = chroma[..., : (h + 1) // 2, : (w + 1) // 2]
        chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    ycc = torch.cat([y[:, None], chroma[..., :h, :w]], dim=1) + 128.0
    return ycbcr_to_rgb(ycc) / 255.0


def to_uint8(x: Tensor) -> np.ndarray:
    """(C, H, W) in [0, 1] → (H, W, 3) or (H, W) uint8 (C = 1), rounding half to even after clamping."""
    arr = (x.detach() * 255.0).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def jpeg_encode(image: np.ndarray, quality: int, subsampling: str = "420") -> bytes:
    """Encode an (H, W, 3) or (H, W) uint8 array with Pillow at the given quality; returns the JPEG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(
        buf, format="JPEG", quality=int(quality), subsampling=_PIL_SUBSAMPLING[subsampling]
    )
    return buf.getvalue()


def jpeg_codec(x: Tensor, quality: Tensor, subsampling: str = "420") -> Tensor:
    """The real JPEG round trip through Pillow, one quality per image.

    Args:
        x: RGB images in [0, 1], shape (B, 3, H, W), or gray (B, 1, H, W); quantized to uint8 before encoding.
        quality: integer qualities in [1, 100], shape (B,).
        subsampling: ``"420"`` or ``"444"``.

    Returns:
        Decoded images, shape of ``x``, in [0, 1], same dtype and device as ``x``. Not differentiable.
    """
    if x.shape[1] not in (1, 3):
        raise ValueError(f"jpeg_codec expects RGB or gray input (B, 3|1, H, W), got {tuple(x.shape)}")
    mode = "RGB" if x.shape[1] == 3 else "L"
    out = []
    for img, q in zip(x, quality.tolist()):
        data = jpeg_encode(to_uint8(img), int(q), subsampling)
        with Image.open(io.BytesIO(data)) as decoded:
            arr = np.asarray(decoded.convert(mode), dtype=np.float64) / 255.0
        out.append(torch.from_numpy(arr.reshape(*arr.shape[:2], -1)).permute(2, 0, 1))
    return torch.stack(out).to(dtype=x.dtype, device=x.device)
