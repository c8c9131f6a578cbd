"""Make a warm start consistent with what the input says for certain.

* Nothing (identity): the input is the answer.
* Holes alone: the observed pixels are exact, so the warm start keeps them and only fills the holes.
* Gaussian noise, σ known (alone, or with holes: then on the observed pixels): the clean pixel lies within ±4σ of
  the observed one (all but 0.006 % of pixels), so the warm start is clipped pixel by pixel into that box around
  the input. It limits what the network can invent where the noise is light (σ 1 on a 128² astronaut crop: −4.57 dB
  without a box, −3.18 with one). The box was ±3σ until session 17: at σ 25 the 0.27 % of the noise beyond 3σ
  clipped a right estimate onto a wrong one (16 validation crops: 33.531 → 33.560 dB uniform, 35.171 → 35.214
  area at σ 25; ≤ 0.001 dB lost at σ 1–2).
* JPEG alone: every clean candidate must re-encode into the bins of the decoded input, so the warm start's DCT
  coefficients are clipped into them (:func:`degradations.functional.jpeg_bins.project_to_bins`).

With noise or holes before a JPEG, the bins hold the noisy or holed image, not the clean one, so nothing is
imposed there. A quantity the warm start was told is unknown (``unknown``) is not used here either.

Every rule is local (a pixel, an 8x8 block), so a warm start computed in windows (``flowprior.warm_bands``, whose
windows start on the 16-pixel grid) gets the values of the whole-image call.
"""

from __future__ import annotations

import torch
from torch import Tensor

from degradations import Degradation
from degradations.functional.jpeg_bins import project_to_bins
from flowprior.conditioning import acting_members, jpeg_tables, members

#: the box half-width in noise standard deviations: Gaussian noise stays inside ±4σ for 99.994 % of the pixels
NOISE_BOX = 4.0
#: the std of the 8-bit rounding a stored input carries on top of its noise ([0, 1] scale)
ROUNDING_STD = (1.0 / 12.0) ** 0.5 / 255.0


def within_noise_of_input(x0: Tensor, y: Tensor, sigma: Tensor) -> Tensor:
    """``x0`` clipped pixel by pixel into ``y ± NOISE_BOX · σ`` (σ with the input's 8-bit rounding), per image."""
    std = (sigma.to(torch.float64).reshape(-1, 1, 1, 1) ** 2 + ROUNDING_STD**2).sqrt().to(x0.dtype)
    box = NOISE_BOX * std
    return torch.minimum(torch.maximum(x0, y - box), y + box)


def white_noise_variance(degradation: Degradation, params: dict[str, Tensor],
                         unknown: tuple[str, ...] = ()) -> Tensor | None:
    """(B,) variance per value ([0, 1] scale, the 8-bit rounding included) when the damage is known white Gaussian
    noise alone (what :mod:`flowprior.warmstart.sure` needs), else None: holes are filled, not noisy, and after a
    JPEG the noise is neither white nor Gaussian."""
    found = [member for _, member in acting_members(degradation, params)]
    if len(found) != 1 or found[0].name != "noise" or found[0].kind != "gaussian" or "noise" in unknown:
        return None
    sigma = degradation.noise_std(params)
    return None if sigma is None else sigma.to(torch.float64).reshape(-1) ** 2 + ROUNDING_STD**2


def consistent_with_input(x0: Tensor, y: Tensor, degradation: Degradation, params: dict[str, Tensor],
                          unknown: tuple[str, ...] = ()) -> Tensor:
    """``x0`` made consistent with ``y`` by the rules of the module docstring (a new tensor, or ``x0`` itself when no
    rule applies)."""
    if x0.shape != y.shape:
        return x0
    found = [(prefix, member) for prefix, member in members(degradation) if member.name != "identity"]
    if not found:
        return y.clone()
    damage = [(prefix, member) for prefix, member in found if member.name != "mask"]
    if not damage:  # holes alone: the observed pixels are exact
        return _keep_observed(y, x0, degradation, params)
    if len(damage) == 1 and damage[0][1].name == "noise" and damage[0][1].kind == "gaussian" \
            and "noise" not in unknown:  # holes (or none) and Gaussian noise: the box on the observed pixels
        boxed = within_noise_of_input(x0, y, degradation.noise_std(params))
        return boxed if len(found) == 1 else _keep_observed(boxed, x0, degradation, params)
    if len(found) != 1 or found[0][1].name != "jpeg" or "jpeg" in unknown:
        return x0
    prefix, jpeg = found[0]
    luma, chroma = jpeg_tables(prefix, params)
    luma, chroma = luma.expand(x0.shape[0], -1, -1), chroma.expand(x0.shape[0], -1, -1)
    return project_to_bins(x0, y, luma, chroma, jpeg.subsampling)


def _keep_observed(observed_values: Tensor, x0: Tensor, degradation: Degradation, params: dict[str, Tensor]) -> Tensor:
    """``observed_values`` where the mask says observed, ``x0`` in the holes."""
    observed = degradation.observed_mask(params).to(device=x0.device, dtype=x0.dtype)
    return observed * observed_values + (1 - observed) * x0
