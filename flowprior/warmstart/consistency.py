"""Make a warm start consistent with what the input says for certain.

* Nothing (identity): the input is the answer.
* Holes alone: the observed pixels are exact, so the warm start keeps them and only fills the holes.
* Gaussian noise alone, σ known: the input is the clean image plus noise of variance σ², the warm start the clean
  image plus the network's own error. On the line between them, ``y + α (x0 − y)``, the expected squared error is
  least at ``α = σ² / mean (x0 − y)²`` when that error is independent of the noise. So where the warm start moved
  farther from the input than the noise explains, it is pulled back by that factor (α never exceeds 1). This
  changes nothing where the network removed just the noise (σ ≥ 2 on validation crops). With σ ≈ 1, where the network's own error exceeds the noise, it keeps the network from doing most of its harm.
* JPEG alone: the same pull-back with the quantization noise of the tables for σ² (a uniform error in every bin:
  ``Q²/12`` per coefficient, mapped from YCbCr to RGB; an upper bound, since coefficients quantized to zero err
  less), then every clean candidate must re-encode into the bins of the decoded input, so the warm start's DCT
  coefficients are clipped into them (:func:`degradations.functional.jpeg_bins.project_to_bins`).

A quantity the warm start was told is unknown (``unknown``) is not used here either.

With noise (or noise or holes before a JPEG) the input holds no exact value of the clean image, so nothing is
imposed.
"""

from __future__ import annotations

import torch
from torch import Tensor

from degradations import Degradation
from degradations.functional.jpeg import quantization_tables
from degradations.functional.jpeg_bins import project_to_bins
from flowprior.conditioning import members


def jpeg_tables(prefix: str, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """(B, 8, 8) luma and chroma tables of the JPEG member at ``prefix``: the file's own, or its quality's."""
    if f"{prefix}luma_table" in params:
        return params[f"{prefix}luma_table"].reshape(-1, 8, 8), params[f"{prefix}chroma_table"].reshape(-1, 8, 8)
    return quantization_tables(params[f"{prefix}quality"].reshape(-1))


#: variance of the 8-bit rounding a stored input carries on top of its noise ([0, 1] scale)
ROUNDING_VARIANCE = 1.0 / 12.0 / 255.0**2


def within_noise_of_input(x0: Tensor, y: Tensor, variance: Tensor) -> Tensor:
    """``y + α (x0 − y)`` per image with ``α = min(1, (σ² + rounding) / mean (x0 − y)²)`` (module docstring);
    ``variance`` is σ², (B,) or a scalar, on the [0, 1] scale."""
    residual = x0 - y
    moved = residual.double().square().flatten(1).mean(1)
    noise = variance.to(torch.float64).reshape(-1).expand(moved.shape[0]) + ROUNDING_VARIANCE
    alpha = (noise / moved.clamp(min=1e-20)).clamp(max=1.0)
    return y + alpha.to(x0.dtype).reshape(-1, 1, 1, 1) * residual


def jpeg_noise_variance(luma: Tensor, chroma: Tensor) -> Tensor:
    """(B,) mean per-pixel RGB variance of the quantization error of these tables, on the [0, 1] scale.

    ``Q²/12`` per coefficient (orthonormal DCT: the mean over a block's coefficients is the per-pixel variance);
    RGB = Y + (1.402 Cr; −0.344 Cb − 0.714 Cr; 1.772 Cb), so the RGB mean is ``vY + 1.086 vCb + 0.825 vCr``.
    """
    luma_var = luma.double().square().flatten(1).mean(1) / 12
    chroma_var = chroma.double().square().flatten(1).mean(1) / 12
    return (luma_var + (1.086 + 0.825) * chroma_var) / 255.0**2


def consistent_with_input(x0: Tensor, y: Tensor, degradation: Degradation, params: dict[str, Tensor],
                          unknown: tuple[str, ...] = ()) -> Tensor:
    """``x0`` with the observed pixels of a holes-only degradation, or clipped into the quantization bins of ``y``
    for a JPEG-only one; else ``x0`` itself."""
    found = [(prefix, member) for prefix, member in members(degradation) if member.name != "identity"]
    if x0.shape != y.shape:
        return x0
    if not found:
        return y.clone()
    if len(found) == 1 and found[0][1].name == "noise" and found[0][1].kind == "gaussian":
        return x0 if "noise" in unknown else within_noise_of_input(x0, y, degradation.noise_std(params) ** 2)
    if all(member.name == "mask" for _, member in found):
        observed = degradation.observed_mask(params).to(device=x0.device, dtype=x0.dtype)
        return observed * y + (1 - observed) * x0
    if len(found) != 1 or found[0][1].name != "jpeg" or "jpeg" in unknown:
        return x0
    prefix, jpeg = found[0]
    luma, chroma = jpeg_tables(prefix, params)
    luma, chroma = luma.expand(x0.shape[0], -1, -1), chroma.expand(x0.shape[0], -1, -1)
    x0 = within_noise_of_input(x0, y, jpeg_noise_variance(luma, chroma))
    return project_to_bins(x0, y, luma, chroma, jpeg.subsampling)
