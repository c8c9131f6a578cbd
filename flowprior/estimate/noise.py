"""Gaussian noise level per channel, from the image alone (0–255 scale, like ``noise.sigma``).

Method (block-DCT, robust statistics; written for this project):

1. Cut each plane into 8×8 blocks and take their orthonormal DCT. White noise of std σ stays white with std σ
   in every coefficient, and different coefficients of one block carry independent noise.
2. Pick the flattest blocks by their *low*-frequency energy (AC with u + v ≤ 2) and measure the noise on their
   *other* coefficients. Because the two sets of coefficients carry independent noise, choosing blocks whose
   low frequencies are quiet does not pick blocks whose measuring coefficients happen to be quiet (which would
   bias σ̂ low); it only picks blocks with little image signal.
3. Blocks whose mean is within 2.5 σ̂ of black or white are left out (there the noise was clipped by the [0,
   1] clamp and is smaller), iterating twice.
4. Never-compressed: ``m = 1.4826 · median |c|`` per frequency, their median, and then σ̂ = √(m² − F²)
   with a *texture floor* F = 1.5: even the flattest blocks of a clean photo hold some fine grain and texture
   (and the 8-bit rounding), which adds in quadrature. F was chosen on the training pool's validation photos
   as the value under which most of them meet both "clean σ̂ ≤ 1.5" and "|σ̂ − σ| ≤ 1 at σ = 2"
   (benchmarks/estimation_tuning.py); the cost is a slight under-estimate of σ ≈ 2 on grain-free images.
5. After JPEG the coefficients are multiples of the quantization step ``Q``: σ̂ is the posterior median
   (flat prior) of the likelihood of the flat blocks' quantization bins of N(0, σ²) noise mixed with a small
   uniform "texture" share, the share profiled over :data:`_OUTLIER_SHARES`. The flat set is stricter (10 %
   of the blocks) because texture, not noise, is what survives a coarse quantizer. This measures the noise
   *before* compression — what ``noise+jpeg`` needs — from the luma on the JPEG grid; per-channel σ is then
   σ_Y / ‖(0.299, 0.587, 0.114)‖ (iid channel noise assumed: chroma is too coarsely quantized to measure).

Frequencies whose step is far above the noise say nothing (everything is quantized to 0); when that holds for
all of them, σ̂ is the middle of the range still consistent with the data and the confidence is low.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from flowprior.estimate.planes import (
    BLOCK,
    LUMA_NOISE_GAIN,
    LUMA_WEIGHTS,
    as_planes,
    block_dct,
    block_means,
    luma,
)

_MAD_TO_SIGMA = 1.4826
_SELECT_FRACTION = 0.30  # share of eligible blocks kept as "flat" (never-compressed)
_SELECT_FRACTION_JPEG = 0.10  # after JPEG: only texture survives the quantizer, so be stricter
_TEXTURE_FLOOR = 1.5  # never-compressed: grain of the flattest blocks of a clean photo (step 4)
_MIN_BLOCKS = 12
_MIN_ATTENUATION = 0.8  # blocks whose noise the clamp shrank more than this are not used
_UV = np.add.outer(np.arange(BLOCK), np.arange(BLOCK))
_SELECT = (_UV >= 1) & (_UV <= 2)  # the flatness test
_MEASURE_PLAIN = _UV >= 6  # never-compressed: mid/high frequencies (least image signal)


@dataclass
class NoiseEstimate:
    """σ̂ per channel (0–255 scale), a 0–1 confidence and how it was measured."""

    sigma: list[float]
    confidence: float
    method: str
    blocks: int = 0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "sigma": [round(s, 3) for s in self.sigma],
            "confidence": round(self.confidence, 3),
            "method": self.method,
            "blocks": self.blocks,
            "notes": self.notes,
        }


_T = np.linspace(0.0, 8.0, 801)
_CLIPPED_MEAN = _T * norm.cdf(_T) + norm.pdf(_T)  # E[max(X, 0)] / σ for X ~ N(tσ, σ²)
_CLIPPED_STD = np.sqrt((_T**2 + 1) * norm.cdf(_T) + _T * norm.pdf(_T) - _CLIPPED_MEAN**2)


def clip_attenuation(mean: np.ndarray, sigma: float) -> np.ndarray:
    """std of noise clipped at 0 and 255 relative to σ, for regions of the given *observed* mean.

    ``max(X, 0)`` with ``X ~ N(μ, σ²)`` has mean ``μΦ(t) + σφ(t)`` (``t = μ/σ``); the observed mean is
    inverted to ``t`` through that relation and the censored-normal std read off (the nearer bound decides).
    """
    if sigma <= 0:
        return np.ones_like(mean)
    distance = np.minimum(mean, 255.0 - mean) / sigma
    return np.interp(distance, _CLIPPED_MEAN, _CLIPPED_STD, left=_CLIPPED_STD[0], right=1.0)


def _flat_blocks(
    coef: np.ndarray,
    sigma: float,
    channel_means: np.ndarray | None = None,
    usable: np.ndarray | None = None,
    fraction: float = _SELECT_FRACTION,
) -> tuple[np.ndarray, np.ndarray]:
    """(flattest eligible blocks, clip attenuation per block), see the module docstring, steps 2–3.

    ``channel_means`` (rows, cols, 3): when ``coef`` is the luma of RGB, the clamp acted on each channel, so
    the luma noise shrinks by the weighted root-mean-square of the channels' attenuations. ``usable`` (rows,
    cols) bool: False for blocks that must not be used (they touch a detected defect).
    """
    mean = coef[..., 0, 0] / BLOCK + 128.0
    if channel_means is None:
        attenuation = clip_attenuation(mean, sigma)
    else:
        per_channel = clip_attenuation(channel_means, sigma / LUMA_NOISE_GAIN)  # σ here is the luma's
        attenuation = np.sqrt((per_channel**2 * LUMA_WEIGHTS**2).sum(-1)) / LUMA_NOISE_GAIN
    eligible = (attenuation >= _MIN_ATTENUATION) & (mean > 0.5) & (mean < 254.5)
    if usable is not None:
        eligible &= usable
    if eligible.sum() < _MIN_BLOCKS:  # a dark or bright image: use what there is rather than nothing
        eligible = np.ones_like(eligible)
    activity = np.where(eligible, (coef[..., _SELECT] ** 2).sum(-1), np.inf)
    keep = max(_MIN_BLOCKS, int(fraction * eligible.sum()))
    cut = np.partition(activity.ravel(), min(keep, activity.size) - 1)[min(keep, activity.size) - 1]
    return activity <= cut, attenuation


def _usable_blocks(exclude: np.ndarray | None, offset: tuple[int, int]) -> np.ndarray | None:
    """(rows, cols) bool: blocks (on the grid at ``offset``) with no pixel of ``exclude``."""
    if exclude is None:
        return None
    touched = block_means(np.asarray(exclude, dtype=np.float64)[..., None], offset)[..., 0] > 0
    return ~touched


def _plain_sigma(plane: np.ndarray, exclude: np.ndarray | None = None) -> tuple[float, int, float]:
    """(σ̂, blocks used, spread) for a never-compressed plane."""
    coef = block_dct(plane)
    usable = _usable_blocks(exclude, (0, 0))
    if coef.size == 0:
        return float("nan"), 0, 1.0
    sigma = 0.0
    for _ in range(3):
        flat, attenuation = _flat_blocks(coef, sigma, usable=usable)
        measured = coef[flat][:, _MEASURE_PLAIN] / attenuation[flat][:, None]
        per_freq = _MAD_TO_SIGMA * np.median(np.abs(measured), axis=0)
        sigma = float(np.median(per_freq))
    spread = float(np.std(per_freq) / max(np.mean(per_freq), 1e-6))
    return math.sqrt(max(sigma**2 - _TEXTURE_FLOOR**2, 0.0)), int(flat.sum()), spread


_SIGMA_GRID = np.geomspace(0.2, 120.0, 240)
#: flat blocks still hold some texture: a uniform component absorbs it, its share chosen by likelihood
_OUTLIER_SHARES = (0.01, 0.1)
_MEASURE_JPEG = _UV >= 3  # the selection frequencies (u + v ≤ 2) must not be measured: they were chosen quiet


def _bin_log_likelihood(bins: np.ndarray, step: float, outlier_share: float) -> np.ndarray:
    """log-likelihood over :data:`_SIGMA_GRID` of integer quantization bins of N(0, σ²) data, with a
    uniform outlier share."""
    values, counts = np.unique(np.abs(bins), return_counts=True)
    upper = norm.cdf((values[None, :] + 0.5) * step / _SIGMA_GRID[:, None])
    lower = norm.cdf((values[None, :] - 0.5) * step / _SIGMA_GRID[:, None])
    # |n| > 0 gathers both signs; bin 0 is the central interval
    p = np.where(values[None, :] == 0, upper - (1.0 - upper), 2.0 * (upper - lower))
    outlier = 1.0 / (2.0 * max(values.max(), 1.0) + 1.0)
    p = (1.0 - outlier_share) * p + outlier_share * outlier
    return (counts[None, :] * np.log(np.maximum(p, 1e-300))).sum(1)


def _luma_sigma_from_bins(blocks: np.ndarray, table: np.ndarray) -> tuple[float, float]:
    """(σ̂, relative posterior width) from quantized flat blocks (n, 8, 8), module docstring step 5.

    The outlier share with the highest likelihood peak is used: a share that is too small forces σ up to
    explain texture (the old failure: fur read as noise), a larger one lets σ stay where the noise put it.
    """
    uv = list(zip(*np.nonzero(_MEASURE_JPEG)))
    bins = [(np.round(blocks[:, u, v] / table[u, v]), float(table[u, v])) for u, v in uv]
    log_lik = max(
        (sum(_bin_log_likelihood(b, step, share) for b, step in bins) for share in _OUTLIER_SHARES),
        key=np.max,
    )
    weights = np.exp(log_lik - log_lik.max()) * np.gradient(_SIGMA_GRID)
    cdf = np.cumsum(weights) / weights.sum()
    lo, median, hi = np.interp([0.16, 0.5, 0.84], cdf, _SIGMA_GRID)
    return float(median), float((hi - lo) / max(median, 1e-6))


def _jpeg_luma_sigma(
    planes: np.ndarray, table: np.ndarray, offset: tuple[int, int], exclude: np.ndarray | None = None
) -> tuple[float, int, float]:
    """(σ̂ of the luma noise before compression, blocks used, relative posterior width).

    σ̂ is the posterior median under a flat prior of the likelihood of the flat blocks' quantization bins:
    sharp where the noise survived the quantizer, and the middle of the still-consistent range where it did
    not.
    """
    coef = block_dct(luma(planes), offset)
    if coef.size == 0:
        return float("nan"), 0, 1.0
    channel_means = block_means(planes, offset) if planes.shape[-1] == 3 else None
    usable = _usable_blocks(exclude, offset)
    sigma = 0.0
    for _ in range(3):
        flat, attenuation = _flat_blocks(coef, sigma, channel_means, usable, _SELECT_FRACTION_JPEG)
        sigma, width = _luma_sigma_from_bins(coef[flat], table)
        sigma /= float(np.median(attenuation[flat]))
    return sigma, int(flat.sum()), width


def estimate_noise(
    image: object,
    jpeg_luma_table: np.ndarray | None = None,
    grid_offset: tuple[int, int] = (0, 0),
    exclude: np.ndarray | None = None,
) -> NoiseEstimate:
    """Gaussian noise std per channel on the 0–255 scale (the module docstring has the method).

    Args:
        image: see :func:`flowprior.estimate.planes.as_planes` (tensor in [0, 1] or uint8/uint16/float array).
        jpeg_luma_table: the (8, 8) luma quantization table when the image was JPEG-compressed (from the file,
            or estimated from the pixels); σ̂ is then the noise *before* compression.
        grid_offset: (row, col) of the JPEG block grid in the image (nonzero for cropped JPEGs).
        exclude: (H, W) bool, True where pixels must not be used (detected defects: a filled hole is neither
            noise nor image).

    Returns:
        A :class:`NoiseEstimate`; images smaller than one 8×8 block give σ̂ = 0 with confidence 0.
    """
    planes = as_planes(image)
    if planes.shape[0] < BLOCK or planes.shape[1] < BLOCK:
        return NoiseEstimate(
            [0.0] * planes.shape[-1], 0.0, "none", notes=["image smaller than one 8x8 block"]
        )
    if jpeg_luma_table is None:
        results = [_plain_sigma(planes[..., c], exclude) for c in range(planes.shape[-1])]
        sigma = [r[0] for r in results]
        blocks = min(r[1] for r in results)
        spread = max(r[2] for r in results)
        method = "block-dct-mad"
        notes = []
    else:
        table = np.asarray(jpeg_luma_table, dtype=np.float64).reshape(BLOCK, BLOCK)
        luma_sigma, blocks, spread = _jpeg_luma_sigma(planes, table, grid_offset, exclude)
        gain = LUMA_NOISE_GAIN if planes.shape[-1] == 3 else 1.0
        # the encoder rounded its Y to integers: that much (1/12) of the measured variance was not the noise
        channel = math.sqrt(max(luma_sigma**2 - 1.0 / 12.0, 0.0)) / gain
        sigma = [channel] * planes.shape[-1]
        method = "jpeg-bins-luma"
        notes = ["measured on the luma before compression; channels assumed to share one sigma"]
    confidence = math.exp(-2.0 * spread) * min(1.0, blocks / 100.0)
    return NoiseEstimate([float(s) for s in sigma], float(confidence), method, blocks, notes)


GRAIN_WINDOW = 1024  # photo_grain reads the central window of at most this side: grain is uniform, time is not


def photo_grain(image: np.ndarray) -> float:
    """The largest per-channel σ̂ (0–255) of a photo's central window: the grain it already carries."""
    h, w = image.shape[:2]
    top, left = max(0, (h - GRAIN_WINDOW) // 2), max(0, (w - GRAIN_WINDOW) // 2)
    return max(estimate_noise(image[top:top + GRAIN_WINDOW, left:left + GRAIN_WINDOW]).sigma)
