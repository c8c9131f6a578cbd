"""The noise a JPEG adds, from its quantization tables alone: the std of ``decoded − original`` per pixel.

A coefficient of variance ``v`` quantized with step ``Q`` is off by about ``min(Q²/12, v)`` in variance: uniform
error across the bin when the bin is narrow against the coefficient's spread, and the coefficient itself when it is
rounded to zero. With the natural-photo variance of each DCT frequency (measured once on 64 validation crops of the
training pool, 128², below) this tracks the real error of libjpeg at every quality: the model read 16.0 / 11.9 /
7.8 / 5.3 / 3.0 against a measured 14.0 / 9.9 / 6.5 / 4.5 / 2.6 at q5 / 10 / 30 / 75 / 95 (0–255 scale, 4:2:0), a
ratio of 0.83–0.87 at every quality, which :data:`CALIBRATION` folds in. The data term's λ reads it
(:func:`flowprior.solver.weighting.noise_matched_weight`) so a q10 file and a q90 file get weights 10× apart.
"""

from __future__ import annotations

import torch
from torch import Tensor

#: measured ÷ modelled error std over q 5–95 (see the module docstring)
CALIBRATION = 0.85

#: how much of each YCbCr plane's error variance lands in the RGB pixels, averaged over R, G, B (the squared
#: columns of the JFIF YCbCr → RGB matrix: Y 1, Cb (0.344² + 1.772²) / 3, Cr (1.402² + 0.714²) / 3)
_PLANE_GAIN = (1.0, 1.086, 0.825)

#: mean squared DCT coefficient per frequency (0–255 scale, level-shifted planes) of natural photos
LUMA_VARIANCE = (
    (1.733e+05, 2411, 398.1, 122.6, 54.34, 42.86, 28.11, 19.18),
    (2903, 540.6, 202.8, 80.87, 41.82, 28.16, 22.53, 17.18),
    (573.1, 237.4, 121.8, 61.91, 36.61, 24.25, 19.84, 15.75),
    (211.2, 110.7, 68.47, 43.31, 28.83, 22.64, 15.91, 13.36),
    (112.3, 64.02, 42.44, 31.27, 23.78, 16.78, 14.18, 10.56),
    (61.78, 39.6, 28.02, 20.96, 17.46, 12.94, 10.5, 8.603),
    (38.15, 27.71, 19.65, 16.15, 13.85, 10.54, 9.146, 7.945),
    (30.36, 19.18, 16.9, 12.16, 10.18, 8.6, 7.361, 7.037),
)
CHROMA_VARIANCE_420 = (
    (6.236e+04, 475.8, 116, 35.77, 12.97, 3.963, 1.665, 0.7317),
    (496, 141.7, 62.18, 26.23, 9.113, 3.091, 1.163, 0.7001),
    (120.1, 63.25, 34.75, 15.86, 6.304, 2.171, 0.8657, 0.4747),
    (38.74, 26.82, 17.39, 8.477, 3.842, 1.429, 0.6553, 0.3563),
    (16.16, 11.91, 8.742, 5.045, 2.459, 0.9297, 0.5209, 0.3108),
    (8.291, 6.034, 4.576, 2.665, 1.296, 0.62, 0.4039, 0.2787),
    (4.165, 3.07, 2.297, 1.29, 0.761, 0.4245, 0.3002, 0.2382),
    (2.265, 1.557, 1.357, 0.8399, 0.5208, 0.3184, 0.2681, 0.2138),
)
CHROMA_VARIANCE_444 = (
    (6.328e+04, 313.3, 56.2, 9.98, 3.126, 1.488, 0.9959, 1.036),
    (339.9, 86.47, 24.27, 5.262, 1.718, 1.06, 0.8028, 0.6879),
    (67.56, 30.16, 11.03, 3.109, 1.146, 0.8433, 0.6863, 0.646),
    (20.89, 10.15, 4.038, 1.606, 0.8789, 0.7016, 0.6312, 0.5947),
    (7.11, 4.035, 2.142, 1.098, 0.7332, 0.6367, 0.568, 0.5731),
    (2.84, 1.884, 1.182, 0.8229, 0.639, 0.6018, 0.5691, 0.5452),
    (2.044, 1.57, 1.055, 0.7517, 0.5912, 0.5577, 0.5414, 0.5187),
    (1.626, 1.275, 0.9432, 0.6867, 0.5709, 0.5538, 0.519, 0.5129),
)


def _plane_error(table: Tensor, variance: tuple) -> Tensor:
    """(B,) mean over the 64 frequencies of ``min(Q²/12, v)``."""
    v = torch.tensor(variance, dtype=torch.float64)
    return torch.minimum(table.to(torch.float64) ** 2 / 12.0, v).mean(dim=(-2, -1))


def quantization_noise_std(luma_table: Tensor, chroma_table: Tensor, subsampling: str = "420") -> Tensor:
    """(B,) std of the error a JPEG with these (B, 8, 8) tables adds to a natural photo, on the [0, 1] scale."""
    chroma = CHROMA_VARIANCE_420 if subsampling == "420" else CHROMA_VARIANCE_444
    luma_error = _plane_error(luma_table, LUMA_VARIANCE)
    chroma_error = _plane_error(chroma_table, chroma)
    variance = _PLANE_GAIN[0] * luma_error + (_PLANE_GAIN[1] + _PLANE_GAIN[2]) * chroma_error
    return CALIBRATION * variance.sqrt() / 255.0
